//! `epg ledger check`: recomputes everything from the postings.

use std::fmt;

use sqlx::Connection;

use super::LedgerError;
use crate::db::Db;

/// At most this many problems of each sort are listed.
const SHOWN: i64 = 50;

/// Something the check found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// An entry whose postings of one asset (posted or pending) do not sum
    /// to zero.
    Unbalanced {
        /// The entry's key.
        key: String,
        /// The asset.
        asset: String,
        /// `posted` or `pending`.
        phase: &'static str,
        /// The sum.
        sum: String,
    },
    /// An entry with fewer than two postings.
    TooFewPostings {
        /// The entry's key.
        key: String,
        /// How many it has.
        count: i64,
    },
    /// A stored balance that is not the sum of the account's postings.
    BalanceMismatch {
        /// The account.
        account: String,
        /// Stored (posted, pending debits, pending credits).
        stored: [String; 3],
        /// Recomputed from the postings.
        computed: [String; 3],
    },
    /// An account whose balance rows are not its shards 0..n-1.
    ShardRows {
        /// The account.
        account: String,
        /// Shards it should have.
        expected: i32,
        /// Rows it has.
        found: i64,
    },
    /// An account below its floor.
    BelowFloor {
        /// The account.
        account: String,
        /// Its posted balance (debits minus credits).
        posted: String,
    },
    /// The accounts of one asset do not sum to zero.
    NonZeroTotal {
        /// The asset.
        asset: String,
        /// `stored posted balances`, `pending postings`, …
        what: String,
        /// The sum.
        sum: String,
    },
    /// A hold whose pending postings do not match its state.
    HoldMismatch {
        /// The hold's key.
        key: String,
        /// Its status.
        status: String,
        /// What is wrong.
        detail: String,
    },
    /// An entry with pending postings that opens or closes no hold.
    OrphanPending {
        /// The entry's key.
        key: String,
    },
    /// A posting whose entry does not exist, or whose account does not
    /// exist or has another asset or owner than the posting says.
    PostingReference {
        /// The posting's entry id.
        entry_id: i64,
        /// Its position in the entry.
        seq: i16,
        /// What is wrong.
        detail: &'static str,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unbalanced {
                key,
                asset,
                phase,
                sum,
            } => write!(
                f,
                "entry {key:?}: {phase} {asset} postings sum to {sum}, not 0"
            ),
            Problem::TooFewPostings { key, count } => {
                write!(f, "entry {key:?} has {count} posting(s), fewer than two")
            }
            Problem::BalanceMismatch {
                account,
                stored,
                computed,
            } => write!(
                f,
                "account {account}: stored balance (posted {}, pending debits {}, pending credits {}) \
                 but its postings sum to (posted {}, pending debits {}, pending credits {})",
                stored[0], stored[1], stored[2], computed[0], computed[1], computed[2]
            ),
            Problem::ShardRows {
                account,
                expected,
                found,
            } => write!(
                f,
                "account {account}: {found} balance rows for {expected} shards"
            ),
            Problem::BelowFloor { account, posted } => write!(
                f,
                "account {account} is below its floor (posted debits - credits = {posted})"
            ),
            Problem::NonZeroTotal { asset, what, sum } => {
                write!(f, "{asset}: {what} over all accounts sum to {sum}, not 0")
            }
            Problem::HoldMismatch {
                key,
                status,
                detail,
            } => write!(f, "hold {key:?} ({status}): {detail}"),
            Problem::OrphanPending { key } => write!(
                f,
                "entry {key:?} has pending postings but opens or closes no hold"
            ),
            Problem::PostingReference {
                entry_id,
                seq,
                detail,
            } => write!(f, "posting {seq} of entry id {entry_id}: {detail}"),
        }
    }
}

