-- Fewer statements inside the database for each journal entry and each
-- event (issue 19). Every invariant stays enforced by the database; each
-- change below says what enforces it now.

-- 1. A posting's entry and account.
--
-- Two foreign keys checked each posting with a query of its own (eight
-- per card payment) and locked the account's row FOR KEY SHARE: on a hot
-- account every concurrent entry shared that lock, a new multixact each
-- time. The statement trigger that already reads every new posting with
-- its entry and its account now checks both, once per statement:
--   - the entry exists and was written by this transaction (EL002, as a
--     posting added to an earlier entry always was);
--   - the account exists, with the posting's asset and owner (EL002).
-- Entries and accounts can be neither deleted nor changed (their
-- triggers refuse it, TRUNCATE included), so what holds when a posting is
-- written holds for ever. `epg ledger check` checks it again from the
-- rows.
ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_entry_id_fkey;
ALTER TABLE ledger_postings DROP CONSTRAINT ledger_postings_account_id_asset_owner_fkey;

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
        SELECT p.account_id, a.id IS NOT NULL AS known, a.shards,
               bool_and(p.asset = a.asset AND p.owner = a.owner) AS matches,
               coalesce(sum(p.amount) FILTER (WHERE p.phase = 'posted'), 0) AS d_posted,
               coalesce(sum(p.amount) FILTER (WHERE p.phase = 'pending_debit'), 0) AS d_pd,
               coalesce(-sum(p.amount) FILTER (WHERE p.phase = 'pending_credit'), 0) AS d_pc
          FROM new_postings p LEFT JOIN ledger_accounts a ON a.id = p.account_id
         GROUP BY p.account_id, a.id, a.shards
         ORDER BY p.account_id
    LOOP
        IF NOT r.known OR NOT r.matches THEN
            RAISE EXCEPTION 'a posting to account % names no such account, or not its asset and owner',
                r.account_id
                USING ERRCODE = 'EL002';
        END IF;
        IF r.d_posted <> 0 OR r.d_pd <> 0 OR r.d_pc <> 0 THEN
            PERFORM ledger_apply(r.account_id, r.shards, r.d_posted, r.d_pd, r.d_pc);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

-- 2. A hot account's shard: picked and updated in one statement (the
-- shard is locked by the sub-select, FOR UPDATE SKIP LOCKED, from a random
-- shard on, as before, and updated by the same statement), instead of two
-- SELECTs (from the random shard up, then below it) and an UPDATE. The
-- slow paths (every fitting shard busy; no shard fits alone) are as they
-- were.
CREATE OR REPLACE FUNCTION ledger_apply(p_account BIGINT, p_shards SMALLINT, d_posted NUMERIC,
                                        d_pending_debits NUMERIC, d_pending_credits NUMERIC)
RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_start INTEGER := 0;
    v_shard SMALLINT;
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
        -- Every shard that fits is busy: wait for one (they free up when
        -- their transactions end).
        SELECT shard INTO v_shard FROM ledger_balances
         WHERE account_id = p_account
           AND ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                           pending_credits + d_pending_credits)
         ORDER BY (shard + p_shards - v_start) % p_shards LIMIT 1 FOR UPDATE;
        IF v_shard IS NULL THEN
            -- No shard fits alone: gather the account into shard 0.
            PERFORM 1 FROM ledger_balances WHERE account_id = p_account
             ORDER BY shard FOR UPDATE;
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

-- 3. The event clock of a transaction whose events are all of one
-- merchant (a payment's booking: nearly every one): its clock row's
-- UPDATE takes the lock and the next position at once, instead of an
-- INSERT … ON CONFLICT, a SELECT … FOR UPDATE and then the UPDATE. A
-- transaction with several merchants' events, or a merchant without a
-- clock row yet, takes the ordered path of migration 0020. The lock is
-- the same row lock, held to the commit: the invariant of 0020 holds.
CREATE OR REPLACE FUNCTION events_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    merchants TEXT[];
    next BIGINT;
BEGIN
    IF current_setting('epg.event_clocks', true) IS DISTINCT FROM 'locked' THEN
        IF current_setting('epg.event_merchants', true) = NEW.merchant_id || ',' THEN
            UPDATE event_clocks SET last = last + 1 WHERE merchant_id = NEW.merchant_id
            RETURNING last INTO next;
            IF next IS NOT NULL THEN
                PERFORM set_config('epg.event_clocks', 'locked', true);
                UPDATE events SET position = next WHERE seq = NEW.seq;
                RETURN NULL;
            END IF;
        END IF;
        SELECT array_agg(DISTINCT m ORDER BY m) INTO merchants
          FROM unnest(string_to_array(current_setting('epg.event_merchants', true), ',')) AS m
         WHERE m <> '';
        INSERT INTO event_clocks (merchant_id, last)
        SELECT m, 0 FROM unnest(merchants) AS m ORDER BY m
        ON CONFLICT (merchant_id) DO NOTHING;
        PERFORM 1 FROM event_clocks WHERE merchant_id = ANY (merchants)
          ORDER BY merchant_id FOR UPDATE;
        PERFORM set_config('epg.event_clocks', 'locked', true);
    END IF;
    UPDATE event_clocks SET last = last + 1 WHERE merchant_id = NEW.merchant_id
    RETURNING last INTO next;
    UPDATE events SET position = next WHERE seq = NEW.seq;
    RETURN NULL;
END
$$;
