-- On-chain sends from the node's hot wallet (src/chain/sender): crypto
-- refunds and crypto payouts. One `chain_sends` row per money movement,
-- created in the same transaction as the refund or payout it pays; one
-- `chain_send_txs` row per signed transaction, written *before* it is
-- broadcast, so a node that dies after broadcasting still knows the hash
-- and the raw bytes (a restart re-broadcasts them, never a second payment).
-- Every transaction of a send carries the same nonce, so at most one of
-- them can ever be mined.

-- The next nonce the node will use per chain and sending address. The
-- chain's own pending count can be ahead (another signer using the same
-- key): the sender takes the larger of the two, under this row's lock.
CREATE TABLE chain_nonces (
    chain_id    BIGINT NOT NULL,
    address     TEXT NOT NULL CHECK (address ~ '^0x[0-9a-f]{40}$'),
    next_nonce  BIGINT NOT NULL CHECK (next_nonce >= 0),
    PRIMARY KEY (chain_id, address)
);

CREATE TABLE chain_sends (
    id            TEXT PRIMARY KEY CHECK (id ~ '^cs_[A-Za-z0-9]{24}$'),
    chain_id      BIGINT NOT NULL,
    -- What the send pays, and that object's id (`re_…`, `po_…`): a refund
    -- or payout is paid by exactly one send.
    purpose       TEXT NOT NULL CHECK (purpose IN ('refund', 'payout')),
    object_id     TEXT NOT NULL,
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    -- Ledger asset (`usdc:31337`) and its token (zero address: native coin).
    asset         TEXT NOT NULL REFERENCES assets (code),
    token         TEXT NOT NULL CHECK (token ~ '^0x[0-9a-f]{40}$'),
    -- The hot wallet, set when the first transaction is signed.
    from_address  TEXT CHECK (from_address ~ '^0x[0-9a-f]{40}$'),
    to_address    TEXT NOT NULL CHECK (to_address ~ '^0x[0-9a-f]{40}$'),
    amount        NUMERIC NOT NULL CHECK (amount > 0 AND amount = trunc(amount)),
    -- queued: no live transaction; sent: a transaction with `nonce` is out;
    -- confirmed: mined, succeeded and `confirmations` deep; failed: mined
    -- and reverted (the money did not move, the gas did).
    status        TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'confirmed', 'failed')),
    nonce         BIGINT CHECK (nonce >= 0),
    -- The mined transaction once there is one.
    tx_hash       TEXT CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    block_number  BIGINT,
    block_hash    TEXT,
    -- Wei paid for gas (gas used × effective price), booked as a network fee.
    gas_fee       NUMERIC CHECK (gas_fee >= 0),
    -- Broadcasts refused by the endpoint (insufficient funds, …) in a row.
    failures      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (purpose, object_id),
    CHECK (status = 'queued' OR (nonce IS NOT NULL AND from_address IS NOT NULL)),
    CHECK (status NOT IN ('confirmed', 'failed') OR (tx_hash IS NOT NULL AND gas_fee IS NOT NULL))
);

CREATE INDEX chain_sends_open ON chain_sends (chain_id, created_at)
    WHERE status IN ('queued', 'sent');

CREATE TABLE chain_send_txs (
    tx_hash       TEXT PRIMARY KEY CHECK (tx_hash ~ '^0x[0-9a-f]{64}$'),
    send_id       TEXT NOT NULL REFERENCES chain_sends (id),
    nonce         BIGINT NOT NULL CHECK (nonce >= 0),
    gas_limit     BIGINT NOT NULL CHECK (gas_limit > 0),
    max_fee_per_gas          NUMERIC NOT NULL CHECK (max_fee_per_gas >= 0),
    max_priority_fee_per_gas NUMERIC NOT NULL CHECK (max_priority_fee_per_gas >= 0),
    -- The signed EIP-2718 envelope, for re-broadcasting.
    raw           BYTEA NOT NULL,
    -- signed: written, maybe not broadcast yet; broadcast: accepted by the
    -- endpoint; rejected: refused (its nonce was given back or reused);
    -- replaced: superseded by a fee bump or by another transaction at the
    -- nonce.
    status        TEXT NOT NULL CHECK (status IN ('signed', 'broadcast', 'rejected', 'replaced')),
    error         TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX chain_send_txs_send ON chain_send_txs (send_id, created_at);

-- A crypto refund is paid on-chain: where to, how much of the asset, and
-- the send that pays it (the API's `refund.crypto`).
ALTER TABLE refunds ADD COLUMN crypto JSONB;
