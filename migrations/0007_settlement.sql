-- Settlement batches (src/settlement): per merchant and period, the
-- merchant's ledger movements that were not settled yet are netted, moved
-- from pending to available, appended to the transparency log (one leaf
-- per item), and paid out. Each ledger entry is settled at most once.

CREATE TABLE settlements (
    id            TEXT PRIMARY KEY CHECK (id ~ '^st_[A-Za-z0-9]{24}$'),
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    period_start  TIMESTAMPTZ NOT NULL,
    period_end    TIMESTAMPTZ NOT NULL CHECK (period_end >= period_start),
    -- Per asset: gross, fees, net, moved to available, paid out (JSON of
    -- decimal strings, so 18-decimal amounts stay exact).
    totals        JSONB NOT NULL,
    -- Leaves [first_leaf, first_leaf + leaf_count) of the transparency log.
    first_leaf    BIGINT NOT NULL CHECK (first_leaf >= 0),
    leaf_count    BIGINT NOT NULL CHECK (leaf_count >= 0),
    -- Set once a checkpoint covering every leaf is anchored on-chain.
    checkpoint_size BIGINT,
    checkpoint_root BYTEA CHECK (length(checkpoint_root) = 32),
    anchor_chain_id BIGINT,
    anchor_contract TEXT,
    anchor_tx_hash  TEXT,
    anchor_block    BIGINT,
    anchored_at     TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX settlements_merchant_created ON settlements (merchant_id, created_at DESC, id DESC);
CREATE INDEX settlements_unanchored ON settlements (created_at) WHERE anchored_at IS NULL;

CREATE TABLE settlement_items (
    settlement_id TEXT NOT NULL REFERENCES settlements (id),
    -- The ledger entry settled; UNIQUE: an entry is settled once.
    entry_id      BIGINT NOT NULL UNIQUE REFERENCES ledger_entries (id),
    -- Balance transaction id, kind and source object, as merchants see them.
    txn_id        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    source_id     TEXT,
    asset         TEXT NOT NULL REFERENCES assets (code),
    -- Signed change of the merchant's balance, fees excluded (smallest units).
    amount        NUMERIC NOT NULL,
    fee           NUMERIC NOT NULL DEFAULT 0,
    leaf_index    BIGINT,
    PRIMARY KEY (settlement_id, entry_id)
);

CREATE TABLE payouts (
    id            TEXT PRIMARY KEY CHECK (id ~ '^po_[A-Za-z0-9]{24}$'),
    merchant_id   TEXT NOT NULL REFERENCES merchants (id),
    settlement_id TEXT NOT NULL REFERENCES settlements (id),
    asset         TEXT NOT NULL REFERENCES assets (code),
    amount        NUMERIC NOT NULL CHECK (amount > 0),
    -- `bank_account` (fiat: a record for the bank file) or a 0x address.
    destination   TEXT NOT NULL,
    -- fiat payouts are `paid` when recorded; crypto payouts wait for the
    -- on-chain sender (`pending`, then `paid` or `failed`).
    status        TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
    tx_hash       TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX payouts_settlement ON payouts (settlement_id);
