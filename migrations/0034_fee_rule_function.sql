-- The fee rule of a merchant, method and asset as one function (issue 19).
--
-- The precedence (the merchant's row for the asset, the merchant's row
-- for any asset, the default row for the asset, the default for any
-- asset) was a query the ledger sent on its own, a round trip of every
-- booking of a payment. As a function it is one definition that the
-- ledger's own read (`ledger::fee_rule`) and a statement booking a payment
-- (which reads the rule with the payment it locks) both call. A SQL
-- function of one SELECT is inlined by the planner, so it plans as the
-- query did.
CREATE FUNCTION ledger_fee_rule(p_merchant TEXT, p_method TEXT, p_asset TEXT)
RETURNS TABLE (percent_bps INTEGER, fixed NUMERIC, max_fee NUMERIC)
LANGUAGE sql STABLE AS $$
    SELECT s.percent_bps, s.fixed, s.max_fee FROM ledger_fee_schedules s
     WHERE s.method = p_method AND (s.merchant_id = p_merchant OR s.merchant_id IS NULL)
       AND (s.asset = p_asset OR s.asset IS NULL)
     ORDER BY s.merchant_id IS NULL, s.asset IS NULL
     LIMIT 1
$$;
