-- Foundation: merchants, their API keys, and saved idempotent responses.

CREATE TABLE merchants (
    id                   TEXT PRIMARY KEY CHECK (id ~ '^mer_[A-Za-z0-9]{24}$'),
    name                 TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Payment method types this merchant may use (API.md names).
    payment_method_types TEXT[] NOT NULL DEFAULT ARRAY['card', 'bank_transfer', 'ewallet', 'cash_voucher', 'check', 'crypto'],
    -- Where settled crypto funds are paid out; NULL keeps them in the treasury.
    payout_address       TEXT CHECK (payout_address ~ '^0x[0-9a-fA-F]{40}$'),
    payout_schedule      TEXT NOT NULL DEFAULT 'daily' CHECK (payout_schedule IN ('manual', 'daily', 'weekly')),
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY CHECK (id ~ '^key_[A-Za-z0-9]{24}$'),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    kind        TEXT NOT NULL CHECK (kind IN ('secret', 'publishable')),
    mode        TEXT NOT NULL CHECK (mode IN ('test', 'live')),
    -- First characters of the random part: narrows the lookup to (almost
    -- always) one row, whose hash is then compared in constant time.
    lookup      TEXT NOT NULL,
    -- SHA-256 of the whole key. Keys are 190-bit random strings, so a fast
    -- hash is enough: there is nothing to brute-force.
    key_hash    BYTEA NOT NULL CHECK (length(key_hash) = 32),
    -- Shown in listings so an operator can tell keys apart.
    last4       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX api_keys_lookup ON api_keys (lookup) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

-- Saved responses of POST requests that carried an Idempotency-Key. The
-- primary key decides, through INSERT … ON CONFLICT DO NOTHING, which of two
-- concurrent requests runs.
CREATE TABLE idempotency_keys (
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    key             TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_method  TEXT NOT NULL,
    request_path    TEXT NOT NULL,
    -- SHA-256 of method, path and body: a different request under a used key
    -- is refused.
    request_hash    BYTEA NOT NULL,
    -- NULL while the first request still runs.
    response_status SMALLINT,
    response_body   BYTEA,
    -- A crashed node leaves a row in progress; after this instant another
    -- attempt may take it over.
    locked_until    TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (merchant_id, key)
);

CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
