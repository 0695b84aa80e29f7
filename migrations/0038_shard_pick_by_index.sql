-- A hot account's shard picked by its index (issue 19).
--
-- ledger_apply's fast path picked a shard with one SELECT over all of the
-- account's rows: each row's fit tested (a call of the PL/pgSQL
-- ledger_fits), all of them sorted into an order that starts at a random
-- shard, the first unlocked one taken. A card payment's entry touches
-- three such accounts (32, 8 and 32 shards): some 70 calls and three
-- sorts per entry, 11% of the server's CPU under pgbench running the entry
-- alone. Now the shard is taken in the primary key's order from the random
-- start up (a second statement wraps around below it only when every shard
-- above is busy), so the scan stops at the first unlocked shard that fits;
-- and a change that fits an empty row tests no shard at all (it fits every
-- row, and the CHECK still guards each one). pgbench on the entry alone,
-- 8 clients, alternated: 0.78-0.96 ms of server CPU per entry before,
-- 0.67-0.80 after.
--
-- Unchanged: the fast path waits for nothing (SKIP LOCKED), a try that
-- could lock a shard too small for it runs in a subtransaction, and the
-- slow path (every fitting shard busy) is as migration 0036 left it, so no
-- change waits for a shard below one it holds.

-- Applies a change to the first shard of the account, in key order from
-- p_start round to below it, that this transaction can lock at once and
-- (when p_test) that the change fits; its number, or NULL when there is
-- none. Waits for nothing (SKIP LOCKED).
CREATE FUNCTION ledger_take_free_shard(p_account BIGINT, p_shards SMALLINT, p_start INTEGER,
                                       d_posted NUMERIC, d_pending_debits NUMERIC,
                                       d_pending_credits NUMERIC, p_test BOOLEAN)
RETURNS SMALLINT
LANGUAGE plpgsql AS $$
DECLARE
    v_shard SMALLINT;
BEGIN
    -- From the start up, then (every shard there busy) below it: each
    -- pass one index range scan that stops at the first free shard.
    FOR v_pass IN 0 .. 1 LOOP
        UPDATE ledger_balances b
           SET posted = b.posted + d_posted,
               pending_debits = b.pending_debits + d_pending_debits,
               pending_credits = b.pending_credits + d_pending_credits
         WHERE (b.account_id, b.shard) = (
                   SELECT account_id, shard FROM ledger_balances
                    WHERE account_id = p_account
                      AND shard >= CASE v_pass WHEN 0 THEN p_start ELSE 0 END
                      AND shard < CASE v_pass WHEN 0 THEN p_shards ELSE p_start END
                      AND (NOT p_test
                           OR ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                                          pending_credits + d_pending_credits))
                    ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED)
        RETURNING b.shard INTO v_shard;
        IF v_shard IS NOT NULL OR p_start = 0 THEN
            RETURN v_shard;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION ledger_apply(p_account BIGINT, p_shards SMALLINT, d_posted NUMERIC,
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
            -- A change that fits an empty row fits every row that fits
            -- (the rule's terms are sums compared with 0), and every row
            -- fits (the CHECK): any shard will do, so none is tested, and
            -- no shard the fast path locks can fail its recheck.
            v_shard := ledger_take_free_shard(p_account, p_shards, v_start, d_posted,
                                              d_pending_debits, d_pending_credits, false);
        ELSE
            -- A shard the fast path locks can have changed since its
            -- snapshot and fail the recheck; PostgreSQL would keep that
            -- lock to the end of the transaction, out of shard order. A
            -- fast path that finds no shard rolls its subtransaction
            -- back, which releases every lock it took.
            BEGIN
                v_shard := ledger_take_free_shard(p_account, p_shards, v_start, d_posted,
                                                  d_pending_debits, d_pending_credits, true);
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
