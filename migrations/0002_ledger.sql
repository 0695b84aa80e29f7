-- The ledger: assets, accounts, immutable journal entries with their
-- postings, balances the database keeps itself, two-phase holds and fee
-- schedules. src/ledger/mod.rs explains the model; this file is where its
-- invariants are enforced, so that not even a hand-written INSERT can break
-- them:
--
--   * an entry's postings sum to zero per asset, separately for posted and
--     pending amounts, and an entry has at least two postings (a deferred
--     constraint trigger, checked at commit);
--   * entries and postings are never updated, deleted or truncated;
--   * every balance row changes in the statement that inserts the postings
--     (a statement trigger), and by no other hand;
--   * accounts that must not go negative cannot (a CHECK on every balance
--     row; a sharded account is non-negative shard by shard, hence in sum);
--   * a hold's pending postings are exactly its two legs when it opens and
--     their reversal when it is posted, voided or expired.
--
-- Amounts are integers in the asset's smallest unit, stored as NUMERIC
-- (exact, no float), positive for a debit and negative for a credit.
-- Custom SQLSTATEs: EL001 unbalanced or malformed entry or account, EL002
-- forbidden change, EL003 insufficient funds, EL004 unknown asset.

CREATE TABLE assets (
    -- `usd` for an ISO 4217 currency; `<symbol>:<chain id>` on a chain.
    code          TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('fiat', 'crypto')),
    -- Decimal places of one whole unit (USD 2, JPY 0, KWD 3, ETH 18).
    scale         SMALLINT NOT NULL CHECK (scale BETWEEN 0 AND 36),
    symbol        TEXT NOT NULL CHECK (symbol ~ '^[a-z][a-z0-9]{0,15}$'),
    chain_id      BIGINT CHECK (chain_id > 0),
    -- ERC-20 contract, lower-case hex; NULL for the chain's native asset.
    token_address TEXT CHECK (token_address ~ '^0x[0-9a-f]{40}$'),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (CASE kind
        WHEN 'fiat' THEN code = symbol AND code ~ '^[a-z]{3}$' AND chain_id IS NULL
                         AND token_address IS NULL AND scale <= 4
        ELSE chain_id IS NOT NULL AND code = symbol || ':' || chain_id::text
    END)
);

-- One native asset per chain, and a token contract is one asset.
CREATE UNIQUE INDEX assets_chain_token ON assets (chain_id, coalesce(token_address, ''))
    WHERE kind = 'crypto';

-- Refuses the statement it is attached to (immutable tables).
CREATE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: the ledger is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'EL002';
END
$$;

