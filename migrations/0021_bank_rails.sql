-- Bank rails (src/bank): the gateway's own bank accounts, the ISO 20022
-- files exchanged with their banks (camt.053 / camt.054 statements in,
-- pain.001 credit transfers out, pain.002 status reports in), and the
-- reconciliation desk for money that matches nothing.
--
-- Invariants:
--   * a booked statement entry is identified by the bank's own reference:
--     (account, booking date, account-servicer or entry reference) is
--     UNIQUE, so a file imported twice, or an entry notified by camt.054
--     and reported again by camt.053, is booked once;
--   * a statement (account, statement id) is recorded once;
--   * an RF creditor reference names one payment (UNIQUE), and is a
--     well-formed ISO 11649 reference;
--   * a payout or an exception is paid by at most one outgoing transfer
--     (UNIQUE), and an outgoing transfer is in at most one pain.001 file;
--   * a payment has at most one open exception of a kind (partial UNIQUE);
--   * an exception is resolved once, with how (CHECKs);
--   * merchant bank details are stored sealed (AES-GCM, the
--     `bank_accounts` purpose key), with a masked form for display.

CREATE TABLE bank_accounts (
    -- The configuration's name of the account; also the qualifier of its
    -- ledger accounts (`bank:<id>`).
    id              TEXT PRIMARY KEY CHECK (id ~ '^[a-z][a-z0-9_]{0,39}$'),
    holder          TEXT NOT NULL CHECK (length(holder) BETWEEN 1 AND 140),
    currency        TEXT NOT NULL REFERENCES assets (code),
    iban            TEXT UNIQUE CHECK (iban ~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$'),
    bic             TEXT CHECK (bic ~ '^[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?$'),
    routing_number  TEXT CHECK (routing_number ~ '^[0-9]{9}$'),
    account_number  TEXT CHECK (account_number ~ '^[0-9A-Za-z]{1,34}$'),
    -- Payers are told to pay here.
    collection      BOOLEAN NOT NULL,
    -- Payouts and refunds leave from here.
    payout          BOOLEAN NOT NULL,
    -- The mode of the node that registered it: importing its statements
    -- from the command line announces payments in that mode.
    livemode        BOOLEAN NOT NULL,
    -- The balance of the first statement the node read, booked once
    -- against `bank_opening` so that `bank:<id>` is the real balance.
    opening_date    DATE,
    opening_balance NUMERIC CHECK (opening_balance = trunc(opening_balance)),
    registered_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((iban IS NOT NULL) <> (account_number IS NOT NULL)),
    CHECK ((account_number IS NULL) = (routing_number IS NULL)),
    CHECK ((opening_date IS NULL) = (opening_balance IS NULL)),
    UNIQUE (routing_number, account_number)
);

-- One payout account per currency: a payout knows where it leaves from.
CREATE UNIQUE INDEX bank_accounts_payout ON bank_accounts (currency) WHERE payout;

-- Every file read (statements, status reports) and every file written.
CREATE TABLE bank_files (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind        TEXT NOT NULL CHECK (kind IN ('camt.053', 'camt.054', 'pain.002', 'pain.001')),
    name        TEXT NOT NULL,
    sha256      BYTEA NOT NULL CHECK (length(sha256) = 32),
    -- GrpHdr/MsgId.
    message_id  TEXT NOT NULL,
    -- What importing it did: entries booked now, entries already known,
    -- entries not booked by the bank yet (pending).
    booked      INTEGER NOT NULL DEFAULT 0,
    known       INTEGER NOT NULL DEFAULT 0,
    pending     INTEGER NOT NULL DEFAULT 0,
    -- A pain.001 as written, so a file whose writing failed is written
    -- again byte for byte (same MsgId: banks drop duplicates by it).
    content      TEXT,
    delivered_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((direction = 'out') = (content IS NOT NULL))
);

-- The pain.001 files written: the MsgId the bank's pain.002 refers to.
CREATE UNIQUE INDEX bank_files_out_message ON bank_files (message_id) WHERE direction = 'out';

-- Balances reported by camt.053 statements.
CREATE TABLE bank_statements (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES bank_accounts (id),
    statement_id    TEXT NOT NULL,
    file_id         BIGINT NOT NULL REFERENCES bank_files (id),
    opening_date    DATE NOT NULL,
    opening_balance NUMERIC NOT NULL CHECK (opening_balance = trunc(opening_balance)),
    closing_date    DATE NOT NULL CHECK (closing_date >= opening_date),
    closing_balance NUMERIC NOT NULL CHECK (closing_balance = trunc(closing_balance)),
    CONSTRAINT bank_statements_once UNIQUE (account_id, statement_id)
);

-- Booked entries, identified by the bank's reference.
CREATE TABLE bank_entries (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES bank_accounts (id),
    booking_date  DATE NOT NULL,
    -- AcctSvcrRef, or NtryRef when the bank gives no servicer reference.
    bank_ref      TEXT NOT NULL CHECK (length(bank_ref) BETWEEN 1 AND 35),
    file_id       BIGINT NOT NULL REFERENCES bank_files (id),
    direction     TEXT NOT NULL CHECK (direction IN ('credit', 'debit')),
    -- Smallest units of the account's currency.
    amount        NUMERIC NOT NULL CHECK (amount > 0 AND amount = trunc(amount)),
    value_date    DATE,
    CONSTRAINT bank_entries_identity UNIQUE (account_id, booking_date, bank_ref)
);

-- The transactions of an entry (one, or several for a batch booking),
-- each booked and matched on its own.
CREATE TABLE bank_transactions (
    entry_id          BIGINT NOT NULL REFERENCES bank_entries (id),
    seq               SMALLINT NOT NULL CHECK (seq >= 1),
    amount            NUMERIC NOT NULL CHECK (amount > 0 AND amount = trunc(amount)),
    end_to_end_id     TEXT,
    remittance        TEXT,
    counterparty_name TEXT,
    counterparty_iban TEXT,
    return_reason     TEXT,
    -- How it was booked.
    booking           TEXT NOT NULL CHECK (booking IN (
                          'payment', 'partial', 'late', 'unmatched', 'payment_return',
                          'transfer_sent', 'transfer_returned', 'unmatched_debit')),
    payment_id        TEXT REFERENCES payments (id),
    transfer_id       TEXT,
    -- The cash entry on `bank:<account>`.
    ledger_entry_id   BIGINT NOT NULL REFERENCES ledger_entries (id),
    PRIMARY KEY (entry_id, seq)
);

CREATE INDEX bank_transactions_payment ON bank_transactions (payment_id) WHERE payment_id IS NOT NULL;

-- The RF references payers are told to quote, one per confirmation.
CREATE TABLE bank_references (
    reference   TEXT PRIMARY KEY CHECK (reference ~ '^RF[0-9]{2}[A-Z0-9]{1,21}$'),
    -- The processor operation that asked for it (its idempotency key).
    key         TEXT NOT NULL UNIQUE,
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    account_id  TEXT NOT NULL REFERENCES bank_accounts (id),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL REFERENCES assets (code),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX bank_references_payment ON bank_references (payment_id);

-- Money received for a payment and held in suspense until it is paid in
-- full (an underpayment waits here for the rest).
CREATE TABLE bank_payment_funds (
    payment_id TEXT PRIMARY KEY REFERENCES payments (id),
    held       BIGINT NOT NULL CHECK (held >= 0)
);

CREATE TABLE reconciliation_exceptions (
    id                 TEXT PRIMARY KEY CHECK (id ~ '^rex_[A-Za-z0-9]{24}$'),
    kind               TEXT NOT NULL CHECK (kind IN (
                           'unmatched_credit', 'underpaid', 'overpaid', 'paid_late',
                           'unmatched_debit', 'transfer_failed')),
    status             TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    account_id         TEXT NOT NULL REFERENCES bank_accounts (id),
    currency           TEXT NOT NULL REFERENCES assets (code),
    -- The money at stake, in smallest units, and the ledger account it
    -- waits in.
    amount             BIGINT NOT NULL CHECK (amount > 0),
    held_in            TEXT NOT NULL CHECK (held_in IN ('suspense', 'refunds_payable', 'bank_suspense')),
    merchant_id        TEXT REFERENCES merchants (id),
    payment_id         TEXT REFERENCES payments (id),
    -- The statement transaction it comes from, when it does.
    entry_id           BIGINT,
    seq                SMALLINT,
    counterparty_name  TEXT,
    counterparty_iban  TEXT,
    remittance         TEXT,
    detail             TEXT NOT NULL,
    resolution         TEXT CHECK (resolution IN ('assigned', 'refunded', 'written_off', 'completed', 'returned')),
    resolution_reason  TEXT,
    resolved_payment_id TEXT REFERENCES payments (id),
    resolved_by        TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at        TIMESTAMPTZ,
    -- Deferred: an import opens the exception in the step that books the
    -- transaction it comes from.
    FOREIGN KEY (entry_id, seq) REFERENCES bank_transactions (entry_id, seq)
        DEFERRABLE INITIALLY DEFERRED,
    CHECK ((status = 'resolved') = (resolution IS NOT NULL)),
    CHECK ((status = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK (resolution IS DISTINCT FROM 'written_off' OR length(resolution_reason) > 0)
);

CREATE INDEX reconciliation_exceptions_list ON reconciliation_exceptions (created_at DESC, id DESC);
CREATE UNIQUE INDEX reconciliation_exceptions_open_per_payment
    ON reconciliation_exceptions (payment_id, kind) WHERE status = 'open' AND payment_id IS NOT NULL;

-- Where a merchant's fiat payouts go, sealed; one per merchant and currency.
CREATE TABLE merchant_bank_accounts (
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    currency    TEXT NOT NULL REFERENCES assets (code),
    holder      TEXT NOT NULL CHECK (length(holder) BETWEEN 1 AND 140),
    -- JSON {iban, bic} or {routing_number, account_number}, sealed and
    -- bound to the merchant and currency.
    sealed      BYTEA NOT NULL,
    -- `DE89 **** **** **** **30 00`-style, for display.
    masked      TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, currency)
);

-- Credit transfers the gateway sends: payouts, refunds of bank-transfer
-- payments, and money the desk returns to its sender. The id is the
-- transfer's EndToEndId.
CREATE TABLE bank_transfers_out (
    id             TEXT PRIMARY KEY CHECK (id ~ '^btr_[A-Za-z0-9]{24}$'),
    kind           TEXT NOT NULL CHECK (kind IN ('payout', 'refund', 'return')),
    payout_id      TEXT UNIQUE REFERENCES payouts (id),
    -- The processor operation of a refund (its idempotency key).
    refund_key     TEXT UNIQUE,
    exception_id   TEXT UNIQUE REFERENCES reconciliation_exceptions (id),
    merchant_id    TEXT REFERENCES merchants (id),
    payment_id     TEXT REFERENCES payments (id),
    account_id     TEXT NOT NULL REFERENCES bank_accounts (id),
    currency       TEXT NOT NULL REFERENCES assets (code),
    amount         BIGINT NOT NULL CHECK (amount > 0),
    creditor_name  TEXT NOT NULL,
    -- The creditor's account, sealed as merchant_bank_accounts.sealed.
    creditor_sealed BYTEA NOT NULL,
    creditor_masked TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'in_transit', 'paid', 'failed')),
    file_id        BIGINT REFERENCES bank_files (id),
    execution_date DATE,
    failure_reason TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'payout') = (payout_id IS NOT NULL)),
    CHECK ((kind = 'refund') = (refund_key IS NOT NULL)),
    CHECK ((kind = 'return') = (exception_id IS NOT NULL)),
    CHECK ((status = 'pending') = (file_id IS NULL))
);

