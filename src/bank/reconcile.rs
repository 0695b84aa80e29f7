//! `epg reconcile bank`: per bank account, each statement's opening and
//! closing balance against the ledger's `bank:<account>` on those dates.
//!
//! The ledger's balance at the end of a date is the sum of the postings on
//! `bank:<account>` of the cash entries of transactions booked on or before
//! it, plus the opening entry; at its start, the same before it. Any
//! posting on `bank:<account>` that no statement transaction or opening
//! explains is a difference too. Open exceptions are listed: unmatched
//! money is not a difference (it is booked, in suspense), but it is shown.

use std::fmt;

use rust_decimal::Decimal;
use time::Date;

use super::BankError;
use super::exceptions::Exception;
use crate::db::Db;

/// One comparison.
#[derive(Debug, Clone)]
pub struct Check {
    /// `statement <id> opening` / `closing`.
    pub what: String,
    /// The date.
    pub date: Date,
    /// The bank's balance.
    pub bank: i128,
    /// The ledger's.
    pub ledger: i128,
}

/// An account's report.
#[derive(Debug, Clone)]
pub struct AccountReport {
    /// The account.
    pub account: super::BankAccount,
    /// Comparisons, in date order.
    pub checks: Vec<Check>,
    /// Postings on `bank:<account>` no statement explains.
    pub unexplained: i128,
    /// Open exceptions.
    pub exceptions: Vec<Exception>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct Report {
    /// Per account.
    pub accounts: Vec<AccountReport>,
}

impl Report {
    /// Whether every balance agrees.
    pub fn is_ok(&self) -> bool {
        self.differences() == 0
    }

    /// How many comparisons differ.
    pub fn differences(&self) -> usize {
        self.accounts
            .iter()
            .map(|a| {
                a.checks.iter().filter(|c| c.bank != c.ledger).count()
                    + usize::from(a.unexplained != 0)
            })
            .sum()
    }
}

fn int(d: Decimal) -> i128 {
    d.trunc().mantissa() / 10i128.pow(d.trunc().scale())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.accounts {
            let exp = super::exponent(&a.account.currency);
            let ccy = a.account.currency.to_ascii_uppercase();
            writeln!(
                f,
                "bank account {} ({}, {ccy})",
                a.account.id,
                a.account.display()
            )?;
            if a.checks.is_empty() {
                writeln!(f, "  no statement in the period")?;
            }
            for c in &a.checks {
                let verdict = if c.bank == c.ledger {
                    "ok".to_owned()
                } else {
                    format!("DIFFERENCE {}", super::decimal(c.bank - c.ledger, exp))
                };
                writeln!(
                    f,
                    "  {}  {:<32} bank {:>14}  ledger {:>14}  {verdict}",
                    c.date,
                    c.what,
                    super::decimal(c.bank, exp),
                    super::decimal(c.ledger, exp)
                )?;
            }
            if a.unexplained != 0 {
                writeln!(
                    f,
                    "  DIFFERENCE {} on bank:{} that no statement entry explains",
                    super::decimal(a.unexplained, exp),
                    a.account.id
                )?;
            }
            for e in &a.exceptions {
                writeln!(
                    f,
                    "  open exception {} {:<16} {:>12} {ccy}  {}",
                    e.id,
                    e.kind,
                    super::decimal(i128::from(e.amount), exp),
                    e.detail
                )?;
            }
        }
        let diffs = self.differences();
        if diffs == 0 {
            writeln!(f, "ok: {} account(s), no difference", self.accounts.len())
        } else {
            writeln!(f, "{diffs} difference(s)")
        }
    }
}

/// The ledger's balance of `bank:<account>` through `date` (inclusive) or
/// before it.
async fn ledger_balance(
    pool: &Db,
    account: &str,
    date: Date,
    inclusive: bool,
) -> Result<i128, BankError> {
    let sum: Decimal = sqlx::query_scalar(
        r#"SELECT coalesce(sum(p.amount), 0) FROM ledger_postings p
             JOIN ledger_accounts a ON a.id = p.account_id
            WHERE a.owner = '' AND a.kind = 'bank' AND a.qualifier = $1 AND p.phase = 'posted'
              AND (p.entry_id IN (SELECT t.ledger_entry_id FROM bank_transactions t
                                    JOIN bank_entries e ON e.id = t.entry_id
                                   WHERE e.account_id = $1
                                     AND (e.booking_date < $2 OR ($3 AND e.booking_date = $2)))
                   OR p.entry_id IN (SELECT l.id FROM ledger_entries l
                                       JOIN bank_accounts b ON b.id = $1
                                      WHERE l.key = 'bank:' || $1 || ':opening'
                                        AND b.opening_date <= $2))"#,
    )
    .bind(account)
    .bind(date)
    .bind(inclusive)
    .fetch_one(pool)
    .await?;
    Ok(int(sum))
}

/// Compares the statements dated in `[from, to]`.
pub async fn reconcile(pool: &Db, from: Date, to: Date) -> Result<Report, BankError> {
    let mut accounts = Vec::new();
    for account in super::config::registered(pool).await? {
        let statements: Vec<(String, Date, Decimal, Date, Decimal)> = sqlx::query_as(
            r#"SELECT statement_id, opening_date, opening_balance, closing_date, closing_balance
                 FROM bank_statements WHERE account_id = $1 AND closing_date >= $2 AND opening_date <= $3
                ORDER BY opening_date, closing_date, id"#,
        )
        .bind(&account.id)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        let mut checks = Vec::new();
        for (id, open_date, open_balance, close_date, close_balance) in statements {
            checks.push(Check {
                what: format!("statement {id} opening"),
                date: open_date,
                bank: int(open_balance),
                ledger: ledger_balance(pool, &account.id, open_date, false).await?,
            });
            checks.push(Check {
                what: format!("statement {id} closing"),
                date: close_date,
                bank: int(close_balance),
                ledger: ledger_balance(pool, &account.id, close_date, true).await?,
            });
        }
        let unexplained: Decimal = sqlx::query_scalar(
            r#"SELECT coalesce(sum(p.amount), 0) FROM ledger_postings p
                 JOIN ledger_accounts a ON a.id = p.account_id
                WHERE a.owner = '' AND a.kind = 'bank' AND a.qualifier = $1 AND p.phase = 'posted'
                  AND p.entry_id NOT IN (SELECT t.ledger_entry_id FROM bank_transactions t
                                           JOIN bank_entries e ON e.id = t.entry_id WHERE e.account_id = $1)
                  AND p.entry_id NOT IN (SELECT id FROM ledger_entries WHERE key = 'bank:' || $1 || ':opening')"#,
        )
        .bind(&account.id)
        .fetch_one(pool)
        .await?;
        let exceptions = super::exceptions::open_of(pool, &account.id).await?;
        accounts.push(AccountReport {
            account,
            checks,
            unexplained: int(unexplained),
            exceptions,
        });
    }
    Ok(Report { accounts })
}
