-- The single-column rules of the payment path's tables as domains (issue 19).
--
-- PostgreSQL 15 reads each CHECK constraint's stored expression tree and
-- compiles it again for every execution of an INSERT or UPDATE on its
-- table, whichever columns the statement sets. On the card path that was
-- about a fifth of the database's CPU (`payments` alone has 15 CHECKs, read
-- three times per card payment; `scripts/bench checks`). A domain's
-- constraints are compiled once per session and kept in the type cache, and
-- a statement checks only the columns it assigns. The rules are the same
-- rules, kept in the database: a value that breaks one is refused with the
-- same SQLSTATE (23514, check_violation). Rules over several columns stay
-- table CHECKs; they are few and small. So does the check of `events.data`
-- (a generated column reads it, and PostgreSQL will not change the type of
-- a column a generated column uses).
--
-- The order keeps this cheap on a large live database: each domain is
-- created empty, so changing a column from its base type to the domain is
-- a relabelling (no table rewrite, indexes kept); the table's CHECK is
-- dropped; then the domain's constraint is added, which validates the
-- existing rows with one scan per column instead of a rewrite.
--
-- A new event type now extends the `event_type` domain:
--   ALTER DOMAIN event_type DROP CONSTRAINT event_type_known;
--   ALTER DOMAIN event_type ADD CONSTRAINT event_type_known CHECK (VALUE IN (…));

-- Identifiers.
CREATE DOMAIN payment_id AS TEXT;
CREATE DOMAIN payment_operation_id AS TEXT;
CREATE DOMAIN refund_id AS TEXT;
CREATE DOMAIN event_id AS TEXT;
CREATE DOMAIN webhook_delivery_id AS TEXT;
CREATE DOMAIN ledger_entry_public_id AS TEXT;
CREATE DOMAIN idempotency_key AS TEXT;

-- Money and counts.
CREATE DOMAIN currency_code AS TEXT;
CREATE DOMAIN minor_units AS BIGINT;
CREATE DOMAIN positive_minor_units AS BIGINT;
CREATE DOMAIN ledger_amount AS NUMERIC;
CREATE DOMAIN positive_ledger_amount AS NUMERIC;
CREATE DOMAIN attempt_count AS INTEGER;
CREATE DOMAIN risk_score AS SMALLINT;

-- States and kinds.
CREATE DOMAIN payment_status AS TEXT;
CREATE DOMAIN capture_method AS TEXT;
CREATE DOMAIN payment_operation_kind AS TEXT;
CREATE DOMAIN payment_operation_status AS TEXT;
CREATE DOMAIN refund_status AS TEXT;
CREATE DOMAIN refund_reason AS TEXT;
CREATE DOMAIN webhook_delivery_status AS TEXT;
CREATE DOMAIN event_type AS TEXT;
CREATE DOMAIN ledger_entry_kind AS TEXT;
CREATE DOMAIN ledger_posting_phase AS TEXT;
CREATE DOMAIN ledger_hold_status AS TEXT;
CREATE DOMAIN api_key_kind AS TEXT;

-- Other values.
CREATE DOMAIN return_url AS TEXT;
CREATE DOMAIN event_position AS BIGINT;
CREATE DOMAIN sha256_digest AS BYTEA;
CREATE DOMAIN request_mac AS BYTEA;
CREATE DOMAIN ledger_entry_description AS TEXT;
CREATE DOMAIN ledger_entry_source AS TEXT;
CREATE DOMAIN ledger_posting_seq AS SMALLINT;

ALTER TABLE payments
    DROP CONSTRAINT payments_id_check, ALTER COLUMN id TYPE payment_id,
    DROP CONSTRAINT payments_amount_check, ALTER COLUMN amount TYPE positive_minor_units,
    DROP CONSTRAINT payments_currency_check, ALTER COLUMN currency TYPE currency_code,
    DROP CONSTRAINT payments_status_check, ALTER COLUMN status TYPE payment_status,
    DROP CONSTRAINT payments_capture_method_check,
    ALTER COLUMN capture_method TYPE capture_method,
    DROP CONSTRAINT payments_amount_capturable_check,
    ALTER COLUMN amount_capturable TYPE minor_units,
    DROP CONSTRAINT payments_amount_received_check,
    ALTER COLUMN amount_received TYPE minor_units,
    DROP CONSTRAINT payments_amount_refunded_check,
    ALTER COLUMN amount_refunded TYPE minor_units,
    DROP CONSTRAINT payments_amount_disputed_check,
    ALTER COLUMN amount_disputed TYPE minor_units,
    DROP CONSTRAINT payments_confirm_attempts_check,
    ALTER COLUMN confirm_attempts TYPE attempt_count,
    DROP CONSTRAINT payments_risk_score_check, ALTER COLUMN risk_score TYPE risk_score,
    DROP CONSTRAINT payments_idempotency_key_check,
    ALTER COLUMN idempotency_key TYPE idempotency_key,
    DROP CONSTRAINT payments_return_url_check, ALTER COLUMN return_url TYPE return_url;