-- A scale changed after amounts were recorded would silently rescale them.
CREATE TRIGGER assets_immutable BEFORE UPDATE OR DELETE ON assets
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER assets_no_truncate BEFORE TRUNCATE ON assets
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Every ISO 4217 currency in use, with its minor-unit exponent (the same
-- table as src/money/iso4217.rs; a test checks they agree).
INSERT INTO assets (code, kind, scale, symbol)
SELECT c.code, 'fiat', c.scale, c.code
FROM (VALUES
    ('aed', 2), ('afn', 2), ('all', 2), ('amd', 2), ('ang', 2), ('aoa', 2), ('ars', 2),
    ('aud', 2), ('awg', 2), ('azn', 2), ('bam', 2), ('bbd', 2), ('bdt', 2), ('bgn', 2),
    ('bhd', 3), ('bif', 0), ('bmd', 2), ('bnd', 2), ('bob', 2), ('bov', 2), ('brl', 2),
    ('bsd', 2), ('btn', 2), ('bwp', 2), ('byn', 2), ('bzd', 2), ('cad', 2), ('cdf', 2),
    ('che', 2), ('chf', 2), ('chw', 2), ('clf', 4), ('clp', 0), ('cny', 2), ('cop', 2),
    ('cou', 2), ('crc', 2), ('cup', 2), ('cve', 2), ('czk', 2), ('djf', 0), ('dkk', 2),
    ('dop', 2), ('dzd', 2), ('egp', 2), ('ern', 2), ('etb', 2), ('eur', 2), ('fjd', 2),
    ('fkp', 2), ('gbp', 2), ('gel', 2), ('ghs', 2), ('gip', 2), ('gmd', 2), ('gnf', 0),
    ('gtq', 2), ('gyd', 2), ('hkd', 2), ('hnl', 2), ('htg', 2), ('huf', 2), ('idr', 2),
    ('ils', 2), ('inr', 2), ('iqd', 3), ('irr', 2), ('isk', 0), ('jmd', 2), ('jod', 3),
    ('jpy', 0), ('kes', 2), ('kgs', 2), ('khr', 2), ('kmf', 0), ('kpw', 2), ('krw', 0),
    ('kwd', 3), ('kyd', 2), ('kzt', 2), ('lak', 2), ('lbp', 2), ('lkr', 2), ('lrd', 2),
    ('lsl', 2), ('lyd', 3), ('mad', 2), ('mdl', 2), ('mga', 2), ('mkd', 2), ('mmk', 2),
    ('mnt', 2), ('mop', 2), ('mru', 2), ('mur', 2), ('mvr', 2), ('mwk', 2), ('mxn', 2),
    ('mxv', 2), ('myr', 2), ('mzn', 2), ('nad', 2), ('ngn', 2), ('nio', 2), ('nok', 2),
    ('npr', 2), ('nzd', 2), ('omr', 3), ('pab', 2), ('pen', 2), ('pgk', 2), ('php', 2),
    ('pkr', 2), ('pln', 2), ('pyg', 0), ('qar', 2), ('ron', 2), ('rsd', 2), ('rub', 2),
    ('rwf', 0), ('sar', 2), ('sbd', 2), ('scr', 2), ('sdg', 2), ('sek', 2), ('sgd', 2),
    ('shp', 2), ('sle', 2), ('sos', 2), ('srd', 2), ('ssp', 2), ('stn', 2), ('svc', 2),
    ('syp', 2), ('szl', 2), ('thb', 2), ('tjs', 2), ('tmt', 2), ('tnd', 3), ('top', 2),
    ('try', 2), ('ttd', 2), ('twd', 2), ('tzs', 2), ('uah', 2), ('ugx', 0), ('usd', 2),
    ('usn', 2), ('uyi', 0), ('uyu', 2), ('uyw', 4), ('uzs', 2), ('ved', 2), ('ves', 2),
    ('vnd', 0), ('vuv', 0), ('wst', 2), ('xaf', 0), ('xcd', 2), ('xcg', 2), ('xof', 0),
    ('xpf', 0), ('yer', 2), ('zar', 2), ('zmw', 2), ('zwg', 2)
) AS c (code, scale);

-- Whether a balance row (or a balance after a change) is allowed: pending
-- amounts are never negative, and an account with a floor never goes below
-- zero on its normal side, counting the holds it has promised away.
-- `floor` is 'credit' (credit-normal: credits - debits - pending debits >= 0),
-- 'debit' (debit-normal, mirrored) or 'none'.
CREATE FUNCTION ledger_fits(floor TEXT, posted NUMERIC, pending_debits NUMERIC,
                            pending_credits NUMERIC) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT pending_debits >= 0 AND pending_credits >= 0 AND CASE floor
        WHEN 'credit' THEN posted + pending_debits <= 0
        WHEN 'debit' THEN posted - pending_credits >= 0
        ELSE true
    END
$$;

