-- The merchant dashboard (src/dashboard): its users, their second factor,
-- server-side sessions, invitations, sign-in attempts and the audit log.
--
-- Invariants:
--   * a user belongs to one merchant and has one of four roles;
--   * passwords are stored only as argon2id PHC strings, TOTP secrets only
--     sealed (AES-GCM, the `totp_secrets` purpose key), recovery codes,
--     session ids and invitation tokens only as SHA-256 digests, so a
--     database dump signs nobody in;
--   * a TOTP time step is accepted once per user (`totp_last_step`), so a
--     code seen over a shoulder cannot be replayed;
--   * the audit log is append-only: a trigger refuses UPDATE, DELETE and
--     TRUNCATE, for every role including the node's own.

CREATE TABLE dashboard_users (
    id               TEXT PRIMARY KEY CHECK (id ~ '^usr_[A-Za-z0-9]{24}$'),
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    -- Stored lower-cased: one person, one sign-in name.
    email            TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND email ~ '^[^@\s]+@[^@\s]+$' AND length(email) <= 254),
    role             TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'analyst', 'support')),
    password_hash    TEXT NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    -- Sealed raw secret; NULL until enrolment is confirmed by a code.
    totp_secret      BYTEA,
    -- A secret offered at enrolment, not yet confirmed by a code.
    totp_pending     BYTEA,
    totp_last_step   BIGINT,
    failed_attempts  INTEGER NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until     TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    disabled_at      TIMESTAMPTZ
);
CREATE INDEX dashboard_users_merchant ON dashboard_users (merchant_id);

CREATE TABLE dashboard_recovery_codes (
    user_id    TEXT NOT NULL REFERENCES dashboard_users (id),
    code_hash  BYTEA NOT NULL CHECK (length(code_hash) = 32),
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE dashboard_sessions (
    id_hash       BYTEA PRIMARY KEY CHECK (length(id_hash) = 32),
    user_id       TEXT NOT NULL REFERENCES dashboard_users (id),
    csrf_token    TEXT NOT NULL,
    -- When the second factor was given; NULL while the session only has the
    -- password (it can then do nothing but enrol or give the code).
    mfa_at        TIMESTAMPTZ,
    -- The last fresh TOTP code (step-up for sensitive actions).
    step_up_at    TIMESTAMPTZ,
    ip            TEXT,
    user_agent    TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ
);
CREATE INDEX dashboard_sessions_user ON dashboard_sessions (user_id);

CREATE TABLE dashboard_invites (
    token_hash   BYTEA PRIMARY KEY CHECK (length(token_hash) = 32),
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    email        TEXT NOT NULL CHECK (email = lower(email)),
    role         TEXT NOT NULL CHECK (role IN ('admin', 'developer', 'analyst', 'support')),
    invited_by   TEXT NOT NULL REFERENCES dashboard_users (id),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL,
    accepted_at  TIMESTAMPTZ
);

-- Every sign-in attempt, for the per-address budget and the record.
CREATE TABLE dashboard_signin_attempts (
    id         BIGSERIAL PRIMARY KEY,
    email      TEXT NOT NULL,
    ip         TEXT,
    succeeded  BOOLEAN NOT NULL,
    at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX dashboard_signin_attempts_ip ON dashboard_signin_attempts (ip, at);

CREATE TABLE dashboard_audit_log (
    id           BIGSERIAL PRIMARY KEY,
    merchant_id  TEXT NOT NULL REFERENCES merchants (id),
    -- NULL for actions of nobody signed in (a failed sign-in).
    user_id      TEXT REFERENCES dashboard_users (id),
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    target       TEXT,
    detail       JSONB NOT NULL DEFAULT '{}'::jsonb,
    ip           TEXT,
    user_agent   TEXT,
    at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dashboard_audit_log_merchant ON dashboard_audit_log (merchant_id, id DESC);

CREATE FUNCTION dashboard_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the dashboard audit log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER dashboard_audit_log_no_update BEFORE UPDATE OR DELETE ON dashboard_audit_log
    FOR EACH ROW EXECUTE FUNCTION dashboard_audit_log_append_only();
CREATE TRIGGER dashboard_audit_log_no_truncate BEFORE TRUNCATE ON dashboard_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION dashboard_audit_log_append_only();

-- A locked-out user is announced to the merchant like any other change.
ALTER TABLE events DROP CONSTRAINT events_type_check;
ALTER TABLE events ADD CONSTRAINT events_type_check CHECK (type IN (
    'payment.succeeded', 'payment.failed', 'payment.processing',
    'payment.requires_action', 'payment.canceled',
    'payment.crypto_detected', 'payment.crypto_exception',
    'refund.succeeded', 'refund.failed',
    'dispute.created', 'dispute.closed',
    'settlement.anchored',
    'reconciliation_exception.created', 'reconciliation_exception.resolved',
    'dashboard_user.locked'));
