-- A hot account's shards are waited for in one order, so that debits
-- waiting for them no longer deadlock (issue 19's API bench: two manual
-- captures of one merchant, one rolled back with 40P01 and answered 500).
--
-- When every shard of an account that fits a change is busy, ledger_apply
-- waited for one with SELECT … WHERE fits ORDER BY … LIMIT 1 FOR UPDATE,
-- in an order that began at a random shard, and when no shard fitted it
-- locked them all from shard 0 to gather the account. A row that was
-- waited for and no longer fits once its holder commits is skipped but
-- stays locked to the end of the transaction (PostgreSQL keeps the locks
-- its recheck rejects), and shards that did not fit when the wait began
-- were never locked. So a waiter could hold a shard while it waited for a
-- lower one (the next in its rotated order, or shard 0 of the gathering),
-- and two such waiters deadlocked.
--
-- Now the slow path locks the shards one at a time from shard 0 up,
-- waiting for each, and stops at the first that fits after its lock: a
-- waiter only ever waits for a shard above every shard it holds, so
-- waiters cannot wait in a circle. When none fits it holds them all, in
-- order, and gathers without locking again. The fast path is unchanged:
-- it takes only a shard it can lock at once (SKIP LOCKED) and waits for
-- nothing. Deadlocks across two statements of one transaction remain
-- possible (their order is the caller's); the node runs such bookings
-- again (payments/conflicts.rs).

CREATE OR REPLACE FUNCTION ledger_apply(p_account BIGINT, p_shards SMALLINT, d_posted NUMERIC,
                                        d_pending_debits NUMERIC, d_pending_credits NUMERIC)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_start INTEGER := 0;
    v_shard SMALLINT;
    v_fits  BOOLEAN;
    v_name  TEXT;
BEGIN
    IF p_shards > 1 THEN
        v_start := floor(random() * p_shards)::integer;
        UPDATE ledger_balances b
           SET posted = b.posted + d_posted,
               pending_debits = b.pending_debits + d_pending_debits,
               pending_credits = b.pending_credits + d_pending_credits
         WHERE (b.account_id, b.shard) = (
                   SELECT account_id, shard FROM ledger_balances
                    WHERE account_id = p_account
                      AND ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                                      pending_credits + d_pending_credits)
                    ORDER BY (shard + p_shards - v_start) % p_shards
                    LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING b.shard INTO v_shard;
        IF v_shard IS NOT NULL THEN
            RETURN;
        END IF;
        -- Every shard that fits is busy. Take the shards one at a time in
        -- shard order, waiting for each, until one fits; when none does,
        -- this transaction holds them all and gathers the account into
        -- shard 0.
        FOR v_candidate IN 0 .. p_shards - 1 LOOP
            SELECT ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                               pending_credits + d_pending_credits)
              INTO v_fits
              FROM ledger_balances
             WHERE account_id = p_account AND shard = v_candidate
               FOR UPDATE;
            IF v_fits THEN
                v_shard := v_candidate;  -- the loop's own integer
                EXIT;
            END IF;
        END LOOP;
        IF v_shard IS NULL THEN
            UPDATE ledger_balances b
               SET posted = CASE WHEN b.shard = 0 THEN t.posted ELSE 0 END,
                   pending_debits = CASE WHEN b.shard = 0 THEN t.pending_debits ELSE 0 END,
                   pending_credits = CASE WHEN b.shard = 0 THEN t.pending_credits ELSE 0 END
              FROM (SELECT sum(posted) AS posted, sum(pending_debits) AS pending_debits,
                           sum(pending_credits) AS pending_credits
                      FROM ledger_balances WHERE account_id = p_account) t
             WHERE b.account_id = p_account;
            v_shard := 0;
        END IF;
    ELSE
        v_shard := 0;
    END IF;
    UPDATE ledger_balances
       SET posted = posted + d_posted,
           pending_debits = pending_debits + d_pending_debits,
           pending_credits = pending_credits + d_pending_credits
     WHERE account_id = p_account AND shard = v_shard
       AND ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                       pending_credits + d_pending_credits);
    IF NOT FOUND THEN
        SELECT concat_ws('/', nullif(owner, ''), kind, nullif(qualifier, ''), asset) INTO v_name
          FROM ledger_accounts WHERE id = p_account;
        RAISE EXCEPTION 'insufficient funds in ledger account %', v_name
            USING ERRCODE = 'EL003',
                  DETAIL = format('account_id=%s posted_change=%s pending_debit_change=%s',
                                  p_account, d_posted, d_pending_debits);
    END IF;
END
$$;
