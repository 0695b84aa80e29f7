//! Deterministic sandbox processors for test mode (docs/api.md, "Test mode").
//!
//! Each simulates its processor's decisions from the input alone, so tests
//! and merchants' integrations see the same outcome every time. Later
//! processor events (a bank clearing, a check bouncing) are driven by the
//! `/v1/test/…` helpers.

use time::Duration;

use super::{
    Authorization, AuthorizeRequest, BoxFuture, Captured, Connector, ConnectorError,
    CustomerAction, Decline, MethodDetails, ProcessorEvent,
};

/// Succeeds.
pub const CARD_SUCCESS: &str = "4242424242424242";
/// Declined, `card_declined` / `generic_decline`.
pub const CARD_DECLINED: &str = "4000000000000002";
/// Declined, `insufficient_funds`.
pub const CARD_INSUFFICIENT_FUNDS: &str = "4000000000009995";
/// Asks for the one-time code; `123456` passes.
pub const CARD_THREE_D_SECURE: &str = "4000002760003184";
/// Succeeds, then the cardholder disputes it.
pub const CARD_DISPUTED: &str = "4000000000000259";
/// The one-time code the sandbox's 3-D Secure accepts.
pub const OTP_CODE: &str = "123456";
/// How long a sandbox voucher can be paid.
pub const VOUCHER_LIFETIME: Duration = Duration::days(3);

/// References carry what the sandbox decided, so later calls (challenge,
/// capture) stay deterministic without processor-side storage.
fn reference(kind: &str, payment_id: &str) -> String {
    format!("sb_{kind}_{payment_id}")
}

fn declined(code: &str, decline_code: Option<&str>, message: &str) -> Authorization {
    Authorization::Declined(Decline {
        code: code.to_owned(),
        decline_code: decline_code.map(str::to_owned),
        message: message.to_owned(),
    })
}

fn wrong_method(expected: &str) -> ConnectorError {
    ConnectorError::processor(format!(
        "the {expected} connector got another method's details"
    ))
}

/// Sandbox card network and issuer.
#[derive(Debug)]
pub struct SandboxCard;

/// The dispute card is disputed as soon as its money is captured.
fn captured(reference: &str) -> Captured {
    let followups = if reference.starts_with("sb_carddispute_") {
        vec![ProcessorEvent::DisputeOpened {
            reason: "fraudulent".into(),
        }]
    } else {
        Vec::new()
    };
    Captured { followups }
}

/// Approved, and captured in the same call when asked to.
fn approved(reference: String, capture: bool) -> Authorization {
    Authorization::Approved {
        captured: capture.then(|| captured(&reference)),
        reference,
    }
}

impl Connector for SandboxCard {
    fn authorize<'a>(
        &'a self,
        request: AuthorizeRequest<'a>,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
        Box::pin(async move {
            let MethodDetails::Card(card) = request.details else {
                return Err(wrong_method("card"));
            };
            Ok(match card.number.expose() {
                CARD_DECLINED => declined(
                    "card_declined",
                    Some("generic_decline"),
                    "Your card was declined.",
                ),
                CARD_INSUFFICIENT_FUNDS => declined(
                    "card_declined",
                    Some("insufficient_funds"),
                    "Your card has insufficient funds.",
                ),
                CARD_THREE_D_SECURE => Authorization::ActionRequired {
                    reference: reference("card3ds", request.payment_id),
                    action: CustomerAction::OtpChallenge,
                },
                CARD_DISPUTED => approved(
                    reference("carddispute", request.payment_id),
                    request.capture,
                ),
                _ => approved(reference("card", request.payment_id), request.capture),
            })
        })
    }

    fn answer_challenge<'a>(
        &'a self,
        _key: &'a str,
        reference: &'a str,
        code: &'a str,
        capture: bool,
    ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
        Box::pin(async move {
            if !reference.starts_with("sb_card3ds_") {
                return Err(ConnectorError::processor("no challenge is pending"));
            }
            Ok(if code == OTP_CODE {
                approved(reference.to_owned(), capture)
            } else {
                declined(
                    "authentication_failed",
                    Some("incorrect_otp"),
                    "The one-time code was incorrect.",
                )
            })
        })
    }

    fn capture<'a>(
        &'a self,
        _key: &'a str,
        reference: &'a str,
        _amount: i64,
    ) -> BoxFuture<'a, Result<Captured, ConnectorError>> {
        Box::pin(async move { Ok(captured(reference)) })
    }

    fn void<'a>(
        &'a self,
        _key: &'a str,
        _reference: &'a str,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }

    fn refund<'a>(
        &'a self,
        _key: &'a str,
        _reference: &'a str,
        _amount: i64,
    ) -> BoxFuture<'a, Result<(), ConnectorError>> {
        Box::pin(async { Ok(()) })
    }
}

