-- The rest of the merchant dashboard (issue 21).
--
-- * A user given a one-time password (`epg users create`, `epg dev`) must
--   choose their own before anything else: the password was printed on a
--   terminal and may sit in a scroll-back or a shell history.
-- * A payment's detail page asks the ledger for the postings of the
--   payment and its refunds by source, whatever their age: an index makes
--   that a lookup instead of a scan of the journal.
-- * An invitation is used once; the index finds an email's open ones.

ALTER TABLE dashboard_users
    ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT false;

CREATE INDEX ledger_entries_source ON ledger_entries (source) WHERE source IS NOT NULL;

CREATE INDEX dashboard_invites_merchant ON dashboard_invites (merchant_id, created_at DESC);