/// What the check saw and found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Journal entries.
    pub entries: i64,
    /// Postings.
    pub postings: i64,
    /// Accounts.
    pub accounts: i64,
    /// Holds, and how many are pending.
    pub holds: (i64, i64),
    /// Assets with postings, each with its number of accounts.
    pub assets: Vec<(String, i64)>,
    /// Everything wrong (at most 50 of each sort).
    pub problems: Vec<Problem>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "ledger: {} entries, {} postings, {} accounts, {} holds ({} pending)",
            self.entries, self.postings, self.accounts, self.holds.0, self.holds.1
        )?;
        for (asset, accounts) in &self.assets {
            writeln!(f, "  {asset}: {accounts} accounts")?;
        }
        if self.is_ok() {
            writeln!(
                f,
                "OK: every entry balances per asset, every balance equals the sum of its \
                 postings, every asset sums to zero over all accounts, no floor is broken, \
                 every hold matches its postings, every posting names its entry and its \
                 account"
            )
        } else {
            for p in &self.problems {
                writeln!(f, "PROBLEM: {p}")?;
            }
            writeln!(f, "FAILED: {} problem(s)", self.problems.len())
        }
    }
}

/// Recomputes every balance from the postings and checks every invariant,
/// in one consistent snapshot (a read-only REPEATABLE READ transaction).
pub async fn check(pool: &Db) -> Result<CheckReport, LedgerError> {
    let mut conn = pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut report = CheckReport::default();

    let counts = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM ledger_entries) AS "entries!",
                  (SELECT count(*) FROM ledger_postings) AS "postings!",
                  (SELECT count(*) FROM ledger_accounts) AS "accounts!",
                  (SELECT count(*) FROM ledger_holds) AS "holds!",
                  (SELECT count(*) FROM ledger_holds WHERE status = 'pending') AS "pending!""#
    )
    .fetch_one(&mut *tx)
    .await?;
    report.entries = counts.entries;
    report.postings = counts.postings;
    report.accounts = counts.accounts;
    report.holds = (counts.holds, counts.pending);
    report.assets = sqlx::query!(
        r#"SELECT asset, count(*) AS "accounts!" FROM ledger_accounts GROUP BY asset ORDER BY asset"#
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.asset, r.accounts))
    .collect();

    // Postings: their entry exists, their account exists with their asset
    // and owner (the trigger checks it on insert; migration 0033).
    for r in sqlx::query!(
        r#"SELECT p.entry_id, p.seq, e.id IS NULL AS "no_entry!", a.id IS NULL AS "no_account!"
             FROM ledger_postings p
             LEFT JOIN ledger_entries e ON e.id = p.entry_id
             LEFT JOIN ledger_accounts a ON a.id = p.account_id
            WHERE e.id IS NULL OR a.id IS NULL OR a.asset <> p.asset OR a.owner <> p.owner
            ORDER BY p.entry_id, p.seq LIMIT $1"#,
        SHOWN
    )
    .fetch_all(&mut *tx)
    .await?
    {
        report.problems.push(Problem::PostingReference {
            entry_id: r.entry_id,
            seq: r.seq,
            detail: if r.no_entry {
                "no such entry"
            } else if r.no_account {
                "no such account"
            } else {
                "its asset or owner is not its account's"
            },
        });
    }

    // Entries: two postings at least, each phase balanced per asset.
    for r in sqlx::query!(
        r#"SELECT e.key, count(p.entry_id) AS "count!" FROM ledger_entries e
             LEFT JOIN ledger_postings p ON p.entry_id = e.id
            GROUP BY e.id HAVING count(p.entry_id) < 2 ORDER BY e.id LIMIT $1"#,
        SHOWN
    )
    .fetch_all(&mut *tx)
    .await?
    {
        report.problems.push(Problem::TooFewPostings {
            key: r.key,
            count: r.count,
        });
    }
    for r in sqlx::query!(
        r#"SELECT e.key, s.asset, s.posted AS "posted!", s.total::text AS "total!"
             FROM (SELECT entry_id, asset, phase = 'posted' AS posted, sum(amount) AS total
                     FROM ledger_postings GROUP BY entry_id, asset, phase = 'posted') s
             JOIN ledger_entries e ON e.id = s.entry_id
            WHERE s.total <> 0 ORDER BY e.id LIMIT $1"#,
        SHOWN
    )
    .fetch_all(&mut *tx)
    .await?
    {
        report.problems.push(Problem::Unbalanced {
            key: r.key,
            asset: r.asset,
            phase: if r.posted { "posted" } else { "pending" },
            sum: r.total,
        });
    }

    // Balances: stored sums of shards against the postings.
    for r in sqlx::query!(
        r#"WITH stored AS (
               SELECT account_id, count(*) AS rows, count(DISTINCT shard) AS distinct_shards,
                      max(shard) AS max_shard, sum(posted) AS posted,
                      sum(pending_debits) AS pd, sum(pending_credits) AS pc
                 FROM ledger_balances GROUP BY account_id
           ), computed AS (
               SELECT account_id,
                      coalesce(sum(amount) FILTER (WHERE phase = 'posted'), 0) AS posted,
                      coalesce(sum(amount) FILTER (WHERE phase = 'pending_debit'), 0) AS pd,
                      coalesce(-sum(amount) FILTER (WHERE phase = 'pending_credit'), 0) AS pc
                 FROM ledger_postings GROUP BY account_id
           )
           SELECT account AS "account!", shards AS "shards!", rows AS "rows!",
                  shards_ok AS "shards_ok!", matches AS "matches!", fits AS "fits!",
                  s_posted AS "s_posted!", s_pd AS "s_pd!", s_pc AS "s_pc!",
                  c_posted AS "c_posted!", c_pd AS "c_pd!", c_pc AS "c_pc!"
             FROM (SELECT concat_ws('/', nullif(a.owner, ''), a.kind, nullif(a.qualifier, ''),
                                    a.asset) AS account,
                          a.shards::int AS shards, coalesce(s.rows, 0) AS rows,
                          coalesce(s.rows = a.shards AND s.distinct_shards = a.shards
                                   AND s.max_shard = a.shards - 1, false) AS shards_ok,
                          (coalesce(s.posted, 0), coalesce(s.pd, 0), coalesce(s.pc, 0))
                            = (coalesce(c.posted, 0), coalesce(c.pd, 0), coalesce(c.pc, 0))
                            AS matches,
                          ledger_fits(a.floor, coalesce(c.posted, 0), coalesce(c.pd, 0),
                                      coalesce(c.pc, 0)) AS fits,
                          coalesce(s.posted, 0)::text AS s_posted,
                          coalesce(s.pd, 0)::text AS s_pd, coalesce(s.pc, 0)::text AS s_pc,
                          coalesce(c.posted, 0)::text AS c_posted,
                          coalesce(c.pd, 0)::text AS c_pd, coalesce(c.pc, 0)::text AS c_pc,
                          a.id
                     FROM ledger_accounts a
                     LEFT JOIN stored s ON s.account_id = a.id
                     LEFT JOIN computed c ON c.account_id = a.id) checked
            WHERE NOT (shards_ok AND matches AND fits)
            ORDER BY id
            LIMIT $1"#,
        SHOWN
    )
    .fetch_all(&mut *tx)
    .await?
    {
        if !r.shards_ok {
            report.problems.push(Problem::ShardRows {
                account: r.account.clone(),
                expected: r.shards,
                found: r.rows,
            });
        }
        if !r.matches {
            report.problems.push(Problem::BalanceMismatch {
                account: r.account.clone(),
                stored: [r.s_posted, r.s_pd, r.s_pc],
                computed: [r.c_posted.clone(), r.c_pd, r.c_pc],
            });
        }
        if !r.fits {
            report.problems.push(Problem::BelowFloor {
                account: r.account,
                posted: r.c_posted,
            });
        }
    }

    // Every asset sums to zero over all accounts, as stored and as posted.
    for r in sqlx::query!(
        r#"SELECT asset AS "asset!", what AS "what!", total::text AS "total!" FROM (
               SELECT a.asset, 'stored posted balances' AS what, sum(b.posted) AS total
                 FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
                GROUP BY a.asset
               UNION ALL
               SELECT a.asset, 'stored pending balances',
                      sum(b.pending_debits) - sum(b.pending_credits)
                 FROM ledger_balances b JOIN ledger_accounts a ON a.id = b.account_id
                GROUP BY a.asset
               UNION ALL
               SELECT asset, 'posted postings', sum(amount) FILTER (WHERE phase = 'posted')
                 FROM ledger_postings GROUP BY asset
               UNION ALL
               SELECT asset, 'pending postings', sum(amount) FILTER (WHERE phase <> 'posted')
                 FROM ledger_postings GROUP BY asset
           ) t WHERE coalesce(total, 0) <> 0 ORDER BY asset, what"#
    )
    .fetch_all(&mut *tx)
    .await?
    {
        report.problems.push(Problem::NonZeroTotal {
            asset: r.asset,
            what: r.what,
            sum: r.total,
        });
    }

    // Holds: open ones have their two legs pending, closed ones none, and
    // every pending posting belongs to a hold's opening or closing entry.
    for r in sqlx::query!(
        r#"SELECT e.key, h.status, h.amount::text AS "amount!",
                  coalesce(sum(p.amount) FILTER (WHERE p.phase = 'pending_debit'
                                                   AND p.account_id = h.debit_account_id), 0)::text
                      AS "pd!",
                  coalesce(-sum(p.amount) FILTER (WHERE p.phase = 'pending_credit'
                                                    AND p.account_id = h.credit_account_id), 0)::text
                      AS "pc!",
                  count(p.entry_id) AS "legs!"
             FROM ledger_holds h
             JOIN ledger_entries e ON e.id = h.entry_id
             LEFT JOIN ledger_postings p
                    ON p.entry_id IN (h.entry_id, h.closed_entry_id) AND p.phase <> 'posted'
            GROUP BY h.id, e.key
           HAVING count(p.entry_id) <> CASE WHEN h.status = 'pending' THEN 2 ELSE 4 END
               OR coalesce(sum(p.amount) FILTER (WHERE p.phase = 'pending_debit'
                                                   AND p.account_id = h.debit_account_id), 0)
                  <> CASE WHEN h.status = 'pending' THEN h.amount ELSE 0 END
               OR coalesce(-sum(p.amount) FILTER (WHERE p.phase = 'pending_credit'
                                                    AND p.account_id = h.credit_account_id), 0)
                  <> CASE WHEN h.status = 'pending' THEN h.amount ELSE 0 END
            ORDER BY h.id LIMIT $1"#,
        SHOWN
    )
    .fetch_all(&mut *tx)
    .await?
    {
        report.problems.push(Problem::HoldMismatch {
            key: r.key,
            status: r.status,
            detail: format!(
                "holds {} but its postings leave pending debits {} and pending credits {} \
                 over {} legs",
                r.amount, r.pd, r.pc, r.legs
            ),
        });
    }
    for key in sqlx::query_scalar!(
        r#"SELECT e.key FROM ledger_entries e
            WHERE EXISTS (SELECT 1 FROM ledger_postings p
                           WHERE p.entry_id = e.id AND p.phase <> 'posted')
              AND NOT EXISTS (SELECT 1 FROM ledger_holds h
                               WHERE h.entry_id = e.id OR h.closed_entry_id = e.id)
            ORDER BY e.id LIMIT $1"#,
        SHOWN
    )
    .fetch_all(&mut *tx)
    .await?
    {
        report.problems.push(Problem::OrphanPending { key });
    }
    tx.rollback().await?;
    Ok(report)
}