/// A connector whose money arrives later, announced by a processor event.
macro_rules! pending_connector {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $details:pat, |$req:ident, $reference:ident| $action:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;

        impl Connector for $name {
            fn authorize<'a>(
                &'a self,
                $req: AuthorizeRequest<'a>,
            ) -> BoxFuture<'a, Result<Authorization, ConnectorError>> {
                Box::pin(async move {
                    if !matches!($req.details, $details) {
                        return Err(wrong_method($kind));
                    }
                    let $reference = reference($kind, $req.payment_id);
                    Ok($action)
                })
            }

            fn capture<'a>(
                &'a self,
                _key: &'a str,
                _reference: &'a str,
                _amount: i64,
            ) -> BoxFuture<'a, Result<Captured, ConnectorError>> {
                Box::pin(async { Ok(Captured::default()) })
            }

            fn void<'a>(
                &'a self,
                _key: &'a str,
                _reference: &'a str,
            ) -> BoxFuture<'a, Result<(), ConnectorError>> {
                Box::pin(async { Ok(()) })
            }

            fn refund<'a>(
                &'a self,
                _key: &'a str,
                _reference: &'a str,
                _amount: i64,
            ) -> BoxFuture<'a, Result<(), ConnectorError>> {
                Box::pin(async { Ok(()) })
            }

        }
    };
}

pending_connector!(
    /// Sandbox bank: processing until the helper clears (or returns) it.
    SandboxBankTransfer,
    "bank",
    MethodDetails::BankTransfer,
    |request, reference| Authorization::Pending {
        action: Some(CustomerAction::BankTransferInstructions {
            reference: reference.clone(),
            payee: None,
        }),
        reference,
    }
);

pending_connector!(
    /// Sandbox e-wallet: a redirect, then approve or decline.
    SandboxEwallet,
    "ewallet",
    MethodDetails::Ewallet { .. },
    |request, reference| Authorization::ActionRequired {
        action: CustomerAction::Redirect {
            url: format!(
                "{}/sandbox/ewallet/{}",
                request.return_base_url.trim_end_matches('/'),
                request.payment_id
            ),
        },
        reference,
    }
);

pending_connector!(
    /// Sandbox store chain: a voucher to pay before it expires.
    SandboxCashVoucher,
    "voucher",
    MethodDetails::CashVoucher,
    |request, reference| Authorization::ActionRequired {
        action: CustomerAction::DisplayVoucher {
            reference: reference.clone(),
            expires_at: request.now + VOUCHER_LIFETIME,
        },
        reference,
    }
);

pending_connector!(
    /// Sandbox lockbox: the check is deposited, then clears or bounces.
    SandboxCheck,
    "check",
    MethodDetails::Check,
    |request, reference| Authorization::Pending {
        action: Some(CustomerAction::MailCheck {
            reference: reference.clone(),
        }),
        reference,
    }
);

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::methods::Card;

    fn card(number: &str) -> MethodDetails {
        MethodDetails::Card(
            Card::parse(number, 12, 2030, "123", datetime!(2026-01-01 0:00 UTC)).unwrap(),
        )
    }

    async fn authorize(details: &MethodDetails) -> Authorization {
        SandboxCard
            .authorize(AuthorizeRequest {
                key: "pop_1",
                payment_id: "pay_1",
                amount: 100,
                currency: "usd",
                details,
                now: datetime!(2026-01-01 0:00 UTC),
                return_base_url: "http://x",
                capture: false,
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn simulators_keep_the_default_bodies_they_have_no_use_for() {
        // Only `Remembering` (which wraps every simulator in a node) can
        // say what an earlier key got; a bare simulator refuses to guess.
        assert!(SandboxCard.recover("pop_1").await.is_err());
        assert!(SandboxBankTransfer.recover("pop_1").await.is_err());
        // No challenge is ever pending at a bank.
        assert!(
            SandboxBankTransfer
                .answer_challenge("pop_2", "sb_bank_pay_1", OTP_CODE, false)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn sandbox_cards_decide_by_number() {
        assert!(matches!(
            authorize(&card(CARD_SUCCESS)).await,
            Authorization::Approved { .. }
        ));
        let Authorization::Declined(d) = authorize(&card(CARD_INSUFFICIENT_FUNDS)).await else {
            panic!()
        };
        assert_eq!(d.decline_code.as_deref(), Some("insufficient_funds"));
        let Authorization::ActionRequired { reference, action } =
            authorize(&card(CARD_THREE_D_SECURE)).await
        else {
            panic!()
        };
        assert_eq!(action, CustomerAction::OtpChallenge);
        assert!(matches!(
            SandboxCard
                .answer_challenge("k1", &reference, "000000", false)
                .await
                .unwrap(),
            Authorization::Declined(_)
        ));
        assert!(matches!(
            SandboxCard
                .answer_challenge("k2", &reference, OTP_CODE, false)
                .await
                .unwrap(),
            Authorization::Approved { .. }
        ));
        let Authorization::Approved { reference, .. } = authorize(&card(CARD_DISPUTED)).await
        else {
            panic!()
        };
        assert_eq!(
            SandboxCard
                .capture("k3", &reference, 100)
                .await
                .unwrap()
                .followups
                .len(),
            1
        );
    }
}
