//! `[bank]`: the gateway's own bank accounts and the folders through which
//! SFTP or EBICS clients hand files over.
//!
//! Each node registers the configured accounts in `bank_accounts` when it
//! starts, so the command line (`epg bank import`) and every node read the
//! same list from the database.

use serde::{Deserialize, Serialize};

use super::rf::mod97;
use crate::db::Db;
use crate::money::Currency;

/// `[bank]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BankConfig {
    /// Folder where statements and status reports arrive (empty: none).
    /// Files are imported and moved to `processed/` or `rejected/` under it.
    pub inbox_dir: String,
    /// Folder where pain.001 payout files are written (empty: none; then
    /// `epg bank payouts export` writes them).
    pub outbox_dir: String,
    /// How often the inbox is looked at, and pending payouts exported.
    pub poll_interval_secs: u64,
    /// The accounts (`[[bank.accounts]]`, file only).
    pub accounts: Vec<AccountConfig>,
}

impl Default for BankConfig {
    fn default() -> Self {
        Self {
            inbox_dir: String::new(),
            outbox_dir: String::new(),
            poll_interval_secs: 10,
            accounts: Vec::new(),
        }
    }
}

/// One `[[bank.accounts]]`: an IBAN (with its BIC), or a US routing number
/// with an account number.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Name, also the ledger qualifier (`bank:<id>`).
    pub id: String,
    /// Account holder, as the bank knows it.
    pub holder: String,
    /// ISO 4217, lower or upper case.
    pub currency: String,
    /// IBAN, spaces allowed.
    #[serde(default)]
    pub iban: Option<String>,
    /// BIC of the account's bank.
    #[serde(default)]
    pub bic: Option<String>,
    /// ABA routing number (9 digits).
    #[serde(default)]
    pub routing_number: Option<String>,
    /// Account number at that bank.
    #[serde(default)]
    pub account_number: Option<String>,
    /// Payers are told to pay here.
    #[serde(default = "yes")]
    pub collection: bool,
    /// Payouts and refunds leave from here (one per currency).
    #[serde(default)]
    pub payout: bool,
}

fn yes() -> bool {
    true
}

/// An account as registered: normalised identifiers.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BankAccount {
    /// Name.
    pub id: String,
    /// Holder.
    pub holder: String,
    /// Lower-case ISO 4217.
    pub currency: String,
    /// Compact upper-case IBAN.
    pub iban: Option<String>,
    /// Upper-case BIC.
    pub bic: Option<String>,
    /// ABA routing number.
    pub routing_number: Option<String>,
    /// Account number.
    pub account_number: Option<String>,
    /// Payers pay here.
    pub collection: bool,
    /// Payouts leave from here.
    pub payout: bool,
}

impl BankAccount {
    /// How payers see it: the IBAN in groups of four, or routing/account.
    pub fn display(&self) -> String {
        match (&self.iban, &self.routing_number, &self.account_number) {
            (Some(iban), _, _) => group4(iban),
            (None, Some(routing), Some(account)) => format!("{routing} / {account}"),
            _ => self.id.clone(),
        }
    }
}

/// `s` in groups of four characters.
pub fn group4(s: &str) -> String {
    s.chars()
        .collect::<Vec<_>>()
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A compact upper-case IBAN whose check digits hold, or why not.
pub fn parse_iban(text: &str) -> Result<String, String> {
    let iban: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let well_formed = iban.len() >= 15
        && iban.len() <= 34
        && iban[..2].bytes().all(|b| b.is_ascii_uppercase())
        && iban[2..4].bytes().all(|b| b.is_ascii_digit())
        && iban.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return Err(
            "is not an IBAN (country, two check digits, 11 to 30 letters or digits)".into(),
        );
    }
    let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
    if mod97(&rearranged) != Some(1) {
        return Err("is not a valid IBAN: its check digits do not match".into());
    }
    Ok(iban)
}

