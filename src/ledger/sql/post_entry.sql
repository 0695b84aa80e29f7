-- Writes one journal entry and its postings in one statement: the whole of
-- what the ledger sends per entry (scripts/bench runs this same text through
-- pgbench). Accounts are found by a join (one index probe each, no
-- function call) and created on first use by ledger_account_id; the
-- postings' statement trigger updates the balances; the entry's deferred
-- trigger checks it balances at commit. On a key already used, nothing is
-- written and no row comes back.
WITH entry AS (
    INSERT INTO ledger_entries (public_id, key, content_hash, kind, source, description)
    VALUES ($1::text, $2::text, $3::bytea, $4::text, $5::text, $6::text)
    ON CONFLICT (key) DO NOTHING
    RETURNING id, public_id, created_at
), postings AS (
    INSERT INTO ledger_postings (entry_id, seq, account_id, asset, owner, amount, phase, fee)
    SELECT entry.id, p.seq::smallint,
           COALESCE(a.id, ledger_account_id(p.owner, p.kind, p.qualifier, p.asset)),
           p.asset, p.owner, p.amount, p.phase, p.fee
      FROM entry,
           unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::numeric[], $12::text[],
                  $13::boolean[]) WITH ORDINALITY AS p (owner, kind, qualifier, asset, amount,
                                                        phase, fee, seq)
           LEFT JOIN ledger_accounts a
                  ON (a.owner, a.kind, a.qualifier, a.asset) = (p.owner, p.kind, p.qualifier, p.asset)
    RETURNING 1
)
SELECT entry.id, entry.public_id, entry.created_at, (SELECT count(*) FROM postings) AS "postings!"
  FROM entry
