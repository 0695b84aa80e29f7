-- The hosted checkout sends the customer back to the merchant's site once
-- a payment ends: where to, chosen at creation (validated by the API:
-- https, or http to localhost in test mode).
ALTER TABLE payments ADD COLUMN return_url text
    CHECK (return_url IS NULL OR (length(return_url) <= 2048 AND return_url ~ '^https?://'));
