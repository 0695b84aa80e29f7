-- Issue 22: `epg reconcile chain` compares the treasury's on-chain change
-- since the watcher's start with the ledger. Reading the balance at the
-- start block needs that block's state, which only an archive node keeps
-- (a full node keeps the last ~128 blocks'; a restarted anvil only its
-- head's). Each clean comparison therefore leaves a checkpoint: at a
-- canonical block of the confirmed horizon, what the chain side (treasury
-- plus deposit addresses) held and what the ledger side (its posted
-- balance, plus the sends finished above that block) said, which were
-- equal in their change since the previous checkpoint or the start. A later
-- run that cannot read the start block's state compares its change since
-- the newest checkpoint whose block is still canonical instead.
CREATE TABLE chain_reconcile_checkpoints (
    chain_id      BIGINT NOT NULL,
    asset         TEXT NOT NULL,
    block_number  BIGINT NOT NULL CHECK (block_number >= 0),
    block_hash    TEXT NOT NULL,
    -- Base units, on the chain (U256) and in the ledger (signed).
    chain_side    NUMERIC(78, 0) NOT NULL CHECK (chain_side >= 0),
    ledger_side   NUMERIC(78, 0) NOT NULL,
    recorded_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, asset, block_number)
);