-- What kinds of accounts exist, and the rules every account of a kind
-- follows. Gateway accounts have no floor: they mirror positions outside
-- the node (a processor, a chain) that the ledger records, not controls;
-- only an account without a floor may default to many shards.
CREATE TABLE ledger_account_kinds (
    kind        TEXT PRIMARY KEY CHECK (kind ~ '^[a-z][a-z_]{0,39}$'),
    -- Merchant accounts belong to one merchant; gateway accounts to no one.
    is_merchant BOOLEAN NOT NULL,
    -- The side on which the account's balance is normally positive.
    normal      TEXT NOT NULL CHECK (normal IN ('debit', 'credit')),
    -- Whether the normal-side balance must stay >= 0.
    has_floor   BOOLEAN NOT NULL,
    -- Balance rows a new account of this kind gets (see ledger_apply).
    shards      SMALLINT NOT NULL CHECK (shards BETWEEN 1 AND 256),
    -- What the account's qualifier must look like ('^$': none).
    qualifier   TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (kind, is_merchant)
);

INSERT INTO ledger_account_kinds (kind, is_merchant, normal, has_floor, shards, qualifier, description) VALUES
    ('pending',            true,  'credit', true,  8,  '^$',
        'Merchant funds captured or received but not yet available.'),
    ('available',          true,  'credit', true,  4,  '^$',
        'Merchant funds that can be paid out or refunded from.'),
    ('reserve',            true,  'credit', true,  1,  '^$',
        'Merchant funds withheld (rolling or dispute reserve).'),
    ('fee_revenue',        false, 'credit', false, 32, '^([a-z][a-z0-9_]{0,39})?$',
        'Fees the gateway earned; optionally per payment method.'),
    ('clearing',           false, 'debit',  false, 32, '^[a-z][a-z0-9_]{0,39}$',
        'Owed to the gateway by the processor of a payment method until it settles.'),
    ('treasury',           false, 'debit',  false, 32, '^[1-9][0-9]{0,19}$',
        'Assets the gateway holds on a chain (qualifier: the chain id).'),
    ('refunds_payable',    false, 'credit', false, 8,  '^$',
        'Refunds owed to customers and not yet sent.'),
    ('suspense',           false, 'credit', false, 4,  '^$',
        'Funds received that cannot be attributed yet (unknown reference, late payment).'),
    ('disputes',           false, 'debit',  false, 4,  '^$',
        'Amounts withdrawn by processors for open disputes.'),
    ('payouts_in_transit', false, 'debit',  false, 4,  '^$',
        'Merchant payouts sent and not yet confirmed.'),
    ('network_fees',       false, 'debit',  false, 8,  '^[1-9][0-9]{0,19}$',
        'Gas the gateway paid on a chain (qualifier: the chain id).');

CREATE TABLE ledger_accounts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id TEXT REFERENCES merchants (id),
    -- The merchant id, or '' for the gateway: a non-null key for lookups
    -- and for the postings' copy of it.
    owner       TEXT NOT NULL GENERATED ALWAYS AS (coalesce(merchant_id, '')) STORED,
    is_merchant BOOLEAN NOT NULL GENERATED ALWAYS AS (merchant_id IS NOT NULL) STORED,
    kind        TEXT NOT NULL,
    -- Payment method of a clearing account, chain id of a treasury, or ''.
    qualifier   TEXT NOT NULL DEFAULT '',
    asset       TEXT NOT NULL REFERENCES assets (code),
    -- Number of balance rows (shards 0 .. shards-1), from the kind.
    shards      SMALLINT NOT NULL,
    -- Copied to every balance row, whose CHECK enforces it.
    floor       TEXT NOT NULL CHECK (floor IN ('credit', 'debit', 'none')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    FOREIGN KEY (kind, is_merchant) REFERENCES ledger_account_kinds (kind, is_merchant),
    UNIQUE (owner, kind, qualifier, asset),
    -- Target of the postings' foreign key, which thereby checks that a
    -- posting's asset and owner are its account's.
    UNIQUE (id, asset, owner)
);

