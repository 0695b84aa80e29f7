-- The Idempotency-Key of the request that created a payment. The saved
-- response of the idempotency layer can be lost (a failover between the
-- payment's commit and the response's save): a retry after the claim's
-- lease then runs again, and must find this payment instead of making a
-- second one. Refunds and processor operations carry their keys the same way.
ALTER TABLE payments ADD COLUMN idempotency_key TEXT
    CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX payments_idempotency_key ON payments (merchant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
