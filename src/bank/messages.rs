//! The ISO 20022 messages the node reads, mapped from their XML:
//!
//! - **camt.053** (`BkToCstmrStmt`, end-of-day statement) and **camt.054**
//!   (`BkToCstmrDbtCdtNtfctn`, debit/credit notification), versions
//!   .001.06 to .001.13 (the elements used here did not change): per
//!   account, its balances (camt.053) and entries; per entry, its status,
//!   booking date, bank references, amount and direction, and its
//!   transactions (`NtryDtls/TxDtls`: one, or several for a batch booking)
//!   with their EndToEndId, remittance information, counterparty and
//!   return reason;
//! - **pain.002** (`CstmrPmtStsRpt`, payment status report), versions
//!   .001.03 to .001.14: which pain.001 it answers (`OrgnlMsgId`), and the
//!   rejected transactions (`RJCT` at group, payment-information or
//!   transaction level) by EndToEndId, with the reason code.
//!
//! Anything else is refused with the line and the field at fault.

use time::Date;
use time::macros::format_description;

use super::xml::{self, Node, Refusal};
use crate::money::Currency;

/// A file from the bank.
#[derive(Debug, Clone)]
pub enum BankFile {
    /// camt.053 or camt.054.
    Report(Report),
    /// pain.002.
    Status(StatusReport),
}

/// Which report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ReportKind {
    /// End-of-day statement.
    #[serde(rename = "camt.053")]
    Camt053,
    /// Debit/credit notification.
    #[serde(rename = "camt.054")]
    Camt054,
}

crate::names!(ReportKind);

/// A camt.053 or camt.054.
#[derive(Debug, Clone)]
pub struct Report {
    /// Which.
    pub kind: ReportKind,
    /// GrpHdr/MsgId.
    pub message_id: String,
    /// One per `Stmt` / `Ntfctn`.
    pub accounts: Vec<AccountReport>,
}

/// How an account is identified in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountId {
    /// `Id/IBAN`.
    Iban(String),
    /// `Id/Othr/Id`.
    Other(String),
}

/// One account's statement or notification.
#[derive(Debug, Clone)]
pub struct AccountReport {
    /// `Stmt/Id` / `Ntfctn/Id`.
    pub id: String,
    /// The element, for refusals.
    pub node: Node,
    /// The account.
    pub account: AccountId,
    /// `Acct/Ccy`, when given (upper case).
    pub currency: Option<String>,
    /// Opening balance (OPBD or PRCD), camt.053.
    pub opening: Option<Balance>,
    /// Closing balance (CLBD), camt.053.
    pub closing: Option<Balance>,
    /// The entries.
    pub entries: Vec<Entry>,
}

/// A booked balance, signed, in the smallest unit of its currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Balance {
    /// `Dt/Dt`.
    pub date: Date,
    /// Positive for a credit balance.
    pub amount: i128,
}

/// Credit or debit, from the account's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Money in.
    Credit,
    /// Money out.
    Debit,
}

crate::names!(Direction);

/// An entry (`Ntry`).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The element, for refusals.
    pub node: Node,
    /// AcctSvcrRef, else NtryRef.
    pub bank_ref: Option<String>,
    /// Smallest units.
    pub amount: i128,
    /// Upper-case ISO 4217 of `Amt/@Ccy`.
    pub currency: String,
    /// Credit or debit.
    pub direction: Direction,
    /// `Sts` is BOOK.
    pub booked: bool,
    /// `BookgDt`.
    pub booking_date: Option<Date>,
    /// `ValDt`.
    pub value_date: Option<Date>,
    /// The transactions (at least one).
    pub transactions: Vec<Transaction>,
}

/// A transaction of an entry.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    /// Smallest units.
    pub amount: i128,
    /// `Refs/EndToEndId`.
    pub end_to_end_id: Option<String>,
    /// Remittance information, unstructured and structured references,
    /// joined by spaces.
    pub remittance: String,
    /// The other party's name (the debtor of a credit, the creditor of a debit).
    pub counterparty_name: Option<String>,
    /// The other party's IBAN.
    pub counterparty_iban: Option<String>,
    /// The other party's BIC.
    pub counterparty_bic: Option<String>,
    /// `RtrInf/Rsn/Cd`: the transaction returns an earlier one.
    pub return_reason: Option<String>,
}

/// A pain.002.
#[derive(Debug, Clone)]
pub struct StatusReport {
    /// GrpHdr/MsgId.
    pub message_id: String,
    /// The pain.001 it answers.
    pub original_message_id: String,
    /// The whole file was rejected, with this reason.
    pub group_rejected: Option<String>,
    /// Rejected transactions: EndToEndId and reason code.
    pub rejected: Vec<(String, String)>,
    /// The element, for refusals.
    pub node: Node,
}