CREATE TABLE ledger_balances (
    account_id      BIGINT NOT NULL REFERENCES ledger_accounts (id),
    shard           SMALLINT NOT NULL CHECK (shard >= 0),
    floor           TEXT NOT NULL,
    -- Sum of the account's posted postings that landed on this shard.
    posted          NUMERIC NOT NULL DEFAULT 0,
    -- Holds open against the account, on its debit / credit side.
    pending_debits  NUMERIC NOT NULL DEFAULT 0,
    pending_credits NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, shard),
    CONSTRAINT ledger_balances_floor
        CHECK (ledger_fits(floor, posted, pending_debits, pending_credits))
) WITH (fillfactor = 50); -- room for HOT updates: balance rows change constantly.

-- Fills an account's rules from its kind.
CREATE FUNCTION ledger_account_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k ledger_account_kinds;
    a assets;
BEGIN
    SELECT * INTO k FROM ledger_account_kinds WHERE kind = NEW.kind;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown ledger account kind %', quote_literal(NEW.kind) USING ERRCODE = 'EL001';
    END IF;
    IF k.is_merchant <> (NEW.merchant_id IS NOT NULL) THEN
        RAISE EXCEPTION 'a % account belongs to %', NEW.kind,
            CASE WHEN k.is_merchant THEN 'a merchant' ELSE 'the gateway' END USING ERRCODE = 'EL001';
    END IF;
    SELECT * INTO a FROM assets WHERE code = NEW.asset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown asset %', quote_literal(NEW.asset) USING ERRCODE = 'EL004';
    END IF;
    IF NEW.qualifier !~ k.qualifier THEN
        RAISE EXCEPTION 'qualifier % is not valid for a % account', quote_literal(NEW.qualifier), NEW.kind
            USING ERRCODE = 'EL001';
    END IF;
    IF NEW.kind IN ('treasury', 'network_fees') AND a.chain_id::text IS DISTINCT FROM NEW.qualifier THEN
        RAISE EXCEPTION 'a % account on chain % cannot hold %', NEW.kind, NEW.qualifier, NEW.asset
            USING ERRCODE = 'EL001';
    END IF;
    NEW.shards := k.shards;
    NEW.floor := CASE WHEN k.has_floor THEN k.normal ELSE 'none' END;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_accounts_defaults BEFORE INSERT ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_defaults();

-- Creates an account's balance rows.
CREATE FUNCTION ledger_account_created() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_balances (account_id, shard, floor)
    SELECT NEW.id, s, NEW.floor FROM generate_series(0, NEW.shards - 1) AS s;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_accounts_created AFTER INSERT ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_account_created();

-- Accounts are never deleted; only ledger_reshard may change one (its
-- shard count).
CREATE FUNCTION ledger_accounts_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('epg.ledger_maintenance', true) = 'on'
       AND (NEW.id, NEW.merchant_id, NEW.kind, NEW.qualifier, NEW.asset, NEW.floor)
           IS NOT DISTINCT FROM (OLD.id, OLD.merchant_id, OLD.kind, OLD.qualifier, OLD.asset, OLD.floor) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% on ledger_accounts is not allowed', TG_OP USING ERRCODE = 'EL002';
END
$$;

CREATE TRIGGER ledger_accounts_immutable BEFORE UPDATE OR DELETE ON ledger_accounts
    FOR EACH ROW EXECUTE FUNCTION ledger_accounts_guard();
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Balance rows are written only by the ledger's own triggers and functions
-- (trigger depth >= 2, or the maintenance flag ledger_reshard sets), so a
-- stray UPDATE cannot make them disagree with the postings.
CREATE FUNCTION ledger_balances_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2
       AND current_setting('epg.ledger_maintenance', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'ledger balances follow the postings; % by hand is not allowed', TG_OP
            USING ERRCODE = 'EL002';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.account_id, NEW.shard, NEW.floor)
                            IS DISTINCT FROM (OLD.account_id, OLD.shard, OLD.floor) THEN
        RAISE EXCEPTION 'a balance row cannot move or change its floor' USING ERRCODE = 'EL002';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER ledger_balances_guarded BEFORE INSERT OR UPDATE OR DELETE ON ledger_balances
    FOR EACH ROW EXECUTE FUNCTION ledger_balances_guard();