ALTER TABLE payment_operations
    DROP CONSTRAINT payment_operations_id_check, ALTER COLUMN id TYPE payment_operation_id,
    DROP CONSTRAINT payment_operations_amount_check, ALTER COLUMN amount TYPE minor_units,
    DROP CONSTRAINT payment_operations_kind_check,
    ALTER COLUMN kind TYPE payment_operation_kind,
    DROP CONSTRAINT payment_operations_status_check,
    ALTER COLUMN status TYPE payment_operation_status,
    DROP CONSTRAINT payment_operations_resumed_check, ALTER COLUMN resumed TYPE attempt_count,
    DROP CONSTRAINT payment_operations_idempotency_key_check,
    ALTER COLUMN idempotency_key TYPE idempotency_key;

ALTER TABLE refunds
    DROP CONSTRAINT refunds_id_check, ALTER COLUMN id TYPE refund_id,
    DROP CONSTRAINT refunds_amount_check, ALTER COLUMN amount TYPE positive_minor_units,
    DROP CONSTRAINT refunds_status_check, ALTER COLUMN status TYPE refund_status,
    DROP CONSTRAINT refunds_reason_check, ALTER COLUMN reason TYPE refund_reason,
    DROP CONSTRAINT refunds_idempotency_key_check,
    ALTER COLUMN idempotency_key TYPE idempotency_key;

ALTER TABLE events
    DROP CONSTRAINT events_id_check, ALTER COLUMN id TYPE event_id,
    DROP CONSTRAINT events_type_check, ALTER COLUMN type TYPE event_type,
    DROP CONSTRAINT events_position_check, ALTER COLUMN position TYPE event_position;

ALTER TABLE webhook_deliveries
    DROP CONSTRAINT webhook_deliveries_id_check, ALTER COLUMN id TYPE webhook_delivery_id,
    DROP CONSTRAINT webhook_deliveries_status_check,
    ALTER COLUMN status TYPE webhook_delivery_status,
    DROP CONSTRAINT webhook_deliveries_attempts_check, ALTER COLUMN attempts TYPE attempt_count;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_key_check, ALTER COLUMN key TYPE idempotency_key,
    DROP CONSTRAINT idempotency_keys_key_kind_check, ALTER COLUMN key_kind TYPE api_key_kind,
    DROP CONSTRAINT idempotency_keys_request_mac, ALTER COLUMN request_hash TYPE request_mac;

ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_public_id_check,
    ALTER COLUMN public_id TYPE ledger_entry_public_id,
    DROP CONSTRAINT ledger_entries_key_check, ALTER COLUMN key TYPE idempotency_key,
    DROP CONSTRAINT ledger_entries_content_hash_check,
    ALTER COLUMN content_hash TYPE sha256_digest,
    DROP CONSTRAINT ledger_entries_kind_check, ALTER COLUMN kind TYPE ledger_entry_kind,
    DROP CONSTRAINT ledger_entries_description_check,
    ALTER COLUMN description TYPE ledger_entry_description,
    DROP CONSTRAINT ledger_entries_source_check, ALTER COLUMN source TYPE ledger_entry_source;

ALTER TABLE ledger_postings
    DROP CONSTRAINT ledger_postings_amount_check, ALTER COLUMN amount TYPE ledger_amount,
    DROP CONSTRAINT ledger_postings_phase_check, ALTER COLUMN phase TYPE ledger_posting_phase,
    DROP CONSTRAINT ledger_postings_seq_check, ALTER COLUMN seq TYPE ledger_posting_seq;

ALTER TABLE ledger_holds
    DROP CONSTRAINT ledger_holds_amount_check, ALTER COLUMN amount TYPE positive_ledger_amount,
    DROP CONSTRAINT ledger_holds_status_check, ALTER COLUMN status TYPE ledger_hold_status;

-- The rules, as they were.
ALTER DOMAIN payment_id ADD CONSTRAINT payment_id_format
    CHECK (VALUE ~ '^pay_[A-Za-z0-9]{24}$');
ALTER DOMAIN payment_operation_id ADD CONSTRAINT payment_operation_id_format
    CHECK (VALUE ~ '^pop_[A-Za-z0-9]{24}$');
ALTER DOMAIN refund_id ADD CONSTRAINT refund_id_format
    CHECK (VALUE ~ '^re_[A-Za-z0-9]{24}$');
ALTER DOMAIN event_id ADD CONSTRAINT event_id_format
    CHECK (VALUE ~ '^evt_[A-Za-z0-9]{24}$');
ALTER DOMAIN webhook_delivery_id ADD CONSTRAINT webhook_delivery_id_format
    CHECK (VALUE ~ '^whd_[A-Za-z0-9]{24}$');
ALTER DOMAIN ledger_entry_public_id ADD CONSTRAINT ledger_entry_public_id_format
    CHECK (VALUE ~ '^txn_[A-Za-z0-9]{24}$');
