-- A crypto quote is paid only by the asset it quoted, on its own chain,
-- through its own router. A native coin is token 0x0 on every chain, so a
-- reference alone would let cheap POL on one chain complete an ETH quote
-- on another; such a transfer is now `wrong_asset`, held in suspense.

-- The watcher looks a quote up by the chain it saw the transfer on.
CREATE UNIQUE INDEX crypto_payments_chain_reference ON crypto_payments (chain_id, reference);

ALTER TABLE crypto_payments DROP CONSTRAINT crypto_payments_exception_check;
ALTER TABLE crypto_payments ADD CONSTRAINT crypto_payments_exception_check
    CHECK (exception IN ('underpaid', 'overpaid', 'paid_late', 'wrong_asset', 'unbookable'));

-- `unbookable`: a transfer whose amount no ledger account can hold (a
-- uint256 of a token, far beyond any real supply). It is recorded and
-- skipped, so that one junk event cannot stop a chain's watcher.
ALTER TABLE crypto_bookings DROP CONSTRAINT crypto_bookings_booking_check;
ALTER TABLE crypto_bookings ADD CONSTRAINT crypto_bookings_booking_check
    CHECK (booking IN ('payment', 'late', 'wrong_asset', 'unmatched', 'unbookable'));

-- The gateway's holding accounts never legitimately go below zero: money
-- leaves suspense or refunds_payable only
-- after it arrived there. A floor turns a bug that would take out more
-- into a refused transaction instead of a silently negative balance.
UPDATE ledger_account_kinds SET has_floor = true
 WHERE kind IN ('suspense', 'refunds_payable');

-- Accounts already open get the floor too. Their rules are immutable by
-- design, so the guards step aside for this one statement each; the
-- balance rows' CHECK refuses the migration if any is already below zero.
ALTER TABLE ledger_accounts DISABLE TRIGGER ledger_accounts_immutable;
ALTER TABLE ledger_balances DISABLE TRIGGER ledger_balances_guarded;
UPDATE ledger_accounts a SET floor = k.normal
  FROM ledger_account_kinds k
 WHERE a.kind = k.kind AND k.has_floor AND a.floor = 'none';
UPDATE ledger_balances b SET floor = a.floor
  FROM ledger_accounts a
 WHERE b.account_id = a.id AND b.floor <> a.floor;
ALTER TABLE ledger_balances ENABLE TRIGGER ledger_balances_guarded;
ALTER TABLE ledger_accounts ENABLE TRIGGER ledger_accounts_immutable;
