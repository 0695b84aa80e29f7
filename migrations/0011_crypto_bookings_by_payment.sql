-- A payment's crypto view (refreshed at every transition, and its depth
-- read on every GET and list) looks up the payment's bookings; without an
-- index each of those scanned every booking ever made.
CREATE INDEX crypto_bookings_payment ON crypto_bookings (payment_id)
    WHERE payment_id IS NOT NULL;
