-- Every call to a processor is an operation: committed as `pending`
-- before the call, with its id as the call's idempotency key, and finished
-- by the transaction that books its outcome. A crash, a timeout or a lost
-- COMMIT between the two leaves a pending operation that a later request
-- or the reconciler completes by asking the processor what it answered to
-- that key, so the processor acts once and the books follow it once.

CREATE TABLE payment_operations (
    id              TEXT PRIMARY KEY CHECK (id ~ '^pop_[A-Za-z0-9]{24}$'),
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    payment_id      TEXT NOT NULL REFERENCES payments (id),
    kind            TEXT NOT NULL
                    CHECK (kind IN ('authorize', 'challenge', 'capture', 'void', 'cancel', 'refund')),
    -- The refund an operation of kind `refund` pays.
    refund_id       TEXT REFERENCES refunds (id),
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    -- Why a payment is voided or canceled, applied when it is.
    reason          TEXT,
    -- The Idempotency-Key of the merchant's request that asked for it: a
    -- retry finds the operation instead of starting another.
    idempotency_key TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    -- `pending` until its outcome is booked.
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- A node working on it holds it until then; after, anyone may resume it.
    locked_until    TIMESTAMPTZ NOT NULL,
    -- Resumptions after the first try.
    resumed         INTEGER NOT NULL DEFAULT 0 CHECK (resumed >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    CHECK ((kind = 'refund') = (refund_id IS NOT NULL)),
    CHECK ((status = 'pending') = (finished_at IS NULL))
);

-- One change of a payment's state in flight at a time (refunds may run
-- side by side: each reserved its amount when it began).
CREATE UNIQUE INDEX payment_operations_one_in_flight ON payment_operations (payment_id)
    WHERE status = 'pending' AND kind <> 'refund';
CREATE UNIQUE INDEX payment_operations_request
    ON payment_operations (merchant_id, kind, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX payment_operations_due ON payment_operations (locked_until) WHERE status = 'pending';

-- A refund carries the Idempotency-Key of the request that created it.
ALTER TABLE refunds
    ADD COLUMN idempotency_key TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX refunds_idempotency_key ON refunds (merchant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The sandbox processors' own memory (test mode only): what each answered
-- under each idempotency key, and how many times the key came.
CREATE TABLE sandbox_processor_calls (
    key        TEXT PRIMARY KEY,
    call       TEXT NOT NULL,
    payment_id TEXT NOT NULL,
    amount     BIGINT,
    answer     JSONB NOT NULL,
    calls      INTEGER NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sandbox_processor_calls_payment ON sandbox_processor_calls (payment_id);