CREATE TRIGGER ledger_balances_no_truncate BEFORE TRUNCATE ON ledger_balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The id of the account (owner, kind, qualifier, asset), created on first
-- use with its kind's rules. `owner` is a merchant id or '' (gateway).
CREATE FUNCTION ledger_account_id(p_owner TEXT, p_kind TEXT, p_qualifier TEXT, p_asset TEXT)
RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    v_id BIGINT;
BEGIN
    SELECT id INTO v_id FROM ledger_accounts
     WHERE owner = p_owner AND kind = p_kind AND qualifier = p_qualifier AND asset = p_asset;
    IF v_id IS NULL THEN
        INSERT INTO ledger_accounts (merchant_id, kind, qualifier, asset)
        VALUES (nullif(p_owner, ''), p_kind, p_qualifier, p_asset)
        ON CONFLICT (owner, kind, qualifier, asset) DO NOTHING
        RETURNING id INTO v_id;
        IF v_id IS NULL THEN -- created concurrently
            SELECT id INTO v_id FROM ledger_accounts
             WHERE owner = p_owner AND kind = p_kind AND qualifier = p_qualifier AND asset = p_asset;
        END IF;
    END IF;
    RETURN v_id;
END
$$;

CREATE TABLE ledger_entries (
    -- Commit-independent insertion order: the cursor of balance transaction lists.
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The balance transaction id merchants see.
    public_id    TEXT NOT NULL UNIQUE CHECK (public_id ~ '^txn_[A-Za-z0-9]{24}$'),
    -- The caller's idempotency key (e.g. `pay_…:capture`): posting it again
    -- returns this entry; posting other content under it is refused.
    key          TEXT NOT NULL UNIQUE CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of the entry's content as the caller described it.
    content_hash BYTEA NOT NULL CHECK (length(content_hash) = 32),
    -- What happened (`payment`, `refund`, …): the balance transaction type.
    kind         TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,39}$'),
    -- The object it belongs to (`pay_…`, `re_…`, `dp_…`, `st_…`).
    source       TEXT CHECK (source ~ '^[a-z]{2,6}_[A-Za-z0-9]{1,64}$'),
    description  TEXT CHECK (length(description) <= 500),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The transaction that wrote it: postings may join only an entry of
    -- their own transaction, so a committed entry can never grow.
    txid         xid8 NOT NULL DEFAULT pg_current_xact_id()
);

CREATE TRIGGER ledger_entries_immutable BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Two-phase transfers (card authorizations, reserved funds): opening one
-- moves its amount into the pending columns of both accounts; posting
-- (fully or partly), voiding or expiring it moves it out again, in an entry
-- of its own.
CREATE TABLE ledger_holds (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The entry that opened it; the hold's key is that entry's key.
    entry_id          BIGINT NOT NULL UNIQUE REFERENCES ledger_entries (id),
    debit_account_id  BIGINT NOT NULL REFERENCES ledger_accounts (id),
    credit_account_id BIGINT NOT NULL REFERENCES ledger_accounts (id),
    asset             TEXT NOT NULL REFERENCES assets (code),
    amount            NUMERIC NOT NULL CHECK (amount > 0 AND amount = trunc(amount) AND amount < 1e28),
    status            TEXT NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    -- How much of it was posted, once posted.
    posted_amount     NUMERIC CHECK (posted_amount >= 0 AND posted_amount <= amount),
    -- When expire_holds may release it; NULL: never by itself.
    expires_at        TIMESTAMPTZ,
    -- The entry that released it.
    closed_entry_id   BIGINT UNIQUE REFERENCES ledger_entries (id),
    CHECK (debit_account_id <> credit_account_id),
    CHECK ((status = 'pending') = (closed_entry_id IS NULL)),
    CHECK ((status = 'posted') = (posted_amount IS NOT NULL))
);