/// An upper-case BIC (8 or 11 characters), or why not.
pub fn parse_bic(text: &str) -> Result<String, String> {
    let bic = text.trim().to_ascii_uppercase();
    let ok = (bic.len() == 8 || bic.len() == 11)
        && bic.bytes().all(|b| b.is_ascii_alphanumeric())
        && bic[4..6].bytes().all(|b| b.is_ascii_uppercase());
    if ok {
        Ok(bic)
    } else {
        Err("is not a BIC (8 or 11 letters or digits, the 5th and 6th a country code)".into())
    }
}

/// A 9-digit ABA routing number whose checksum holds, or why not.
pub fn parse_routing_number(text: &str) -> Result<String, String> {
    let digits: Vec<u32> = text.trim().chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 || text.trim().len() != 9 {
        return Err("is not an ABA routing number (9 digits)".into());
    }
    let weights = [3, 7, 1, 3, 7, 1, 3, 7, 1];
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    if !sum.is_multiple_of(10) {
        return Err("is not a valid ABA routing number: its checksum does not match".into());
    }
    Ok(text.trim().to_owned())
}

/// An account number: 1–34 letters or digits, or why not.
pub fn parse_account_number(text: &str) -> Result<String, String> {
    let number = text.trim();
    if number.is_empty() || number.len() > 34 || !number.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("is not an account number (1 to 34 letters or digits)".into());
    }
    Ok(number.to_owned())
}

impl AccountConfig {
    /// The account, normalised, or (key suffix, why).
    fn parse(&self) -> Result<BankAccount, (&'static str, String)> {
        let valid_id = !self.id.is_empty()
            && self.id.len() <= 40
            && self.id.starts_with(|c: char| c.is_ascii_lowercase())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_id {
            return Err((
                "id",
                "must be 1 to 40 lower-case letters, digits or _, starting with a letter".into(),
            ));
        }
        if self.holder.trim().is_empty() || self.holder.len() > 140 {
            return Err(("holder", "must be 1 to 140 characters".into()));
        }
        let currency = Currency::parse(&self.currency.to_ascii_lowercase())
            .map_err(|e| ("currency", e.to_string()))?;
        let (iban, bic, routing_number, account_number) =
            match (&self.iban, &self.routing_number, &self.account_number) {
                (Some(iban), None, None) => {
                    let iban = parse_iban(iban).map_err(|e| ("iban", e))?;
                    let bic = self
                        .bic
                        .as_deref()
                        .map(parse_bic)
                        .transpose()
                        .map_err(|e| ("bic", e))?;
                    (Some(iban), bic, None, None)
                }
                (None, Some(routing), Some(account)) => (
                    None,
                    self.bic
                        .as_deref()
                        .map(parse_bic)
                        .transpose()
                        .map_err(|e| ("bic", e))?,
                    Some(parse_routing_number(routing).map_err(|e| ("routing_number", e))?),
                    Some(parse_account_number(account).map_err(|e| ("account_number", e))?),
                ),
                _ => {
                    return Err((
                        "iban",
                        "give either iban (and bic), or routing_number and account_number".into(),
                    ));
                }
            };
        Ok(BankAccount {
            id: self.id.clone(),
            holder: self.holder.trim().to_owned(),
            currency: currency.code().to_owned(),
            iban,
            bic,
            routing_number,
            account_number,
            collection: self.collection,
            payout: self.payout,
        })
    }
}

impl BankConfig {
    /// The accounts, normalised (already checked by [`BankConfig::problem`]).
    pub fn accounts(&self) -> Vec<BankAccount> {
        self.accounts
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }

    /// The first problem of the section, as (key, why).
    pub fn problem(&self, iso20022: bool) -> Option<(String, String)> {
        if self.poll_interval_secs == 0 {
            return Some((
                "bank.poll_interval_secs".into(),
                "must be at least 1".into(),
            ));
        }
        let mut seen: Vec<BankAccount> = Vec::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let parsed = match account.parse() {
                Ok(parsed) => parsed,
                Err((field, why)) => return Some((format!("bank.accounts[{i}].{field}"), why)),
            };
            if seen.iter().any(|a| a.id == parsed.id) {
                return Some((
                    format!("bank.accounts[{i}].id"),
                    format!("`{}` names two accounts", parsed.id),
                ));
            }
            if parsed.payout
                && seen
                    .iter()
                    .any(|a| a.payout && a.currency == parsed.currency)
            {
                return Some((
                    format!("bank.accounts[{i}].payout"),
                    format!("only one payout account per currency ({})", parsed.currency),
                ));
            }
            seen.push(parsed);
        }
        if iso20022 && !seen.iter().any(|a| a.collection) {
            return Some((
                "processors.bank_transfer".into(),
                "\"iso20022\" needs at least one [[bank.accounts]] with collection = true, \
                 where payers are told to pay"
                    .into(),
            ));
        }
        None
    }
}

/// Registers `accounts` (inserted, or updated in place), recording the
/// node's mode with them.
pub async fn register(
    pool: &Db,
    accounts: &[BankAccount],
    livemode: bool,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The payout flag moves between accounts without tripping the
    // one-per-currency index halfway.
    for account in accounts.iter().filter(|a| !a.payout) {
        upsert(&mut tx, account, livemode).await?;
    }
    for account in accounts.iter().filter(|a| a.payout) {
        sqlx::query("UPDATE bank_accounts SET payout = false WHERE currency = $1 AND id <> $2")
            .bind(&account.currency)
            .bind(&account.id)
            .execute(&mut *tx)
            .await?;
        upsert(&mut tx, account, livemode).await?;
    }
    tx.commit().await
}

async fn upsert(
    conn: &mut sqlx::PgConnection,
    a: &BankAccount,
    livemode: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        r#"INSERT INTO bank_accounts (id, holder, currency, iban, bic, routing_number,
               account_number, collection, payout, livemode)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO UPDATE SET holder = $2, currency = $3, iban = $4, bic = $5,
               routing_number = $6, account_number = $7, collection = $8, payout = $9,
               livemode = $10"#,
    )
    .bind(&a.id)
    .bind(&a.holder)
    .bind(&a.currency)
    .bind(&a.iban)
    .bind(&a.bic)
    .bind(&a.routing_number)
    .bind(&a.account_number)
    .bind(a.collection)
    .bind(a.payout)
    .bind(livemode)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every registered account.
pub async fn registered(pool: &Db) -> Result<Vec<BankAccount>, sqlx::Error> {
    sqlx::query_as(
        r#"SELECT id, holder, currency, iban, bic, routing_number, account_number, collection, payout
             FROM bank_accounts ORDER BY id"#,
    )
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(iban: &str) -> AccountConfig {
        AccountConfig {
            id: "main".into(),
            holder: "E-PG".into(),
            currency: "EUR".into(),
            iban: Some(iban.into()),
            bic: Some("COBADEFFXXX".into()),
            routing_number: None,
            account_number: None,
            collection: true,
            payout: true,
        }
    }

    #[test]
    fn ibans_are_checked_and_normalised() {
        assert_eq!(
            parse_iban("de89 3704 0044 0532 0130 00").unwrap(),
            "DE89370400440532013000"
        );
        assert!(parse_iban("DE88370400440532013000").is_err());
        assert!(parse_iban("12").is_err());
    }

    #[test]
    fn routing_numbers_are_checked() {
        assert!(parse_routing_number("021000021").is_ok());
        assert!(parse_routing_number("021000022").is_err());
    }

    #[test]
    fn problems_name_the_key() {
        let config = BankConfig {
            accounts: vec![account("DE88370400440532013000")],
            ..BankConfig::default()
        };
        let (key, _) = config.problem(false).unwrap();
        assert_eq!(key, "bank.accounts[0].iban");
        let mut two = account("DE89370400440532013000");
        two.id = "second".into();
        let config = BankConfig {
            accounts: vec![account("DE89370400440532013000"), two],
            ..BankConfig::default()
        };
        assert_eq!(config.problem(false).unwrap().0, "bank.accounts[1].payout");
        let none = BankConfig::default();
        assert_eq!(none.problem(true).unwrap().0, "processors.bank_transfer");
        assert!(none.problem(false).is_none());
    }
}