const CAMT053: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.";
const CAMT054: &str = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.";
const PAIN002: &str = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.";

fn version(namespace: &str, prefix: &str) -> Option<u32> {
    namespace.strip_prefix(prefix)?.parse().ok()
}

/// Parses a bank file.
pub fn parse(text: &str) -> Result<BankFile, Refusal> {
    let (root, namespace) = xml::parse(text)?;
    if root.name != "Document" {
        return Err(Refusal::at(
            &root,
            Some(&root.name),
            "the root element must be Document",
        ));
    }
    let unknown = || {
        Refusal::at(
            &root,
            Some("Document/@xmlns"),
            format!(
                "`{namespace}` is not a file this node reads (camt.053.001.06–13, \
                 camt.054.001.06–13, pain.002.001.03–14)"
            ),
        )
    };
    if let Some(v) = version(&namespace, CAMT053) {
        if !(6..=13).contains(&v) {
            return Err(unknown());
        }
        report(&root, ReportKind::Camt053, "BkToCstmrStmt", "Stmt").map(BankFile::Report)
    } else if let Some(v) = version(&namespace, CAMT054) {
        if !(6..=13).contains(&v) {
            return Err(unknown());
        }
        report(
            &root,
            ReportKind::Camt054,
            "BkToCstmrDbtCdtNtfctn",
            "Ntfctn",
        )
        .map(BankFile::Report)
    } else if let Some(v) = version(&namespace, PAIN002) {
        if !(3..=14).contains(&v) {
            return Err(unknown());
        }
        status_report(&root).map(BankFile::Status)
    } else {
        Err(unknown())
    }
}

fn report(root: &Node, kind: ReportKind, message: &str, each: &str) -> Result<Report, Refusal> {
    let body = root.required(message)?;
    let message_id = body.required_text("GrpHdr/MsgId")?.to_owned();
    let mut accounts = Vec::new();
    for node in body.all(each) {
        accounts.push(account_report(node, kind)?);
    }
    if accounts.is_empty() {
        return Err(Refusal::at(body, Some(each), "is missing"));
    }
    Ok(Report {
        kind,
        message_id,
        accounts,
    })
}

fn account_report(node: &Node, kind: ReportKind) -> Result<AccountReport, Refusal> {
    let id = node.required_text("Id")?.to_owned();
    let acct = node.required("Acct")?;
    let account = if let Some(iban) = acct.text_at("Id/IBAN") {
        AccountId::Iban(iban.replace(' ', "").to_ascii_uppercase())
    } else if let Some(other) = acct.text_at("Id/Othr/Id") {
        AccountId::Other(other.trim().to_owned())
    } else {
        return Err(Refusal::at(
            acct,
            Some("Id"),
            "names no IBAN and no Othr/Id",
        ));
    };
    let currency = acct.text_at("Ccy").map(str::to_ascii_uppercase);
    let mut opening = None;
    let mut closing = None;
    for bal in node.all("Bal") {
        let code = bal
            .text_at("Tp/CdOrPrtry/Cd")
            .or_else(|| bal.text_at("Tp/CdOrPrtry/Prtry"))
            .unwrap_or_default();
        let slot = match code {
            "OPBD" | "PRCD" => &mut opening,
            "CLBD" => &mut closing,
            _ => continue,
        };
        if slot.is_none() {
            let (amount, _) = amount(bal.required("Amt")?)?;
            let sign = direction(bal)?;
            *slot = Some(Balance {
                date: date_of(bal.required("Dt")?)?,
                amount: match sign {
                    Direction::Credit => amount,
                    Direction::Debit => -amount,
                },
            });
        }
    }
    if kind == ReportKind::Camt053 && (opening.is_none() || closing.is_none()) {
        return Err(Refusal::at(
            node,
            Some("Bal"),
            "a statement needs an opening (OPBD or PRCD) and a closing (CLBD) balance",
        ));
    }
    let mut entries = Vec::new();
    for ntry in node.all("Ntry") {
        entries.push(entry(ntry)?);
    }
    Ok(AccountReport {
        id,
        node: node.clone(),
        account,
        currency,
        opening,
        closing,
        entries,
    })
}

fn direction(node: &Node) -> Result<Direction, Refusal> {
    match node.required_text("CdtDbtInd")? {
        "CRDT" => Ok(Direction::Credit),
        "DBIT" => Ok(Direction::Debit),
        other => Err(Refusal::at(
            node,
            Some("CdtDbtInd"),
            format!("`{other}` is neither CRDT nor DBIT"),
        )),
    }
}

