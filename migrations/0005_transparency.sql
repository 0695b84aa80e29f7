-- The settlement transparency log (src/transparency): one append-only
-- RFC 6962 / RFC 9162 Merkle tree of settled items, its checkpoints, and
-- where each checkpoint was anchored on-chain.
--
-- Layout for O(log n) appends and roots at tens of millions of leaves:
--   * `transparency_leaves`: one row per leaf (its hash, canonical bytes
--     and salt);
--   * `transparency_nodes`: the hash of every complete ("perfect") subtree
--     of 2^level leaves, level >= 1; level 0 is the leaf hash itself. An
--     append completes at most log2(n) of them (one on average);
--   * `transparency_head`: one row, the tree size and the hashes of the
--     perfect subtrees along the right edge (the binary decomposition of the
--     size), which is all an append reads. Appenders take it FOR UPDATE, so
--     there is exactly one at a time and indices have no gaps.
-- Any root or proof is folded from at most 2·log2(n) stored perfect nodes.
--
-- Leaves, nodes and checkpoints can never change: UPDATE, DELETE and
-- TRUNCATE are refused by triggers, and the head only grows.

CREATE FUNCTION transparency_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the transparency log is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END
$$;

CREATE TABLE transparency_head (
    -- Exactly one row.
    singleton  BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    -- The log's origin (its name in checkpoints and in every leaf), fixed by
    -- the first append.
    origin     TEXT CHECK (length(origin) BETWEEN 1 AND 255),
    -- Number of leaves.
    tree_size  BIGINT NOT NULL DEFAULT 0 CHECK (tree_size >= 0),
    -- Hashes of the perfect subtrees that make up the tree, largest (leftmost)
    -- first: one per bit set in tree_size.
    frontier   BYTEA[] NOT NULL DEFAULT '{}',
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cardinality(frontier) <= 64)
);

INSERT INTO transparency_head DEFAULT VALUES;

CREATE FUNCTION transparency_head_grows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tree_size < OLD.tree_size THEN
        RAISE EXCEPTION 'the transparency log cannot shrink (% -> %)', OLD.tree_size, NEW.tree_size
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF OLD.origin IS NOT NULL AND NEW.origin IS DISTINCT FROM OLD.origin THEN
        RAISE EXCEPTION 'the transparency log origin is fixed (%)', OLD.origin
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER transparency_head_grows BEFORE UPDATE ON transparency_head
    FOR EACH ROW EXECUTE FUNCTION transparency_head_grows();
CREATE TRIGGER transparency_head_kept BEFORE DELETE ON transparency_head
    FOR EACH ROW EXECUTE FUNCTION transparency_refuse_change();
CREATE TRIGGER transparency_head_no_truncate BEFORE TRUNCATE ON transparency_head
    FOR EACH STATEMENT EXECUTE FUNCTION transparency_refuse_change();

CREATE TABLE transparency_leaves (
    -- Position in the log, from 0.
    leaf_index    BIGINT PRIMARY KEY CHECK (leaf_index >= 0),
    -- SHA-256(0x00 || data || salt).
    leaf_hash     BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    -- The canonical encoding of the settled item (src/transparency/leaf.rs),
    -- version byte first; what a proof bundle discloses.
    data          BYTEA NOT NULL CHECK (length(data) BETWEEN 1 AND 4096),
    -- Random per leaf, so a leaf hash reveals nothing about its data and a
    -- proof reveals nothing about the neighbouring leaves.
    salt          BYTEA NOT NULL CHECK (length(salt) = 32),
    -- Copies of fields of `data`, to find a settled object's leaf.
    merchant_id   TEXT NOT NULL,
    source_id     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    settlement_id TEXT NOT NULL,
    appended_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- An object is settled at most once per kind: a second leaf for the same
-- payment would be a double settlement.
CREATE UNIQUE INDEX transparency_leaves_source
    ON transparency_leaves (merchant_id, source_id, kind);

CREATE TRIGGER transparency_leaves_immutable BEFORE UPDATE OR DELETE ON transparency_leaves
    FOR EACH ROW EXECUTE FUNCTION transparency_refuse_change();
CREATE TRIGGER transparency_leaves_no_truncate BEFORE TRUNCATE ON transparency_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION transparency_refuse_change();

CREATE TABLE transparency_nodes (
    -- The subtree has 2^level leaves, from node_index * 2^level.
    level      SMALLINT NOT NULL CHECK (level BETWEEN 1 AND 63),
    node_index BIGINT NOT NULL CHECK (node_index >= 0),
    -- SHA-256(0x01 || left || right).
    hash       BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, node_index)
);