CREATE INDEX ledger_holds_expiry ON ledger_holds (expires_at)
    WHERE status = 'pending' AND expires_at IS NOT NULL;

-- A hold changes once, from pending to its final state; nothing else moves.
CREATE FUNCTION ledger_holds_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'pending' AND NEW.status <> 'pending'
       AND (NEW.id, NEW.entry_id, NEW.debit_account_id, NEW.credit_account_id, NEW.asset,
            NEW.amount, NEW.expires_at)
           IS NOT DISTINCT FROM (OLD.id, OLD.entry_id, OLD.debit_account_id,
            OLD.credit_account_id, OLD.asset, OLD.amount, OLD.expires_at) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '% of a % hold is not allowed', TG_OP, OLD.status USING ERRCODE = 'EL002';
END
$$;

CREATE TRIGGER ledger_holds_guarded BEFORE UPDATE OR DELETE ON ledger_holds
    FOR EACH ROW EXECUTE FUNCTION ledger_holds_guard();
CREATE TRIGGER ledger_holds_no_truncate BEFORE TRUNCATE ON ledger_holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

CREATE TABLE ledger_postings (
    entry_id   BIGINT NOT NULL REFERENCES ledger_entries (id),
    -- Position in the entry, from 1.
    seq        SMALLINT NOT NULL CHECK (seq >= 1),
    account_id BIGINT NOT NULL,
    -- Copies of the account's, checked by the foreign key below: the asset
    -- for per-entry sums, the owner for per-merchant listings.
    asset      TEXT NOT NULL,
    owner      TEXT NOT NULL,
    -- Smallest units; positive debits, negative credits.
    amount     NUMERIC NOT NULL
               CHECK (amount <> 0 AND amount = trunc(amount) AND abs(amount) < 1e28),
    -- 'posted', or one leg of a hold: 'pending_debit' (+ when it opens,
    -- - when it is released) or 'pending_credit' (- when it opens, +
    -- when it is released).
    phase      TEXT NOT NULL CHECK (phase IN ('posted', 'pending_debit', 'pending_credit')),
    -- A fee charged (or returned): shown as the balance transaction's fee.
    fee        BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (entry_id, seq),
    FOREIGN KEY (account_id, asset, owner) REFERENCES ledger_accounts (id, asset, owner),
    CHECK (NOT fee OR phase = 'posted')
);

-- A merchant's balance transactions, newest first.
CREATE INDEX ledger_postings_owner ON ledger_postings (owner, entry_id) WHERE owner <> '';

CREATE TRIGGER ledger_postings_immutable BEFORE UPDATE OR DELETE ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_postings_no_truncate BEFORE TRUNCATE ON ledger_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Applies a change to one of an account's balance rows.
--
-- An account with one shard has one row, and every writer of the account
-- queues on its lock. A hot account has many: a writer takes, starting at
-- a random shard, the first one no other transaction holds
-- (FOR UPDATE SKIP LOCKED) that can take the change, so concurrent writers
-- spread over the shards instead of queueing. A floor holds shard by shard,
-- hence for the sum; when no single shard can take a debit that the sum
-- could, the account is consolidated into shard 0 (every shard locked, in
-- order) and the debit applied there. When even the sum cannot, the change
-- is refused with EL003 (insufficient funds).
CREATE FUNCTION ledger_apply(p_account BIGINT, p_shards SMALLINT, d_posted NUMERIC,
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
        SELECT shard INTO v_shard FROM ledger_balances
         WHERE account_id = p_account AND shard >= v_start
           AND ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                           pending_credits + d_pending_credits)
         ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF v_shard IS NULL THEN
            SELECT shard INTO v_shard FROM ledger_balances
             WHERE account_id = p_account AND shard < v_start
               AND ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                               pending_credits + d_pending_credits)
             ORDER BY shard LIMIT 1 FOR UPDATE SKIP LOCKED;
        END IF;
        IF v_shard IS NULL THEN
            -- Every shard that fits is busy: wait for one (they free up
            -- when their transactions end).
            SELECT shard INTO v_shard FROM ledger_balances
             WHERE account_id = p_account
               AND ledger_fits(floor, posted + d_posted, pending_debits + d_pending_debits,
                               pending_credits + d_pending_credits)
             ORDER BY (shard + p_shards - v_start) % p_shards LIMIT 1 FOR UPDATE;
        END IF;
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

