-- Issue 17: deposit addresses are retired from per-step watching some days
-- after their quote expired (`deposit_watch_days`); the watcher reads the
-- `Transfer` logs into retired addresses now and then instead
-- (`deposit_rescan_secs`). Where that read has got to, per chain: blocks up
-- to `scanned_to` have been searched for every address retired when they
-- were read (and every address was watched per step before it retired).
CREATE TABLE deposit_rescans (
    chain_id    BIGINT PRIMARY KEY,
    scanned_to  BIGINT NOT NULL CHECK (scanned_to >= 0),
    scanned_at  TIMESTAMPTZ NOT NULL
);
