-- The node watches its own contracts (issue 16; src/chain/guard.rs).
--
-- chain_admin_events: every administrative log of a configured router or
-- anchor (treasury proposed, cancelled or changed; roles granted or
-- revoked; admin transfers; token allow-list changes; pauses; the anchor's
-- growth limit and supersedes), written by the watcher in the same
-- transaction as the step that read it. Like chain_blocks, rows above the
-- common ancestor of a reorg are deleted and the rescan writes them again,
-- so the table holds what the canonical chain says.
--
-- chain_alerts: conditions the node found by reading the contracts' state
-- (the on-chain treasury is not the configured one, a treasury change to
-- another address is pending, the router is paused or outdated, a
-- configured token is not allowed). At most one open alert per chain, kind
-- and subject, whichever node raised it (a partial unique index);
-- clearing sets cleared_at and keeps the row as the operator's record.
--
-- Invariants:
--   * an alert is raised before it is cleared (CHECK);
--   * hex is lower-case 0x-hex as elsewhere (migrations/0006_chain.sql).

CREATE TABLE chain_admin_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id     BIGINT NOT NULL CHECK (chain_id > 0),
    -- The router or the anchor that emitted it.
    contract     TEXT NOT NULL CHECK (contract ~ '^0x[0-9a-f]+$' AND length(contract) = 42),
    -- The event's name as the contract declares it (`TreasuryProposed`).
    event        TEXT NOT NULL CHECK (length(event) BETWEEN 1 AND 64),
    -- critical: money could go elsewhere or history be rewritten;
    -- warning: a change an operator should know of; info: the rest.
    severity     TEXT NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
    -- What happened, for people (addresses, times, roles).
    detail       TEXT NOT NULL,
    block_number BIGINT NOT NULL CHECK (block_number >= 0),
    block_hash   TEXT NOT NULL CHECK (block_hash ~ '^0x[0-9a-f]+$' AND length(block_hash) = 66),
    tx_hash      TEXT NOT NULL CHECK (tx_hash ~ '^0x[0-9a-f]+$' AND length(tx_hash) = 66),
    log_index    BIGINT NOT NULL CHECK (log_index >= 0),
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT chain_admin_events_log UNIQUE (chain_id, block_hash, log_index)
);

CREATE INDEX chain_admin_events_block ON chain_admin_events (chain_id, block_number);

CREATE TABLE chain_alerts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id     BIGINT NOT NULL CHECK (chain_id > 0),
    kind         TEXT NOT NULL CHECK (kind IN ('treasury_mismatch', 'treasury_change_pending',
                                               'router_paused', 'router_outdated', 'asset_not_allowed')),
    -- What it is about (an address, a token), '' when the kind says it all.
    subject      TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL,
    -- The block whose state raised it.
    block_number BIGINT NOT NULL CHECK (block_number >= 0),
    raised_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    cleared_at   TIMESTAMPTZ,
    CHECK (cleared_at IS NULL OR cleared_at >= raised_at)
);

CREATE UNIQUE INDEX chain_alerts_open ON chain_alerts (chain_id, kind, subject) WHERE cleared_at IS NULL;
