-- One transaction pipeline for every key of the node (src/chain/sender):
-- besides the treasury's refunds and payouts, the anchorer's checkpoint
-- anchors go through the same write-ahead signing, nonce rows, fee bumps,
-- re-broadcasts and confirmations. The anchorer key stays separate from
-- the treasury key, so a send names the key that signs it, and each key
-- keeps its own `chain_nonces` row (already keyed by chain and address).

-- The address that signs the send. NULL: the chain's treasury (every send
-- queued before this migration was the treasury's).
ALTER TABLE chain_sends
    ADD COLUMN signer TEXT CHECK (signer ~ '^0x[0-9a-f]{40}$');

-- The call's input column exists since 0023 (sweeps); an anchor's is its
-- `anchor(treeSize, root, prevRoot)`.

-- An anchor moves no merchant's money: no merchant, no asset, no amount.
ALTER TABLE chain_sends ALTER COLUMN asset DROP NOT NULL;
ALTER TABLE chain_sends DROP CONSTRAINT chain_sends_purpose_check;
ALTER TABLE chain_sends DROP CONSTRAINT chain_sends_amount_check;
ALTER TABLE chain_sends DROP CONSTRAINT chain_sends_merchant;
ALTER TABLE chain_sends DROP CONSTRAINT chain_sends_input;
ALTER TABLE chain_sends
    ADD CONSTRAINT chain_sends_purpose_check
        CHECK (purpose IN ('refund', 'payout', 'sweep', 'anchor')),
    ADD CONSTRAINT chain_sends_amount_check
        CHECK (amount >= 0 AND amount = trunc(amount)),
    -- Refunds and payouts move a merchant's money by a plain transfer; a
    -- sweep moves the gateway's deposits by a call of the factory; an
    -- anchor is a call signed by the anchorer that moves no money.
    ADD CONSTRAINT chain_sends_money_check
        CHECK (CASE purpose
                    WHEN 'anchor' THEN merchant_id IS NULL AND asset IS NULL AND amount = 0
                                       AND input IS NOT NULL AND signer IS NOT NULL
                    WHEN 'sweep' THEN merchant_id IS NULL AND asset IS NOT NULL AND amount > 0
                                      AND input IS NOT NULL
                    ELSE merchant_id IS NOT NULL AND asset IS NOT NULL AND amount > 0
                         AND input IS NULL END);

-- A send its owner gave up before any transaction of it was signed (an
-- anchor whose checkpoint another transaction put on the chain).
ALTER TABLE chain_sends DROP CONSTRAINT chain_sends_status_check;
ALTER TABLE chain_sends
    ADD CONSTRAINT chain_sends_status_check
        CHECK (status IN ('queued', 'sent', 'confirmed', 'failed', 'cancelled'));

CREATE INDEX chain_sends_signer_open ON chain_sends (chain_id, signer, created_at)
    WHERE status IN ('queued', 'sent');