CREATE TRIGGER transparency_nodes_immutable BEFORE UPDATE OR DELETE ON transparency_nodes
    FOR EACH ROW EXECUTE FUNCTION transparency_refuse_change();
CREATE TRIGGER transparency_nodes_no_truncate BEFORE TRUNCATE ON transparency_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION transparency_refuse_change();

-- Signed-tree-head equivalents: states of the log the node committed to.
CREATE TABLE transparency_checkpoints (
    tree_size  BIGINT PRIMARY KEY CHECK (tree_size > 0),
    origin     TEXT NOT NULL CHECK (length(origin) BETWEEN 1 AND 255),
    root       BYTEA NOT NULL CHECK (length(root) = 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TRIGGER transparency_checkpoints_immutable BEFORE UPDATE OR DELETE ON transparency_checkpoints
    FOR EACH ROW EXECUTE FUNCTION transparency_refuse_change();
CREATE TRIGGER transparency_checkpoints_no_truncate BEFORE TRUNCATE ON transparency_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION transparency_refuse_change();

-- Transactions that anchored (or tried to anchor) a checkpoint in
-- SettlementAnchor. A transaction dropped by a reorg stays as `dropped`;
-- its re-sent successor gets a row of its own. At most one row per
-- checkpoint and contract is `confirmed`.
CREATE TABLE transparency_anchors (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tree_size    BIGINT NOT NULL REFERENCES transparency_checkpoints (tree_size),
    chain_id     BIGINT NOT NULL CHECK (chain_id > 0),
    contract     TEXT NOT NULL CHECK (contract ~ '^0x[0-9a-f]{40}$'),
    tx_hash      TEXT NOT NULL UNIQUE CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    -- sent: in the mempool; mined: in a block, waiting for confirmations;
    -- confirmed: enough confirmations; dropped: removed by a reorg or from
    -- the mempool; reverted: mined but failed (e.g. lost a race).
    status       TEXT NOT NULL CHECK (status IN ('sent', 'mined', 'confirmed', 'dropped', 'reverted')),
    block_number BIGINT CHECK (block_number >= 0),
    block_hash   TEXT CHECK (block_hash ~ '^0x[0-9a-f]{64}$'),
    -- The checkpoint's sequence number in the contract.
    seq          BIGINT CHECK (seq >= 0),
    gas_used     BIGINT CHECK (gas_used >= 0),
    sent_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at TIMESTAMPTZ,
    CHECK (status NOT IN ('mined', 'confirmed')
           OR (block_number IS NOT NULL AND block_hash IS NOT NULL AND seq IS NOT NULL))
);

CREATE UNIQUE INDEX transparency_anchors_confirmed
    ON transparency_anchors (tree_size, chain_id, contract) WHERE status = 'confirmed';

CREATE TRIGGER transparency_anchors_kept BEFORE DELETE ON transparency_anchors
    FOR EACH ROW EXECUTE FUNCTION transparency_refuse_change();
CREATE TRIGGER transparency_anchors_no_truncate BEFORE TRUNCATE ON transparency_anchors
    FOR EACH STATEMENT EXECUTE FUNCTION transparency_refuse_change();
