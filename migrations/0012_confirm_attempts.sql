-- Card testing (a stolen-card list tried against one checkout) is stopped
-- by counting attempts, not payments: every confirmation of a payment is
-- an attempt, and the velocity rules count them across the merchant's
-- payments. A payment takes a bounded number of attempts.

ALTER TABLE payments
    ADD COLUMN confirm_attempts INTEGER NOT NULL DEFAULT 0 CHECK (confirm_attempts >= 0);

CREATE TABLE payment_attempts (
    id               BIGSERIAL PRIMARY KEY,
    merchant_id      TEXT NOT NULL REFERENCES merchants (id),
    payment_id       TEXT NOT NULL REFERENCES payments (id),
    method           TEXT NOT NULL,
    card_fingerprint TEXT,
    customer_email   TEXT,
    client_ip        TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX payment_attempts_card ON payment_attempts (merchant_id, card_fingerprint, created_at)
    WHERE card_fingerprint IS NOT NULL;
CREATE INDEX payment_attempts_email ON payment_attempts (merchant_id, customer_email, created_at)
    WHERE customer_email IS NOT NULL;
CREATE INDEX payment_attempts_ip ON payment_attempts (merchant_id, client_ip, created_at)
    WHERE client_ip IS NOT NULL;
CREATE INDEX payment_attempts_payment ON payment_attempts (payment_id);
