-- Issue 17: per-payment deposit addresses (CREATE2 forwarders of the chain's
-- DepositFactory), for payers who can only send to an address.

-- Money at deposit addresses, the treasury's but not yet swept into it: an
-- asset account per chain, as the treasury itself. A sweep moves it from
-- here to `treasury:<chain>`; `epg reconcile chain` counts the on-chain
-- balances of the addresses against it.
INSERT INTO ledger_account_kinds (kind, is_merchant, normal, has_floor, shards, qualifier, description) VALUES
    ('deposits', false, 'debit', false, 8, '^[1-9][0-9]{0,19}$',
        'Money at deposit addresses on a chain, not yet swept to the treasury (qualifier: the chain id).');

-- The payment's deposit address on its quote's chain: stable for the
-- payment (the salt is derived from the payment id), so money sent to it
-- after a new quote, or after the payment closed, is still the payment's.
-- `mode`: `any` offers the router and the deposit address, `deposit` only
-- the address.
ALTER TABLE crypto_payments
    ADD COLUMN deposit_address TEXT CHECK (deposit_address ~ '^0x[0-9a-f]{40}$'),
    ADD COLUMN deposit_salt TEXT CHECK (deposit_salt ~ '^0x[0-9a-f]{64}$'),
    ADD COLUMN mode TEXT NOT NULL DEFAULT 'any' CHECK (mode IN ('any', 'deposit')),
    ADD CHECK ((deposit_address IS NULL) = (deposit_salt IS NULL)),
    ADD CHECK (mode = 'any' OR deposit_address IS NOT NULL);

CREATE UNIQUE INDEX crypto_payments_deposit_address
    ON crypto_payments (chain_id, deposit_address) WHERE deposit_address IS NOT NULL;