/// An `Amt Ccy="…"` element in smallest units, with its currency.
fn amount(node: &Node) -> Result<(i128, String), Refusal> {
    let code = node
        .attribute("Ccy")
        .ok_or_else(|| Refusal::at(node, Some("@Ccy"), "is missing"))?;
    let currency = Currency::parse(&code.to_ascii_lowercase()).map_err(|_| {
        Refusal::at(
            node,
            Some("@Ccy"),
            format!("`{code}` is not an ISO 4217 currency"),
        )
    })?;
    let units = minor_units(&node.text, currency.exponent()).ok_or_else(|| {
        Refusal::at(
            node,
            None,
            format!(
                "`{}` is not an amount of {} with at most {} decimals",
                node.text,
                code,
                currency.exponent()
            ),
        )
    })?;
    Ok((units, code.to_ascii_uppercase()))
}

/// `12.34` at exponent 2 → 1234; `None` for anything that is not a
/// non-negative decimal with at most `exponent` significant decimals.
pub fn minor_units(text: &str, exponent: u8) -> Option<i128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) || (text.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let significant = fraction.trim_end_matches('0');
    let exponent = usize::from(exponent);
    if significant.len() > exponent || whole.len() > 20 {
        return None;
    }
    let padded = format!("{whole}{significant:0<exponent$}");
    padded.parse().ok()
}

/// `Dt` (an ISO date) or `DtTm` (its date part) under `node`.
fn date_of(node: &Node) -> Result<Date, Refusal> {
    let (field, text) = match (node.text_at("Dt"), node.text_at("DtTm")) {
        (Some(d), _) => ("Dt", d),
        (None, Some(t)) => ("DtTm", t.get(..10).unwrap_or(t)),
        (None, None) => return Err(Refusal::at(node, Some("Dt"), "is missing")),
    };
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .map_err(|_| Refusal::at(node, Some(field), format!("`{text}` is not a date")))
}

fn entry(node: &Node) -> Result<Entry, Refusal> {
    let (amount, currency) = amount(node.required("Amt")?)?;
    let direction = direction(node)?;
    let status = node
        .text_at("Sts/Cd")
        .or_else(|| node.text_at("Sts/Prtry"))
        .or_else(|| node.text_at("Sts"))
        .ok_or_else(|| Refusal::at(node, Some("Sts"), "is missing"))?;
    let booked = status == "BOOK";
    let booking_date = node.at("BookgDt").map(date_of).transpose()?;
    if booked && booking_date.is_none() {
        return Err(Refusal::at(
            node,
            Some("BookgDt"),
            "a booked entry needs its booking date",
        ));
    }
    let value_date = node.at("ValDt").map(date_of).transpose()?;
    let bank_ref = node
        .text_at("AcctSvcrRef")
        .or_else(|| node.text_at("NtryRef"))
        .map(str::to_owned);
    if booked && bank_ref.is_none() {
        return Err(Refusal::at(
            node,
            Some("AcctSvcrRef"),
            "a booked entry needs the bank's reference (AcctSvcrRef or NtryRef) to be booked exactly once",
        ));
    }
    if bank_ref.as_ref().is_some_and(|r| r.len() > 35) {
        return Err(Refusal::at(
            node,
            Some("AcctSvcrRef"),
            "is longer than 35 characters",
        ));
    }
    let details: Vec<&Node> = node.all("NtryDtls").flat_map(|d| d.all("TxDtls")).collect();
    let mut transactions = Vec::new();
    if details.is_empty() {
        transactions.push(Transaction {
            amount,
            remittance: node.text_at("AddtlNtryInf").unwrap_or_default().to_owned(),
            ..Transaction::default()
        });
    } else {
        for tx in &details {
            let tx_amount = match tx.at("Amt").or_else(|| tx.at("AmtDtls/TxAmt/Amt")) {
                Some(a) => {
                    let (units, ccy) = self::amount(a)?;
                    if ccy != currency {
                        return Err(Refusal::at(
                            a,
                            None,
                            format!("is in {ccy}, the entry in {currency}"),
                        ));
                    }
                    units
                }
                None if details.len() == 1 => amount,
                None => {
                    return Err(Refusal::at(
                        tx,
                        Some("Amt"),
                        "a batch entry needs the amount of each transaction",
                    ));
                }
            };
            transactions.push(transaction(tx, tx_amount, direction));
        }
        let sum: i128 = transactions.iter().map(|t| t.amount).sum();
        if sum != amount {
            return Err(Refusal::at(
                node,
                Some("NtryDtls"),
                format!(
                    "its transactions add up to {sum}, the entry's amount is {amount} (smallest units)"
                ),
            ));
        }
    }
    Ok(Entry {
        node: node.clone(),
        bank_ref,
        amount,
        currency,
        direction,
        booked,
        booking_date,
        value_date,
        transactions,
    })
}

