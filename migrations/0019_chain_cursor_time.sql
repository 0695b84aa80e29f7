-- The time of the cursor's block (its header's timestamp): how far the
-- watcher has seen the chain's clock. A transfer in a block at or before a
-- crypto quote's `expires_at` is on time, and the wall clock can pass
-- `expires_at` while the watcher still lags behind such a block. So a quote
-- is expired (and an underpaid one flagged) only once this time is past its
-- `expires_at`: block times only grow, so no later block can still be on
-- time. NULL until a step reads a range (a fresh cursor, or one moved back
-- to a reorg's common ancestor), which holds expiry back meanwhile.
ALTER TABLE chain_cursors ADD COLUMN block_timestamp TIMESTAMPTZ;