CREATE INDEX bank_transfers_out_pending ON bank_transfers_out (account_id, created_at) WHERE status = 'pending';

-- A fiat payout waits for its file (`pending`), then for its debit in a
-- statement (`in_transit`).
ALTER TABLE payouts DROP CONSTRAINT payouts_status_check;
ALTER TABLE payouts ADD CONSTRAINT payouts_status_check
    CHECK (status IN ('pending', 'in_transit', 'paid', 'failed'));

INSERT INTO ledger_account_kinds (kind, is_merchant, normal, has_floor, shards, qualifier, description) VALUES
    ('bank',          false, 'debit',  false, 4, '^[a-z][a-z0-9_]{0,39}$',
        'Cash at one of the gateway''s bank accounts (qualifier: its id), as its statements report it.'),
    ('bank_opening',  false, 'credit', false, 1, '^[a-z][a-z0-9_]{0,39}$',
        'What a bank account held before the node read its first statement (qualifier: its id).'),
    ('bank_suspense', false, 'debit',  false, 1, '^$',
        'Bank debits nothing explains yet (bank charges, unknown debits), for the reconciliation desk.'),
    ('write_offs',    false, 'credit', false, 1, '^$',
        'Money the reconciliation desk wrote off: unidentified credits kept, unexplained debits given up.');

ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type IN (
    'payment.succeeded', 'payment.failed', 'payment.processing',
    'payment.requires_action', 'payment.canceled',
    'payment.crypto_detected', 'payment.crypto_exception',
    'refund.succeeded', 'refund.failed',
    'dispute.created', 'dispute.closed',
    'settlement.anchored',
    'reconciliation_exception.created', 'reconciliation_exception.resolved'));