-- After every INSERT into ledger_postings: checks the postings join entries
-- of this transaction, then applies each account's net change, accounts in
-- id order (one lock order for every writer, so no deadlock between two
-- entries over the same accounts).
CREATE FUNCTION ledger_postings_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF EXISTS (SELECT 1 FROM new_postings p JOIN ledger_entries e ON e.id = p.entry_id
                WHERE e.txid <> pg_current_xact_id()) THEN
        RAISE EXCEPTION 'postings can only be added to an entry created in the same transaction'
            USING ERRCODE = 'EL002';
    END IF;
    FOR r IN
        SELECT p.account_id, a.shards,
               coalesce(sum(p.amount) FILTER (WHERE p.phase = 'posted'), 0) AS d_posted,
               coalesce(sum(p.amount) FILTER (WHERE p.phase = 'pending_debit'), 0) AS d_pd,
               coalesce(-sum(p.amount) FILTER (WHERE p.phase = 'pending_credit'), 0) AS d_pc
          FROM new_postings p JOIN ledger_accounts a ON a.id = p.account_id
         GROUP BY p.account_id, a.shards
         ORDER BY p.account_id
    LOOP
        IF r.d_posted <> 0 OR r.d_pd <> 0 OR r.d_pc <> 0 THEN
            PERFORM ledger_apply(r.account_id, r.shards, r.d_posted, r.d_pd, r.d_pc);
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_postings_balances AFTER INSERT ON ledger_postings
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_postings_inserted();

-- At commit, for every entry written: at least two postings; posted and
-- pending amounts each sum to zero per asset; pending postings exactly the
-- legs of the hold the entry opens, or their reversal for the hold it
-- closes.
CREATE FUNCTION ledger_entry_check() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_count   INTEGER;
    v_pending INTEGER;
    r         RECORD;
    h         ledger_holds;
    v_sign    INTEGER;
BEGIN
    SELECT count(*), count(*) FILTER (WHERE phase <> 'posted') INTO v_count, v_pending
      FROM ledger_postings WHERE entry_id = NEW.id;
    IF v_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % posting(s); an entry needs at least two', NEW.key, v_count
            USING ERRCODE = 'EL001';
    END IF;
    SELECT asset, phase = 'posted' AS is_posted, sum(amount) AS total INTO r
      FROM ledger_postings WHERE entry_id = NEW.id
     GROUP BY asset, phase = 'posted' HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance: its % % postings sum to %', NEW.key,
            CASE WHEN r.is_posted THEN 'posted' ELSE 'pending' END, r.asset, r.total
            USING ERRCODE = 'EL001';
    END IF;
    IF v_pending > 0 THEN
        SELECT * INTO h FROM ledger_holds WHERE entry_id = NEW.id OR closed_entry_id = NEW.id;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'journal entry % has pending postings but opens or closes no hold', NEW.key
                USING ERRCODE = 'EL001';
        END IF;
        v_sign := CASE WHEN h.entry_id = NEW.id THEN 1 ELSE -1 END;
        IF v_pending <> 2
           OR NOT EXISTS (SELECT 1 FROM ledger_postings WHERE entry_id = NEW.id
                             AND phase = 'pending_debit' AND account_id = h.debit_account_id
                             AND amount = v_sign * h.amount)
           OR NOT EXISTS (SELECT 1 FROM ledger_postings WHERE entry_id = NEW.id
                             AND phase = 'pending_credit' AND account_id = h.credit_account_id
                             AND amount = -v_sign * h.amount) THEN
            RAISE EXCEPTION 'journal entry %: pending postings do not match its hold', NEW.key
                USING ERRCODE = 'EL001';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_check();

