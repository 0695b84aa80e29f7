-- The chain watcher: per chain, a cursor (the last block processed), the
-- hashes of the blocks processed within the reorg window, every
-- `PaymentRouter.PaymentReceived` log turned into a transfer record, and a
-- journal of the reorgs seen. See src/chain/watcher/mod.rs.
--
-- Hashes and addresses are lower-case 0x-hex text (as JSON-RPC and API.md
-- write them); amounts are NUMERIC(78,0) base units (any uint256). Hex
-- checks are written `~ '^0x[0-9a-f]+$' AND length(…) = n`: PostgreSQL's
-- regex engine is about seven times slower on `{64}`, which made these
-- checks the most expensive part of recording a 10,000-payment backlog.

-- Where each chain's watcher is: the last block whose effects are committed
-- (NULL until the first block, start_block, is processed), with what the
-- watcher was configured with, so `epg reconcile chain` can run from the
-- database and an RPC URL alone. Each step of a watcher locks this row,
-- checks it still holds the value the step started from, and moves it in
-- the same transaction as the step's effects, so two nodes watching one
-- chain never apply a block twice.
CREATE TABLE chain_cursors (
    chain_id      BIGINT PRIMARY KEY CHECK (chain_id > 0),
    -- First block scanned; kept from the first start (later changes to the
    -- configured start_block do not move an existing cursor).
    start_block   BIGINT NOT NULL CHECK (start_block >= 0),
    router        TEXT NOT NULL CHECK (router ~ '^0x[0-9a-f]+$' AND length(router) = 42),
    treasury      TEXT NOT NULL CHECK (treasury ~ '^0x[0-9a-f]+$' AND length(treasury) = 42),
    confirmations BIGINT NOT NULL CHECK (confirmations >= 1),
    -- The configured assets: [{"symbol", "decimals", "token"}].
    assets        JSONB NOT NULL DEFAULT '[]',
    block_number  BIGINT CHECK (block_number >= 0),
    block_hash    TEXT CHECK (block_hash ~ '^0x[0-9a-f]+$' AND length(block_hash) = 66),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((block_number IS NULL) = (block_hash IS NULL))
);

-- Hash and parent hash of processed blocks: every block within the reorg
-- window below the head, plus the end block of each older catch-up range.
-- A new head whose ancestry does not meet these hashes is a reorg; the
-- highest stored block that is still canonical is the common ancestor.
-- Older rows are pruned; the cursor's block is always kept.
CREATE TABLE chain_blocks (
    chain_id     BIGINT NOT NULL,
    block_number BIGINT NOT NULL CHECK (block_number >= 0),
    block_hash   TEXT NOT NULL CHECK (block_hash ~ '^0x[0-9a-f]+$' AND length(block_hash) = 66),
    parent_hash  TEXT NOT NULL CHECK (parent_hash ~ '^0x[0-9a-f]+$' AND length(parent_hash) = 66),
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, block_number)
);

-- One row per payment seen on a chain.
--
-- Identity: (chain_id, tx_hash, tx_log_ordinal), where tx_log_ordinal is the
-- position of the log among the router's PaymentReceived logs of its
-- transaction (0 for a plain pay / payNative). A transaction dropped by a
-- reorg and included again keeps its hash and its own logs, but usually not
-- its block, and its block-wide log_index changes with its position in the
-- block; so the identity leaves both out, and the row is updated in place
-- (block_number, block_hash, log_index) instead of a second row appearing.
-- log_index stays unique among live rows (an exclusion constraint: a removed
-- row keeps its last position as history and must not block a live one).
--
-- Status: detected (in a canonical block, not yet deep enough), confirmed
-- (its block reached the chain's confirmation depth), removed (its block
-- left the canonical chain and the new chain did not include it again). A
-- removed transfer that appears again later becomes detected again (same
-- row, `removals` remembers it happened).
CREATE TABLE chain_transfers (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id        BIGINT NOT NULL CHECK (chain_id > 0),
    tx_hash         TEXT NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]+$' AND length(tx_hash) = 66),
    tx_log_ordinal  INTEGER NOT NULL CHECK (tx_log_ordinal >= 0),
    log_index       BIGINT NOT NULL CHECK (log_index >= 0),
    block_number    BIGINT NOT NULL CHECK (block_number >= 0),
    block_hash      TEXT NOT NULL CHECK (block_hash ~ '^0x[0-9a-f]+$' AND length(block_hash) = 66),
    block_timestamp TIMESTAMPTZ NOT NULL,
    -- The PaymentRouter that emitted the log.
    router          TEXT NOT NULL CHECK (router ~ '^0x[0-9a-f]+$' AND length(router) = 42),
    -- The payment reference (bytes32).
    ref             TEXT NOT NULL CHECK (ref ~ '^0x[0-9a-f]+$' AND length(ref) = 66),
    payer           TEXT NOT NULL CHECK (payer ~ '^0x[0-9a-f]+$' AND length(payer) = 42),
    -- The ERC-20 token; the zero address for the native coin.
    token           TEXT NOT NULL CHECK (token ~ '^0x[0-9a-f]+$' AND length(token) = 42),
    -- Symbol of the configured asset the token is (`usdc`, `eth`), or NULL
    -- when the token is not configured for this chain.
    asset           TEXT,
    amount          NUMERIC(78, 0) NOT NULL CHECK (amount >= 0),
    status          TEXT NOT NULL CHECK (status IN ('detected', 'confirmed', 'removed')),
    -- How many times a reorg removed it.
    removals        INTEGER NOT NULL DEFAULT 0 CHECK (removals >= 0),
    detected_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When it was confirmed (kept after a removal, as history).
    confirmed_at    TIMESTAMPTZ,
    -- When a reorg last removed it.
    removed_at      TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT chain_transfers_identity UNIQUE (chain_id, tx_hash, tx_log_ordinal),
    -- One live row per log position. Deferred to commit: a reorg moves the
    -- logs of one transaction to new positions one row at a time.
    CONSTRAINT chain_transfers_live_log EXCLUDE USING btree
        (chain_id WITH =, tx_hash WITH =, log_index WITH =)
        WHERE (status <> 'removed') DEFERRABLE INITIALLY DEFERRED,
    CHECK (status <> 'confirmed' OR confirmed_at IS NOT NULL),
    CHECK (status <> 'removed' OR removed_at IS NOT NULL)
);

-- Payments find their transfers by reference.
CREATE INDEX chain_transfers_ref ON chain_transfers (ref);
-- Reorgs undo by block; confirmations pick detected rows by block.
CREATE INDEX chain_transfers_block ON chain_transfers (chain_id, block_number);
CREATE INDEX chain_transfers_detected
    ON chain_transfers (chain_id, block_number) WHERE status = 'detected';

-- Every reorg a watcher handled: the operator's record of what happened.
-- `deep` is true when a dropped block had reached the confirmation depth.
CREATE TABLE chain_reorgs (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id          BIGINT NOT NULL,
    old_block_number  BIGINT NOT NULL,
    old_block_hash    TEXT NOT NULL,
    ancestor_number   BIGINT,
    depth             BIGINT NOT NULL CHECK (depth >= 0),
    deep              BOOLEAN NOT NULL,
    transfers_removed INTEGER NOT NULL DEFAULT 0,
    confirmed_removed INTEGER NOT NULL DEFAULT 0,
    transfers_kept    INTEGER NOT NULL DEFAULT 0,
    detected_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX chain_reorgs_chain ON chain_reorgs (chain_id, detected_at);