fn transaction(tx: &Node, amount: i128, direction: Direction) -> Transaction {
    let mut remittance: Vec<String> = Vec::new();
    if let Some(rmt) = tx.child("RmtInf") {
        for u in rmt.all("Ustrd") {
            remittance.push(u.text.clone());
        }
        for s in rmt.all("Strd") {
            if let Some(r) = s.text_at("CdtrRefInf/Ref") {
                remittance.push(r.to_owned());
            }
        }
    }
    if let Some(info) = tx.text_at("AddtlTxInf") {
        remittance.push(info.to_owned());
    }
    let (party, account, agent) = match direction {
        Direction::Credit => ("Dbtr", "DbtrAcct", "DbtrAgt"),
        Direction::Debit => ("Cdtr", "CdtrAcct", "CdtrAgt"),
    };
    let parties = tx.child("RltdPties");
    let agents = tx.child("RltdAgts");
    Transaction {
        amount,
        end_to_end_id: tx
            .text_at("Refs/EndToEndId")
            .filter(|id| *id != "NOTPROVIDED")
            .map(str::to_owned),
        remittance: remittance.join(" "),
        counterparty_name: parties.and_then(|p| {
            p.text_at(&format!("{party}/Pty/Nm"))
                .or_else(|| p.text_at(&format!("{party}/Nm")))
                .map(str::to_owned)
        }),
        counterparty_iban: parties
            .and_then(|p| p.text_at(&format!("{account}/Id/IBAN")))
            .map(|i| i.replace(' ', "").to_ascii_uppercase()),
        counterparty_bic: agents
            .and_then(|a| {
                a.text_at(&format!("{agent}/FinInstnId/BICFI"))
                    .or_else(|| a.text_at(&format!("{agent}/FinInstnId/BIC")))
            })
            .map(str::to_owned),
        return_reason: tx
            .text_at("RtrInf/Rsn/Cd")
            .or_else(|| tx.text_at("RtrInf/Rsn/Prtry"))
            .map(str::to_owned),
    }
}

fn reason_of(node: &Node) -> String {
    node.all("StsRsnInf")
        .find_map(|r| r.text_at("Rsn/Cd").or_else(|| r.text_at("Rsn/Prtry")))
        .unwrap_or("NARR")
        .to_owned()
}

fn status_report(root: &Node) -> Result<StatusReport, Refusal> {
    let body = root.required("CstmrPmtStsRpt")?;
    let message_id = body.required_text("GrpHdr/MsgId")?.to_owned();
    let group = body.required("OrgnlGrpInfAndSts")?;
    let original_message_id = group.required_text("OrgnlMsgId")?.to_owned();
    let group_rejected = (group.text_at("GrpSts") == Some("RJCT")).then(|| reason_of(group));
    let mut rejected = Vec::new();
    for info in body.all("OrgnlPmtInfAndSts") {
        let info_rejected = (info.text_at("PmtInfSts") == Some("RJCT")).then(|| reason_of(info));
        for tx in info.all("TxInfAndSts") {
            let status = tx.text_at("TxSts");
            let reason = match (status, &info_rejected) {
                (Some("RJCT"), _) => reason_of(tx),
                (None, Some(reason)) => reason.clone(),
                _ => continue,
            };
            let id = tx.required_text("OrgnlEndToEndId")?.to_owned();
            rejected.push((id, reason));
        }
    }
    Ok(StatusReport {
        message_id,
        original_message_id,
        group_rejected,
        rejected,
        node: body.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_become_smallest_units_exactly() {
        assert_eq!(minor_units("12.34", 2), Some(1234));
        assert_eq!(minor_units("12.3", 2), Some(1230));
        assert_eq!(minor_units("12", 2), Some(1200));
        assert_eq!(minor_units("12.340", 2), Some(1234));
        assert_eq!(minor_units("1000", 0), Some(1000));
        assert_eq!(minor_units("12.345", 2), None);
        assert_eq!(minor_units("-1", 2), None);
        assert_eq!(minor_units("1e3", 2), None);
        assert_eq!(minor_units("12.", 2), None);
        assert_eq!(minor_units(".5", 2), None);
    }

    #[test]
    fn an_unknown_message_is_refused_naming_its_namespace() {
        let refusal = parse("<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\"/>")
            .unwrap_err();
        assert_eq!(refusal.line, 1);
        assert!(refusal.reason.contains("pacs.008"), "{refusal}");
    }
}
