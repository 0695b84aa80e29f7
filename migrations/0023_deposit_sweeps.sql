-- Issue 17: sweeps of deposit addresses, sent by the hot wallet like
-- refunds and payouts (same nonce row, fee bumps, confirmations), as
-- `chain_sends` of purpose `sweep`: to the DepositFactory, with the call's
-- input stored, for no merchant. The addresses each sweep moves, and how
-- much the node had booked for each, are in `deposit_sweeps`.
ALTER TABLE chain_sends DROP CONSTRAINT chain_sends_purpose_check;
ALTER TABLE chain_sends
    ADD CONSTRAINT chain_sends_purpose_check CHECK (purpose IN ('refund', 'payout', 'sweep')),
    ALTER COLUMN merchant_id DROP NOT NULL,
    ADD CONSTRAINT chain_sends_merchant CHECK (purpose = 'sweep' OR merchant_id IS NOT NULL),
    -- The call's input, for a sweep (`sweep(salts, token)`, `sweepNative(salts)`).
    ADD COLUMN input BYTEA,
    ADD CONSTRAINT chain_sends_input CHECK ((purpose = 'sweep') = (input IS NOT NULL));

CREATE TABLE deposit_sweeps (
    send_id         TEXT NOT NULL REFERENCES chain_sends (id),
    chain_id        BIGINT NOT NULL,
    deposit_address TEXT NOT NULL CHECK (deposit_address ~ '^0x[0-9a-f]{40}$'),
    asset           TEXT NOT NULL REFERENCES assets (code),
    -- Confirmed deposits at the address the node had not swept yet: what
    -- the sweep books from `deposits:<chain>` to `treasury:<chain>`.
    amount          NUMERIC NOT NULL CHECK (amount > 0 AND amount = trunc(amount)),
    PRIMARY KEY (send_id, deposit_address)
);

CREATE INDEX deposit_sweeps_address ON deposit_sweeps (chain_id, deposit_address, asset);
