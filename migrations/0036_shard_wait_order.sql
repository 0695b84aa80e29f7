-- A hot account's shards are locked in one order, so that changes waiting
-- for them no longer deadlock (issue 19's API bench: two manual captures of
-- one merchant, one rolled back with 40P01 and answered 500).
--
-- When every shard of an account that fits a change was busy, ledger_apply
-- waited for one with SELECT … WHERE fits ORDER BY … LIMIT 1 FOR UPDATE,
-- in an order that began at a random shard, and when no shard fitted it
-- locked them all from shard 0 to gather the account. PostgreSQL keeps the
-- lock of a row it locked and then rejected on recheck (the row changed
-- since the statement's snapshot and no longer fits) to the end of the
-- transaction; shards that did not fit when the wait began were never
-- locked. So a transaction could hold a shard while it waited for a lower
-- one (the next in its rotated order, shard 0 of the gathering, or any
-- shard after its fast path had kept a rejected one), and two such
-- transactions deadlocked.
--
-- Now no transaction waits for a shard below one it holds:
--   - the slow path locks shards one at a time from shard 0 up, waiting
--     for each, stops at the first that fits after its lock, and when none
--     does gathers holding them all;
--   - the fast path (a random start, SKIP LOCKED: it waits for nothing)
--     runs in a subtransaction when the change could fail to fit a row
--     (a debit against a floor, a pending amount released), and a fast
--     path that found no shard rolls it back, releasing any rejected
--     row's lock. A change that fits an empty row (a credit, say: most of
--     a card payment's) cannot be rejected and takes no subtransaction.
-- Deadlocks across two statements of one transaction remain possible
-- (their order is the caller's); the node runs such bookings again
-- (payments/conflicts.rs).

CREATE FUNCTION ledger_apply(p_account BIGINT, p_shards SMALLINT, d_posted NUMERIC,
                             d_pending_debits NUMERIC, d_pending_credits NUMERIC,
                             p_fits_alone BOOLEAN)
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
        IF p_fits_alone THEN
            -- A change that fits an empty row fits every row that fits:
            -- no shard the fast path locks can fail its recheck.
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
        ELSE
            -- A shard the fast path locks can have changed since its
            -- snapshot and fail the recheck; PostgreSQL would keep that
            -- lock to the end of the transaction, out of shard order. A
            -- fast path that finds no shard rolls its subtransaction
            -- back, which releases every lock it took.
            BEGIN
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
                IF v_shard IS NULL THEN
                    RAISE EXCEPTION USING ERRCODE = 'EL009';
                END IF;
            EXCEPTION WHEN SQLSTATE 'EL009' THEN
                v_shard := NULL;
            END;
        END IF;
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

CREATE OR REPLACE FUNCTION ledger_postings_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF EXISTS (SELECT 1 FROM new_postings p LEFT JOIN ledger_entries e ON e.id = p.entry_id
                WHERE e.id IS NULL OR e.txid <> pg_current_xact_id()) THEN
        RAISE EXCEPTION 'postings can only be added to an entry created in the same transaction'
            USING ERRCODE = 'EL002';
    END IF;
    FOR r IN
        SELECT p.account_id, a.id IS NOT NULL AS known, a.shards, a.floor,
               bool_and(p.asset = a.asset AND p.owner = a.owner) AS matches,
               coalesce(sum(p.amount) FILTER (WHERE p.phase = 'posted'), 0) AS d_posted,
               coalesce(sum(p.amount) FILTER (WHERE p.phase = 'pending_debit'), 0) AS d_pd,
               coalesce(-sum(p.amount) FILTER (WHERE p.phase = 'pending_credit'), 0) AS d_pc
          FROM new_postings p LEFT JOIN ledger_accounts a ON a.id = p.account_id
         GROUP BY p.account_id, a.id, a.shards, a.floor
         ORDER BY p.account_id
    LOOP
        IF NOT r.known OR NOT r.matches THEN
            RAISE EXCEPTION 'a posting to account % names no such account, or not its asset and owner',
                r.account_id
                USING ERRCODE = 'EL002';
        END IF;
        IF r.d_posted <> 0 OR r.d_pd <> 0 OR r.d_pc <> 0 THEN
            PERFORM ledger_apply(r.account_id, r.shards, r.d_posted, r.d_pd, r.d_pc,
                                 ledger_fits(r.floor, r.d_posted, r.d_pd, r.d_pc));
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

DROP FUNCTION ledger_apply(BIGINT, SMALLINT, NUMERIC, NUMERIC, NUMERIC);
