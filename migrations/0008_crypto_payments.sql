-- Crypto payments: the quote a payment was confirmed with, and what the
-- chain watcher has seen for its reference. The payment row's `crypto`
-- column is the API view of this, rewritten in the same transaction as
-- every change here.

ALTER TABLE payments ADD COLUMN crypto JSONB;

CREATE TABLE crypto_payments (
    payment_id      TEXT PRIMARY KEY REFERENCES payments (id),
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    chain_id        BIGINT NOT NULL,
    -- Ledger asset code (`usdc:31337`) and the token the router must report
    -- (the zero address for the native coin).
    asset           TEXT NOT NULL REFERENCES assets (code),
    token           TEXT NOT NULL CHECK (token ~ '^0x[0-9a-f]{40}$'),
    router          TEXT NOT NULL CHECK (router ~ '^0x[0-9a-f]{40}$'),
    -- 32 random bytes, 0x-hex: the router event's indexed `ref`.
    reference       TEXT NOT NULL UNIQUE CHECK (reference ~ '^0x[0-9a-f]{64}$'),
    -- The quote: base units owed, locked until expires_at.
    expected        NUMERIC NOT NULL CHECK (expected > 0 AND expected = trunc(expected)),
    -- How the quote was made (`par`, or the feed's price and round).
    rate            JSONB NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    confirmations   BIGINT NOT NULL CHECK (confirmations >= 1),
    -- Detected (in canonical blocks, on time) and confirmed amounts.
    received        NUMERIC NOT NULL DEFAULT 0 CHECK (received >= 0),
    confirmed       NUMERIC NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
    -- null, underpaid, overpaid, paid_late.
    exception       TEXT CHECK (exception IN ('underpaid', 'overpaid', 'paid_late')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- How each watched transfer was booked, so a deep reorg can undo exactly
-- that. One row per chain transfer that carried a payment's reference or
-- was sent to suspense.
CREATE TABLE crypto_bookings (
    transfer_id     BIGINT PRIMARY KEY,
    payment_id      TEXT REFERENCES payments (id),
    -- `payment` (counted towards the payment), `late`, `wrong_asset`,
    -- `unmatched` (no payment has this reference): the last three are
    -- held in suspense for the merchant's (or operator's) decision.
    booking         TEXT NOT NULL CHECK (booking IN ('payment', 'late', 'wrong_asset', 'unmatched')),
    counted         BOOLEAN NOT NULL DEFAULT false,
    confirmed       BOOLEAN NOT NULL DEFAULT false,
    reversed        BOOLEAN NOT NULL DEFAULT false
);
