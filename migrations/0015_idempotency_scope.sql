-- Idempotency records belong to a merchant and a kind of key, and keep a
-- keyed MAC of their request instead of a plain hash.
--
-- Invariants:
-- * (merchant_id, key_kind, key) is the primary key: the publishable key,
--   which every customer's browser holds, can neither replay a response
--   saved for the secret key nor claim a key the merchant's server will use.
-- * request_hash is `key id ‖ HMAC-SHA256` (40 bytes) under the idempotency
--   subkey of a master key, or empty. A plain SHA-256 of a confirmation body
--   gives the card back to whoever tries its few candidate numbers and CVCs,
--   so the hashes written before this migration are erased here, with the
--   saved responses only a matching hash could replay. An empty hash
--   matches no request: a retry under such a key answers 400
--   (idempotency_error) until the record expires, a day at most.

ALTER TABLE idempotency_keys
    ADD COLUMN key_kind TEXT NOT NULL DEFAULT 'secret'
        CHECK (key_kind IN ('secret', 'publishable'));
ALTER TABLE idempotency_keys ALTER COLUMN key_kind DROP DEFAULT;

UPDATE idempotency_keys SET request_hash = '\x', response_body = NULL;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_pkey,
    ADD PRIMARY KEY (merchant_id, key_kind, key),
    ADD CONSTRAINT idempotency_keys_request_mac
        CHECK (octet_length(request_hash) IN (0, 40));

COMMENT ON COLUMN idempotency_keys.request_hash IS
    'key id (8 bytes) || HMAC-SHA256 of method, path and body under the idempotency subkey; empty: erased plain hash';
