-- Issue 22: a crypto confirmation retried with its Idempotency-Key after its
-- saved answer was lost (the node killed between the quote's commit and the
-- answer's save) ran again once the key's lease passed, and answered 409
-- `payment_unexpected_state` (the payment was already `requires_action`)
-- instead of the quote the first try made. The quote now carries the key of
-- the request that made it: that request, retried, answers the payment.
ALTER TABLE crypto_payments
    ADD COLUMN confirm_key TEXT
        CHECK (confirm_key IS NULL OR length(confirm_key) BETWEEN 1 AND 255);
