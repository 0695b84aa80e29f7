-- Events (the outbox) and their webhook delivery.
--
-- An event is written in the same transaction as the state change it
-- announces, together with one delivery row per enabled endpoint that wants
-- it, and a NOTIFY on `epg_events` that wakes delivery workers and live
-- streams (who also poll, in case a notification is missed).

-- A prefixed random id (`whd_…`, 24 base62 characters) made inside the
-- database, for rows created by a statement that fans out (one delivery per
-- matching endpoint). SHA-256 over two v4 UUIDs gives 32 uniform bytes.
CREATE FUNCTION epg_random_id(prefix TEXT) RETURNS TEXT
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    alphabet CONSTANT TEXT := '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    bytes BYTEA := sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
    out TEXT := prefix || '_';
BEGIN
    FOR i IN 0..23 LOOP
        out := out || substr(alphabet, get_byte(bytes, i) % 62 + 1, 1);
    END LOOP;
    RETURN out;
END
$$;

CREATE TABLE events (
    -- Insertion order: the cursor of lists (ids are random).
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id          TEXT PRIMARY KEY CHECK (id ~ '^evt_[A-Za-z0-9]{24}$'),
    merchant_id TEXT NOT NULL REFERENCES merchants (id),
    -- API.md's event types; a new type is a new migration, on purpose.
    type        TEXT NOT NULL CHECK (type IN (
                    'payment.succeeded', 'payment.failed', 'payment.processing',
                    'payment.requires_action', 'payment.canceled',
                    'payment.crypto_detected', 'payment.crypto_exception',
                    'refund.succeeded', 'refund.failed',
                    'dispute.created', 'dispute.closed',
                    'settlement.anchored')),
    -- The API version the object snapshot was rendered with, when pinned.
    api_version TEXT,
    -- `{"object": <snapshot of the object at the time of the event>}`.
    data        JSONB NOT NULL CHECK (jsonb_typeof(data -> 'object') = 'object'),
    -- The id of the object the event is about, for per-object streams.
    object_id   TEXT GENERATED ALWAYS AS (data -> 'object' ->> 'id') STORED,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX events_merchant ON events (merchant_id, seq);
CREATE INDEX events_merchant_type ON events (merchant_id, type, seq);
CREATE INDEX events_object ON events (merchant_id, object_id, seq) WHERE object_id IS NOT NULL;

CREATE TABLE webhook_endpoints (
    -- Insertion order: the cursor of lists.
    seq            BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id             TEXT PRIMARY KEY CHECK (id ~ '^we_[A-Za-z0-9]{24}$'),
    merchant_id    TEXT NOT NULL REFERENCES merchants (id),
    url            TEXT NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    -- Event types delivered here, or `{*}` for all of them.
    enabled_events TEXT[] NOT NULL CHECK (cardinality(enabled_events) >= 1),
    description    TEXT CHECK (length(description) <= 5000),
    metadata       JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    -- A disabled endpoint keeps its pending deliveries until re-enabled.
    status         TEXT NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled')),
    -- The signing secret, sealed with AES-256-GCM (nonce ‖ ciphertext) and
    -- bound to this row's id. It must be readable to sign, so it is not
    -- hashed; the clear text is shown to the merchant once.
    secret_sealed  BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Deleted endpoints vanish from the API but keep their delivery history.
    deleted_at     TIMESTAMPTZ
);

CREATE INDEX webhook_endpoints_merchant ON webhook_endpoints (merchant_id, seq)
    WHERE deleted_at IS NULL;

-- One event's delivery to one endpoint. The worker that claims a row sets
-- `next_attempt_at` to the end of its lease and a fresh `claim_token`: a
-- crashed node's claim simply becomes due again when the lease ends, and
-- only the holder of the current token may record the outcome.
CREATE TABLE webhook_deliveries (
    seq             BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    id              TEXT PRIMARY KEY CHECK (id ~ '^whd_[A-Za-z0-9]{24}$'),
    merchant_id     TEXT NOT NULL REFERENCES merchants (id),
    event_id        TEXT NOT NULL REFERENCES events (id),
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id),
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'canceled')),
    -- Attempts started so far (claims), so the next one is `attempts + 1`.
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Due time of the next attempt, or end of the running attempt's lease.
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Set by the claim of the running attempt; NULL when none runs.
    claim_token     UUID,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- When it succeeded, failed for good, or was canceled.
    completed_at    TIMESTAMPTZ,
    CHECK ((status = 'pending') = (completed_at IS NULL))
);

-- What the workers scan.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id, seq);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id)
    WHERE status = 'pending';
-- At most one pending delivery per event and endpoint: a redelivery request
-- while one is pending brings it forward instead of doubling it.
CREATE UNIQUE INDEX webhook_deliveries_one_pending ON webhook_deliveries (event_id, endpoint_id)
    WHERE status = 'pending';

-- Every attempt, as the receiver answered it. The primary key makes a second
-- record of the same attempt impossible.
CREATE TABLE webhook_delivery_attempts (
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt       INTEGER NOT NULL CHECK (attempt >= 1),
    -- NULL when no HTTP response came back (refused, timeout, connection).
    status_code   SMALLINT,
    succeeded     BOOLEAN NOT NULL,
    duration_ms   INTEGER NOT NULL CHECK (duration_ms >= 0),
    -- Why the attempt failed, when it did not get a 2xx.
    error         TEXT,
    -- The start of the receiver's response body (a few KiB at most).
    response_body TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery_id, attempt)
);
