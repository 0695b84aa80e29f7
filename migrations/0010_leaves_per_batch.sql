-- A settled object may get leaves of the same kind in several batches (a
-- crypto payment paid in two transfers that settle in different periods):
-- one leaf per object, kind and batch. A ledger entry is still settled once
-- (settlement_items.entry_id is UNIQUE), which is what rules out a double
-- settlement.
DROP INDEX transparency_leaves_source;
CREATE UNIQUE INDEX transparency_leaves_source
    ON transparency_leaves (merchant_id, source_id, kind, settlement_id);
