//! Writing pain.001.001.09 (`CstmrCdtTrfInitn`): one file per debtor
//! account and execution date, one `PmtInf` in it, one `CdtTrfTxInf` per
//! transfer with its EndToEndId, the control sums the bank checks, and
//! charges shared (`SLEV`). IBAN accounts are named by IBAN (and BIC when
//! known); US accounts by account number, their bank by its ABA routing
//! number (`ClrSysMmbId`, `USABA`). The XML is written with quick-xml,
//! which escapes every text.

use std::io::Cursor;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::BankAccount;
use super::transfers::CreditorAccount;

/// The namespace written.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09";

/// One transfer.
#[derive(Debug, Clone)]
pub struct Line {
    /// EndToEndId (≤ 35 characters).
    pub end_to_end_id: String,
    /// Smallest units of the debtor account's currency.
    pub amount: i128,
    /// Creditor.
    pub creditor_name: String,
    /// Creditor's account.
    pub creditor: CreditorAccount,
    /// Unstructured remittance information.
    pub remittance: String,
}

/// A file.
#[derive(Debug, Clone)]
pub struct File {
    /// GrpHdr/MsgId (≤ 35 characters).
    pub message_id: String,
    /// When written.
    pub created_at: OffsetDateTime,
    /// Requested execution date.
    pub execution_date: Date,
    /// The gateway's payout account.
    pub debtor: BankAccount,
    /// The transfers (at least one).
    pub lines: Vec<Line>,
}

/// Writing failed (an I/O error of the in-memory buffer, or bad UTF-8).
#[derive(Debug, thiserror::Error)]
#[error("cannot write pain.001: {0}")]
pub struct WriteError(String);

type W = Writer<Cursor<Vec<u8>>>;

fn open(w: &mut W, name: &str) -> Result<(), WriteError> {
    w.write_event(Event::Start(BytesStart::new(name)))
        .map_err(|e| WriteError(e.to_string()))
}

fn close(w: &mut W, name: &str) -> Result<(), WriteError> {
    w.write_event(Event::End(BytesEnd::new(name)))
        .map_err(|e| WriteError(e.to_string()))
}

fn leaf(w: &mut W, name: &str, text: &str) -> Result<(), WriteError> {
    open(w, name)?;
    w.write_event(Event::Text(BytesText::new(text)))
        .map_err(|e| WriteError(e.to_string()))?;
    close(w, name)
}

/// `<Nm>` trimmed to the 140 characters the schema allows.
fn name(text: &str) -> String {
    text.chars().take(140).collect()
}

fn agent(w: &mut W, tag: &str, bic: Option<&str>, routing: Option<&str>) -> Result<(), WriteError> {
    open(w, tag)?;
    open(w, "FinInstnId")?;
    match (bic, routing) {
        (Some(bic), _) => leaf(w, "BICFI", bic)?,
        (None, Some(routing)) => {
            open(w, "ClrSysMmbId")?;
            open(w, "ClrSysId")?;
            leaf(w, "Cd", "USABA")?;
            close(w, "ClrSysId")?;
            leaf(w, "MmbId", routing)?;
            close(w, "ClrSysMmbId")?;
        }
        (None, None) => {
            open(w, "Othr")?;
            leaf(w, "Id", "NOTPROVIDED")?;
            close(w, "Othr")?;
        }
    }
    close(w, "FinInstnId")?;
    close(w, tag)
}

fn account(
    w: &mut W,
    tag: &str,
    iban: Option<&str>,
    number: Option<&str>,
) -> Result<(), WriteError> {
    open(w, tag)?;
    open(w, "Id")?;
    match (iban, number) {
        (Some(iban), _) => leaf(w, "IBAN", iban)?,
        (None, number) => {
            open(w, "Othr")?;
            leaf(w, "Id", number.unwrap_or("NOTPROVIDED"))?;
            close(w, "Othr")?;
        }
    }
    close(w, "Id")?;
    close(w, tag)
}

