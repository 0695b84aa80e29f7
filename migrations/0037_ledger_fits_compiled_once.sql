-- ledger_fits in PL/pgSQL, so that the balance rows' floor CHECK no longer
-- parses the function's text on every UPDATE (issue 19).
--
-- ledger_balances_floor is CHECK (ledger_fits(...)). A SQL function this
-- simple is inlined wherever it appears, and PostgreSQL 15 prepares a
-- table's CHECK expressions again for every execution of an INSERT or
-- UPDATE (ExecConstraints -> ExecPrepareExpr -> eval_const_expressions),
-- so each balance UPDATE parsed and analysed the function's body anew.
-- Every ledger entry updates one balance row per account it touches, each
-- a new execution inside ledger_apply: in a profile of pgbench running the
-- card payment's entry statement alone (8 clients), ExecConstraints took
-- 13% of the server's CPU, 3.7% with this function. A PL/pgSQL function is
-- compiled once per session and called. The rule keeps its one text: the
-- CHECK, ledger_apply and `epg ledger check` still share it, and it answers
-- the same for every input (NULL included).
CREATE OR REPLACE FUNCTION ledger_fits(floor TEXT, posted NUMERIC, pending_debits NUMERIC,
                                       pending_credits NUMERIC) RETURNS BOOLEAN
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN pending_debits >= 0 AND pending_credits >= 0 AND CASE floor
        WHEN 'credit' THEN posted + pending_debits <= 0
        WHEN 'debit' THEN posted - pending_credits >= 0
        ELSE true
    END;
END
$$;