ALTER DOMAIN idempotency_key ADD CONSTRAINT idempotency_key_length
    CHECK (length(VALUE) BETWEEN 1 AND 255);

ALTER DOMAIN currency_code ADD CONSTRAINT currency_code_format
    CHECK (VALUE ~ '^[a-z]{3}$');
ALTER DOMAIN minor_units ADD CONSTRAINT minor_units_not_negative CHECK (VALUE >= 0);
ALTER DOMAIN positive_minor_units ADD CONSTRAINT positive_minor_units_positive
    CHECK (VALUE > 0);
ALTER DOMAIN ledger_amount ADD CONSTRAINT ledger_amount_whole_nonzero
    CHECK (VALUE <> 0 AND VALUE = trunc(VALUE) AND abs(VALUE) < 1e28);
ALTER DOMAIN positive_ledger_amount ADD CONSTRAINT positive_ledger_amount_whole_positive
    CHECK (VALUE > 0 AND VALUE = trunc(VALUE) AND VALUE < 1e28);
ALTER DOMAIN attempt_count ADD CONSTRAINT attempt_count_not_negative CHECK (VALUE >= 0);
ALTER DOMAIN risk_score ADD CONSTRAINT risk_score_range CHECK (VALUE BETWEEN 0 AND 100);

ALTER DOMAIN payment_status ADD CONSTRAINT payment_status_known CHECK (VALUE IN (
    'requires_payment_method', 'requires_action', 'processing', 'requires_capture',
    'succeeded', 'canceled', 'failed'));
ALTER DOMAIN capture_method ADD CONSTRAINT capture_method_known
    CHECK (VALUE IN ('automatic', 'manual'));
ALTER DOMAIN payment_operation_kind ADD CONSTRAINT payment_operation_kind_known
    CHECK (VALUE IN ('authorize', 'challenge', 'capture', 'void', 'cancel', 'refund'));
ALTER DOMAIN payment_operation_status ADD CONSTRAINT payment_operation_status_known
    CHECK (VALUE IN ('pending', 'succeeded', 'failed'));
ALTER DOMAIN refund_status ADD CONSTRAINT refund_status_known
    CHECK (VALUE IN ('pending', 'succeeded', 'failed', 'canceled'));
ALTER DOMAIN refund_reason ADD CONSTRAINT refund_reason_known
    CHECK (VALUE IN ('duplicate', 'fraudulent', 'requested_by_customer'));
ALTER DOMAIN webhook_delivery_status ADD CONSTRAINT webhook_delivery_status_known
    CHECK (VALUE IN ('pending', 'succeeded', 'failed', 'canceled'));
ALTER DOMAIN event_type ADD CONSTRAINT event_type_known CHECK (VALUE IN (
    'payment.succeeded', 'payment.failed', 'payment.processing',
    'payment.requires_action', 'payment.canceled',
    'payment.crypto_detected', 'payment.crypto_exception',
    'refund.succeeded', 'refund.failed',
    'dispute.created', 'dispute.closed',
    'settlement.anchored',
    'reconciliation_exception.created', 'reconciliation_exception.resolved',
    'dashboard_user.locked'));
ALTER DOMAIN ledger_entry_kind ADD CONSTRAINT ledger_entry_kind_format
    CHECK (VALUE ~ '^[a-z][a-z_]{0,39}$');
ALTER DOMAIN ledger_posting_phase ADD CONSTRAINT ledger_posting_phase_known
    CHECK (VALUE IN ('posted', 'pending_debit', 'pending_credit'));
ALTER DOMAIN ledger_hold_status ADD CONSTRAINT ledger_hold_status_known
    CHECK (VALUE IN ('pending', 'posted', 'voided', 'expired'));
ALTER DOMAIN api_key_kind ADD CONSTRAINT api_key_kind_known
    CHECK (VALUE IN ('secret', 'publishable'));

ALTER DOMAIN return_url ADD CONSTRAINT return_url_format
    CHECK (length(VALUE) <= 2048 AND VALUE ~ '^https?://');
ALTER DOMAIN event_position ADD CONSTRAINT event_position_positive CHECK (VALUE > 0);
ALTER DOMAIN sha256_digest ADD CONSTRAINT sha256_digest_length
    CHECK (length(VALUE) = 32);
ALTER DOMAIN request_mac ADD CONSTRAINT request_mac_length
    CHECK (octet_length(VALUE) IN (0, 40));
ALTER DOMAIN ledger_entry_description ADD CONSTRAINT ledger_entry_description_length
    CHECK (length(VALUE) <= 500);
ALTER DOMAIN ledger_entry_source ADD CONSTRAINT ledger_entry_source_format
    CHECK (VALUE ~ '^[a-z]{2,6}_[A-Za-z0-9]{1,64}$');
ALTER DOMAIN ledger_posting_seq ADD CONSTRAINT ledger_posting_seq_positive
    CHECK (VALUE >= 1);
