-- The velocity rules count `payment_attempts` (0012), which has its own
-- indexes; nothing reads these three any more. Each was one more index to
-- write on every insert and every non-HOT update of a payment, and a card
-- payment updates its row twice (issue 19: `EXPLAIN (ANALYZE, BUFFERS)` of
-- the confirmation's UPDATE touched 73 buffers, most of them index pages).
DROP INDEX payments_card_velocity;
DROP INDEX payments_email_velocity;
DROP INDEX payments_ip_velocity;
