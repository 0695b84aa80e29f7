-- A refund and a chargeback must never both return the same money to the
-- cardholder. `amount_disputed` is the part of a payment under dispute or
-- lost to one; refunds, disputes and returns together never exceed what
-- was received, whatever the application does.

ALTER TABLE payments
    ADD COLUMN amount_disputed BIGINT NOT NULL DEFAULT 0 CHECK (amount_disputed >= 0);

ALTER TABLE payments DROP CONSTRAINT payments_refund_within_received;
ALTER TABLE payments ADD CONSTRAINT payments_refund_within_received
    CHECK (amount_refunded + amount_disputed <= amount_received);

-- A charge is disputed once: a network that reopens a closed case does so
-- under the same dispute, never as a second chargeback of the same money.
DROP INDEX disputes_one_open;
CREATE UNIQUE INDEX disputes_one_per_payment ON disputes (payment_id);
