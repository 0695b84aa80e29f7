//! A camt.054 notification of one booked credit: what `epg bank
//! sample-statement` prints and the README shows, for trying the rail
//! without a bank. It validates against camt.054.001.08.

use super::BankAccount;

/// One credit to notify.
#[derive(Debug, Clone)]
pub struct Credit<'a> {
    /// The gateway account credited.
    pub account: &'a BankAccount,
    /// Smallest units.
    pub amount: i128,
    /// What the payer wrote: the RF reference.
    pub reference: &'a str,
    /// Booking date.
    pub date: time::Date,
    /// The bank's reference of the entry (unique per account and date).
    pub bank_ref: &'a str,
    /// The payer.
    pub payer_name: &'a str,
    /// The payer's IBAN.
    pub payer_iban: &'a str,
}

fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// The notification's XML.
pub fn camt054(c: &Credit<'_>) -> String {
    let ccy = c.account.currency.to_ascii_uppercase();
    let amount = super::decimal(c.amount, super::exponent(&c.account.currency));
    let account = match (&c.account.iban, &c.account.account_number) {
        (Some(iban), _) => format!("<IBAN>{}</IBAN>", escape(iban)),
        (None, number) => format!(
            "<Othr><Id>{}</Id></Othr>",
            escape(number.as_deref().unwrap_or(""))
        ),
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr>
      <MsgId>NTF-{bank_ref}</MsgId>
      <CreDtTm>{date}T12:00:00Z</CreDtTm>
    </GrpHdr>
    <Ntfctn>
      <Id>NTF-{bank_ref}</Id>
      <Acct>
        <Id>{account}</Id>
        <Ccy>{ccy}</Ccy>
      </Acct>
      <Ntry>
        <NtryRef>{bank_ref}</NtryRef>
        <Amt Ccy="{ccy}">{amount}</Amt>
        <CdtDbtInd>CRDT</CdtDbtInd>
        <Sts><Cd>BOOK</Cd></Sts>
        <BookgDt><Dt>{date}</Dt></BookgDt>
        <ValDt><Dt>{date}</Dt></ValDt>
        <AcctSvcrRef>{bank_ref}</AcctSvcrRef>
        <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
        <NtryDtls>
          <TxDtls>
            <Refs><EndToEndId>NOTPROVIDED</EndToEndId></Refs>
            <Amt Ccy="{ccy}">{amount}</Amt>
            <RltdPties>
              <Dbtr><Pty><Nm>{payer}</Nm></Pty></Dbtr>
              <DbtrAcct><Id><IBAN>{payer_iban}</IBAN></Id></DbtrAcct>
            </RltdPties>
            <RmtInf>
              <Strd>
                <CdtrRefInf>
                  <Tp><CdOrPrtry><Cd>SCOR</Cd></CdOrPrtry></Tp>
                  <Ref>{reference}</Ref>
                </CdtrRefInf>
              </Strd>
            </RmtInf>
          </TxDtls>
        </NtryDtls>
      </Ntry>
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>
"#,
        bank_ref = escape(c.bank_ref),
        date = c.date,
        payer = escape(c.payer_name),
        payer_iban = escape(c.payer_iban),
        reference = escape(c.reference),
    )
}