/// The file's XML.
pub fn write(file: &File) -> Result<String, WriteError> {
    let exponent = super::exponent(&file.debtor.currency);
    let currency = file.debtor.currency.to_ascii_uppercase();
    let total: i128 = file.lines.iter().map(|l| l.amount).sum();
    let count = file.lines.len().to_string();
    let sum = super::decimal(total, exponent);
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(|e| WriteError(e.to_string()))?;
    let mut root = BytesStart::new("Document");
    root.push_attribute(("xmlns", NAMESPACE));
    w.write_event(Event::Start(root))
        .map_err(|e| WriteError(e.to_string()))?;
    open(&mut w, "CstmrCdtTrfInitn")?;
    open(&mut w, "GrpHdr")?;
    leaf(&mut w, "MsgId", &file.message_id)?;
    let created = file
        .created_at
        .replace_nanosecond(0)
        .unwrap_or(file.created_at)
        .format(&Rfc3339)
        .map_err(|e| WriteError(e.to_string()))?;
    leaf(&mut w, "CreDtTm", &created)?;
    leaf(&mut w, "NbOfTxs", &count)?;
    leaf(&mut w, "CtrlSum", &sum)?;
    open(&mut w, "InitgPty")?;
    leaf(&mut w, "Nm", &name(&file.debtor.holder))?;
    close(&mut w, "InitgPty")?;
    close(&mut w, "GrpHdr")?;

    open(&mut w, "PmtInf")?;
    leaf(&mut w, "PmtInfId", &file.message_id)?;
    leaf(&mut w, "PmtMtd", "TRF")?;
    leaf(&mut w, "NbOfTxs", &count)?;
    leaf(&mut w, "CtrlSum", &sum)?;
    open(&mut w, "ReqdExctnDt")?;
    leaf(&mut w, "Dt", &file.execution_date.to_string())?;
    close(&mut w, "ReqdExctnDt")?;
    open(&mut w, "Dbtr")?;
    leaf(&mut w, "Nm", &name(&file.debtor.holder))?;
    close(&mut w, "Dbtr")?;
    account(
        &mut w,
        "DbtrAcct",
        file.debtor.iban.as_deref(),
        file.debtor.account_number.as_deref(),
    )?;
    agent(
        &mut w,
        "DbtrAgt",
        file.debtor.bic.as_deref(),
        file.debtor.routing_number.as_deref(),
    )?;
    leaf(&mut w, "ChrgBr", "SLEV")?;
    for line in &file.lines {
        open(&mut w, "CdtTrfTxInf")?;
        open(&mut w, "PmtId")?;
        leaf(&mut w, "EndToEndId", &line.end_to_end_id)?;
        close(&mut w, "PmtId")?;
        open(&mut w, "Amt")?;
        let mut amount = BytesStart::new("InstdAmt");
        amount.push_attribute(("Ccy", currency.as_str()));
        w.write_event(Event::Start(amount))
            .map_err(|e| WriteError(e.to_string()))?;
        w.write_event(Event::Text(BytesText::new(&super::decimal(
            line.amount,
            exponent,
        ))))
        .map_err(|e| WriteError(e.to_string()))?;
        close(&mut w, "InstdAmt")?;
        close(&mut w, "Amt")?;
        if line.creditor.bic.is_some() || line.creditor.routing_number.is_some() {
            agent(
                &mut w,
                "CdtrAgt",
                line.creditor.bic.as_deref(),
                line.creditor.routing_number.as_deref(),
            )?;
        }
        open(&mut w, "Cdtr")?;
        leaf(&mut w, "Nm", &name(&line.creditor_name))?;
        close(&mut w, "Cdtr")?;
        account(
            &mut w,
            "CdtrAcct",
            line.creditor.iban.as_deref(),
            line.creditor.account_number.as_deref(),
        )?;
        open(&mut w, "RmtInf")?;
        leaf(
            &mut w,
            "Ustrd",
            &line.remittance.chars().take(140).collect::<String>(),
        )?;
        close(&mut w, "RmtInf")?;
        close(&mut w, "CdtTrfTxInf")?;
    }
    close(&mut w, "PmtInf")?;
    close(&mut w, "CstmrCdtTrfInitn")?;
    close(&mut w, "Document")?;
    let mut bytes = w.into_inner().into_inner();
    bytes.push(b'\n');
    String::from_utf8(bytes).map_err(|e| WriteError(e.to_string()))
}