-- Changes the number of balance rows of an account (make it hot, or cool
-- it down). The balance is gathered into shard 0 first, so nothing moves
-- between accounts.
CREATE FUNCTION ledger_reshard(p_account BIGINT, p_shards SMALLINT) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a ledger_accounts;
BEGIN
    IF p_shards < 1 OR p_shards > 256 THEN
        RAISE EXCEPTION 'shards must be 1 to 256' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO a FROM ledger_accounts WHERE id = p_account FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no ledger account %', p_account USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('epg.ledger_maintenance', 'on', true);
    PERFORM 1 FROM ledger_balances WHERE account_id = p_account ORDER BY shard FOR UPDATE;
    UPDATE ledger_balances b
       SET posted = CASE WHEN b.shard = 0 THEN t.posted ELSE 0 END,
           pending_debits = CASE WHEN b.shard = 0 THEN t.pending_debits ELSE 0 END,
           pending_credits = CASE WHEN b.shard = 0 THEN t.pending_credits ELSE 0 END
      FROM (SELECT sum(posted) AS posted, sum(pending_debits) AS pending_debits,
                   sum(pending_credits) AS pending_credits
              FROM ledger_balances WHERE account_id = p_account) t
     WHERE b.account_id = p_account;
    DELETE FROM ledger_balances WHERE account_id = p_account AND shard >= p_shards;
    INSERT INTO ledger_balances (account_id, shard, floor)
    SELECT p_account, s, a.floor FROM generate_series(a.shards, p_shards - 1) AS s;
    UPDATE ledger_accounts SET shards = p_shards WHERE id = p_account;
    PERFORM set_config('epg.ledger_maintenance', 'off', true);
END
$$;

-- Fee schedules: basis points of the amount plus a fixed amount, per
-- merchant (NULL: the default schedule), payment method and asset (NULL:
-- any asset, percentage only). The fee is computed in Rust
-- (src/ledger/fees.rs) and posted like any other amount.
CREATE TABLE ledger_fee_schedules (
    merchant_id TEXT REFERENCES merchants (id),
    method      TEXT NOT NULL CHECK (method ~ '^[a-z][a-z0-9_]{0,39}$'),
    asset       TEXT REFERENCES assets (code),
    percent_bps INTEGER NOT NULL CHECK (percent_bps BETWEEN 0 AND 10000),
    fixed       NUMERIC NOT NULL DEFAULT 0 CHECK (fixed >= 0 AND fixed = trunc(fixed) AND fixed < 1e28),
    -- Cap on the whole fee, if any.
    max_fee     NUMERIC CHECK (max_fee >= 0 AND max_fee = trunc(max_fee) AND max_fee < 1e28),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Fixed amounts and caps are in an asset's units: they need one.
    CHECK (asset IS NOT NULL OR (fixed = 0 AND max_fee IS NULL)),
    UNIQUE NULLS NOT DISTINCT (merchant_id, method, asset)
);

INSERT INTO ledger_fee_schedules (merchant_id, method, asset, percent_bps, fixed, max_fee) VALUES
    (NULL, 'card',          NULL,  290, 0,  NULL),
    (NULL, 'card',          'usd', 290, 30, NULL),
    (NULL, 'card',          'eur', 250, 25, NULL),
    (NULL, 'card',          'gbp', 250, 20, NULL),
    (NULL, 'card',          'jpy', 360, 0,  NULL),
    (NULL, 'bank_transfer', NULL,  80,  0,  NULL),
    (NULL, 'bank_transfer', 'usd', 80,  0,  500),
    (NULL, 'ewallet',       NULL,  340, 0,  NULL),
    (NULL, 'cash_voucher',  NULL,  300, 0,  NULL),
    (NULL, 'check',         NULL,  100, 0,  NULL),
    (NULL, 'crypto',        NULL,  100, 0,  NULL);
