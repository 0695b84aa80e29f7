-- Payments (API.md "Payments"), refunds and disputes of traditional methods.
-- Amounts are integers in the currency's smallest unit; money movements are
-- journal entries in the ledger, written in the same transaction as the
-- state changes recorded here.

ALTER TABLE merchants
    ADD COLUMN risk_threshold SMALLINT NOT NULL DEFAULT 75 CHECK (risk_threshold BETWEEN 0 AND 100);

CREATE TABLE payments (
    id                   TEXT PRIMARY KEY CHECK (id ~ '^pay_[A-Za-z0-9]{24}$'),
    merchant_id          TEXT NOT NULL REFERENCES merchants (id),
    amount               BIGINT NOT NULL CHECK (amount > 0),
    currency             TEXT NOT NULL CHECK (currency ~ '^[a-z]{3}$'),
    status               TEXT NOT NULL CHECK (status IN (
                             'requires_payment_method', 'requires_action', 'processing',
                             'requires_capture', 'succeeded', 'canceled', 'failed')),
    capture_method       TEXT NOT NULL CHECK (capture_method IN ('automatic', 'manual')),
    payment_method_types TEXT[] NOT NULL,
    -- The method chosen at confirmation.
    method               TEXT,
    description          TEXT,
    metadata             JSONB NOT NULL DEFAULT '{}',
    customer             JSONB,
    shipping             JSONB,
    -- Lets a browser checkout read and confirm this payment only.
    client_secret        TEXT NOT NULL UNIQUE,
    next_action          JSONB,
    -- The processor's id of the authorization / transfer.
    processor_reference  TEXT,
    -- Held by an authorization and not yet captured or released.
    amount_capturable    BIGINT NOT NULL DEFAULT 0 CHECK (amount_capturable >= 0),
    -- Captured (money received).
    amount_received      BIGINT NOT NULL DEFAULT 0 CHECK (amount_received >= 0),
    amount_refunded      BIGINT NOT NULL DEFAULT 0 CHECK (amount_refunded >= 0),
    -- Brand, last four, expiry, fingerprint, country: what may be shown.
    card                 JSONB,
    -- The full number, AES-256-GCM sealed with the payment id as context.
    card_number_sealed   BYTEA,
    card_fingerprint     TEXT,
    customer_email       TEXT,
    client_ip            TEXT,
    risk_score           SMALLINT CHECK (risk_score BETWEEN 0 AND 100),
    risk_reasons         JSONB,
    last_error           JSONB,
    cancellation_reason  TEXT,
    -- When an uncaptured authorization is voided, or a voucher expires.
    expires_at           TIMESTAMPTZ,
    -- The ledger hold of an authorization.
    hold_id              TEXT,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Refunds can never exceed what was received, whatever the application
    -- does: the database refuses it.
    CONSTRAINT payments_refund_within_received CHECK (amount_refunded <= amount_received),
    CONSTRAINT payments_capture_within_amount CHECK (amount_received + amount_capturable <= amount)
);

CREATE INDEX payments_merchant_created ON payments (merchant_id, created_at DESC, id DESC);
CREATE INDEX payments_merchant_status ON payments (merchant_id, status);
CREATE INDEX payments_expiring ON payments (expires_at) WHERE status IN ('requires_capture', 'requires_action');
CREATE INDEX payments_card_velocity ON payments (merchant_id, card_fingerprint, created_at) WHERE card_fingerprint IS NOT NULL;
CREATE INDEX payments_email_velocity ON payments (merchant_id, customer_email, created_at) WHERE customer_email IS NOT NULL;
CREATE INDEX payments_ip_velocity ON payments (merchant_id, client_ip, created_at) WHERE client_ip IS NOT NULL;

CREATE TABLE refunds (
    id          TEXT PRIMARY KEY CHECK (id ~ '^re_[A-Za-z0-9]{24}$'),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    reason      TEXT CHECK (reason IN ('duplicate', 'fraudulent', 'requested_by_customer')),
    metadata    JSONB NOT NULL DEFAULT '{}',
    failure_reason TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX refunds_payment ON refunds (payment_id, created_at);
CREATE INDEX refunds_merchant_created ON refunds (merchant_id, created_at DESC, id DESC);

CREATE TABLE disputes (
    id          TEXT PRIMARY KEY CHECK (id ~ '^dp_[A-Za-z0-9]{24}$'),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    payment_id  TEXT NOT NULL REFERENCES payments (id),
    amount      BIGINT NOT NULL CHECK (amount > 0),
    currency    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('needs_response', 'under_review', 'won', 'lost')),
    reason      TEXT NOT NULL,
    evidence    JSONB NOT NULL DEFAULT '{}',
    evidence_submitted_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at   TIMESTAMPTZ
);

-- One open dispute per payment at a time.
CREATE UNIQUE INDEX disputes_one_open ON disputes (payment_id) WHERE status IN ('needs_response', 'under_review');
CREATE INDEX disputes_merchant_created ON disputes (merchant_id, created_at DESC, id DESC);

-- What a merchant owes after refunds, returns or disputes took more than
-- its balances held: a negative balance, kept apart so that `pending` and
-- `available` keep their floors. Netted against new funds at settlement.
INSERT INTO ledger_account_kinds (kind, is_merchant, normal, has_floor, shards, qualifier, description)
VALUES ('receivable', true, 'debit', false, 1, '^$',
        'Owed by the merchant: reversals beyond its balances (a negative balance).');
