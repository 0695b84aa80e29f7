//! `/v1/payments`: create, confirm, challenge, capture, cancel, retrieve,
//! list. Request bodies are parsed into the payments subsystem's types
//! here; every rule about state lives there.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AnyKey, SecretKey};
use super::client_ip::ClientIp;
use super::error::ApiError;
use super::idempotency::RequestKey;
use super::{AppState, Json, Query};
use crate::ids::PaymentId;
use crate::merchants::KeyKind;
use crate::metadata::Metadata;
use crate::methods::MethodType;
use crate::payments::crypto::CryptoMode;
use crate::payments::model::PaymentObject;
use crate::payments::service::{Address, ConfirmMethod, Customer, NewPayment, Shipping};
use crate::payments::{Audience, CaptureMethod, Status};

/// Routes of this resource that take a secret key.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", post(create).get(list))
        .route("/v1/payments/{id}/capture", post(capture))
        .route("/v1/payments/{id}/cancel", post(cancel))
}

/// The routes a browser checkout calls with the publishable key and the
/// payment's client secret (a secret key may call them too).
pub fn checkout_router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments/{id}", get(retrieve))
        .route("/v1/payments/{id}/confirm", post(confirm))
        .route("/v1/payments/{id}/challenge", post(challenge))
}

/// Parses a payment id from the path; a malformed one is simply unknown.
pub fn payment_id(raw: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(raw).map_err(|_| ApiError::not_found("payment", raw))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    amount: i64,
    currency: String,
    payment_method_types: Option<Vec<String>>,
    capture_method: Option<CaptureMethod>,
    description: Option<String>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
    customer: Option<CustomerBody>,
    shipping: Option<ShippingBody>,
    return_url: Option<String>,
    /// Confirm at once with `payment_method` (as Stripe's `confirm`).
    confirm: Option<bool>,
    payment_method: Option<PaymentMethodBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerBody {
    email: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShippingBody {
    name: Option<String>,
    address: Option<AddressBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    line1: Option<String>,
    line2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postal_code: Option<String>,
    country: Option<String>,
}

fn required(value: Option<String>, param: &str) -> Result<String, ApiError> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() => {
            if v.chars().count() > 200 {
                Err(ApiError::invalid_param(
                    param,
                    format!("{param} must be at most 200 characters"),
                ))
            } else {
                Ok(v)
            }
        }
        _ => Err(ApiError::missing_param(param)),
    }
}

fn parse_shipping(body: ShippingBody) -> Result<Shipping, ApiError> {
    let address = body
        .address
        .ok_or_else(|| ApiError::missing_param("shipping.address"))?;
    let country = required(address.country, "shipping.address.country")?.to_uppercase();
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::invalid_param(
            "shipping.address.country",
            "country must be a two-letter ISO 3166-1 code",
        ));
    }
    Ok(Shipping {
        name: required(body.name, "shipping.name")?,
        address: Address {
            line1: required(address.line1, "shipping.address.line1")?,
            line2: address.line2,
            city: required(address.city, "shipping.address.city")?,
            state: address.state,
            postal_code: required(address.postal_code, "shipping.address.postal_code")?,
            country,
        },
    })
}

fn parse_customer(body: CustomerBody) -> Result<Customer, ApiError> {
    let email = match body.email {
        Some(email) => {
            let email = email.trim().to_lowercase();
            let valid = email.len() <= 254
                && email
                    .split_once('@')
                    .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !valid {
                return Err(ApiError::invalid_param(
                    "customer.email",
                    "not a valid email address",
                ));
            }
            Some(email)
        }
        None => None,
    };
    Ok(Customer {
        email,
        name: body.name,
    })
}

/// Where the hosted checkout may send a customer: an absolute https URL,
/// or in test mode http to this machine (a merchant's local shop).
fn parse_return_url(raw: &str, mode: crate::config::Mode) -> Result<String, ApiError> {
    let invalid = |why: &str| ApiError::invalid_param("return_url", why.to_owned());
    if raw.len() > 2048 {
        return Err(invalid("return_url must be at most 2048 characters"));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| {
        invalid("return_url must be an absolute URL such as https://shop.example/thanks")
    })?;
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" if url.host_str().is_some() => {}
        "http" if local && mode == crate::config::Mode::Test => {}
        "http" if local => {
            return Err(invalid("return_url must be https in live mode"));
        }
        _ => {
            return Err(invalid(
                "return_url must be an https URL (http only to localhost in test mode)",
            ));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("return_url must not carry credentials"));
    }
    Ok(url.to_string())
}

/// A known ISO 4217 currency, lower case.
pub fn parse_currency(raw: &str, param: &str) -> Result<String, ApiError> {
    let code = raw.trim().to_lowercase();
    if crate::money::Currency::parse(&code).is_ok() {
        Ok(code)
    } else {
        Err(ApiError::invalid_param(
            param,
            format!("Invalid currency: {raw}. Use a lower-case ISO 4217 code such as usd."),
        ))
    }
}

#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    ClientIp(client_ip): ClientIp,
    request_key: RequestKey,
    Json(body): Json<CreateBody>,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let method = match (body.confirm, body.payment_method) {
        (Some(true), Some(method)) => Some(parse_method(method)?),
        (Some(true), None) => return Err(ApiError::missing_param("payment_method")),
        (_, Some(_)) => {
            return Err(ApiError::invalid_param(
                "payment_method",
                "payment_method on create needs confirm: true (or confirm the payment later)",
            ));
        }
        (_, None) => None,
    };
    let currency = parse_currency(&body.currency, "currency")?;
    let metadata =
        Metadata::parse(body.metadata).map_err(|e| ApiError::invalid_param(e.param, e.message))?;
    let payment_method_types = body
        .payment_method_types
        .map(|types| {
            types
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    t.parse::<MethodType>().map_err(|_| {
                        ApiError::invalid_param(
                            format!("payment_method_types[{i}]"),
                            format!("unknown payment method type `{t}`"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    if let Some(description) = &body.description
        && description.chars().count() > 1000
    {
        return Err(ApiError::invalid_param(
            "description",
            "description must be at most 1000 characters",
        ));
    }
    let return_url = body
        .return_url
        .as_deref()
        .map(|raw| parse_return_url(raw, state.config.mode))
        .transpose()?;
    let merchant = state.merchants.get(&caller.merchant_id).await?;
    let new = NewPayment {
        amount: body.amount,
        currency,
        payment_method_types,
        capture_method: body.capture_method.unwrap_or(CaptureMethod::Automatic),
        description: body.description,
        metadata,
        customer: body.customer.map(parse_customer).transpose()?,
        shipping: body.shipping.map(parse_shipping).transpose()?,
        return_url,
    };
    let payment = match method {
        None => {
            state
                .payments
                .create(&caller.merchant_id, &merchant.payment_method_types, new)
                .await?
        }
        Some(method) => state
            .payments
            .create_confirmed(
                &caller.merchant_id,
                &merchant.payment_method_types,
                new,
                method,
                Some(client_ip.to_string()),
                request_key.as_deref(),
            )
            .await
            .map_err(|e| {
                ApiError::from_payment(e, Audience::Merchant, state.payments.livemode())
            })?,
    };
    Ok(axum::Json(
        state.payments.view(&payment, Audience::Merchant),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetrieveQuery {
    client_secret: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn retrieve(
    State(state): State<AppState>,
    AnyKey(caller): AnyKey,
    Path(id): Path<String>,
    Query(query): Query<RetrieveQuery>,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let id = payment_id(&id)?;
    let payment = state.payments.get(&caller.merchant_id, &id).await?;
    let audience = match caller.kind {
        KeyKind::Secret => Audience::Merchant,
        KeyKind::Publishable => {
            // A browser may read a payment only with its client secret.
            if !payment.client_secret_matches(query.client_secret.as_deref()) {
                return Err(ApiError::not_found("payment", id.as_str()));
            }
            Audience::Checkout
        }
    };
    let mut object = state.payments.view(&payment, audience);
    // What the hosted checkout shows besides the payment itself (the
    // merchant's own reads stay equal to the other answers' objects).
    if audience == Audience::Checkout {
        let merchant = state.merchants.get(&caller.merchant_id).await?;
        object.merchant_name = Some(merchant.name);
        object.crypto_options = Some(state.payments.crypto_options(&payment));
    }
    Ok(axum::Json(object))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<i64>,
    starting_after: Option<String>,
    ending_before: Option<String>,
    status: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<Value>, ApiError> {
    let limit = super::list::limit(query.limit)?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            s.parse::<Status>()
                .map_err(|_| ApiError::invalid_param("status", format!("unknown status `{s}`")))
        })
        .transpose()?;
    let cursors = super::list::Cursors::parse(
        query.starting_after.as_deref(),
        query.ending_before.as_deref(),
        "payment",
        PaymentId::parse,
    )?;
    let payments = state
        .payments
        .list(&caller.merchant_id, status, &cursors.into_page(), limit)
        .await?;
    let data: Vec<PaymentObject> = payments
        .data
        .iter()
        .map(|p| state.payments.view(p, Audience::Merchant))
        .collect();
    Ok(axum::Json(json!({
        "object": "list",
        "url": "/v1/payments",
        "data": data,
        "has_more": payments.has_more,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmBody {
    payment_method: Option<PaymentMethodBody>,
    /// Required with a publishable key.
    client_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PaymentMethodBody {
    #[serde(rename = "type")]
    kind: String,
    card: Option<CardBody>,
    ewallet: Option<EwalletBody>,
    crypto: Option<Value>,
    billing_details: Option<BillingBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CardBody {
    number: String,
    exp_month: i64,
    exp_year: i64,
    cvc: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EwalletBody {
    provider: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BillingBody {
    address: Option<BillingAddress>,
}

/// Only the country is used (risk); the other lines are accepted so that
/// checkouts can send the address they collected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BillingAddress {
    country: Option<String>,
    line1: Option<String>,
    city: Option<String>,
    postal_code: Option<String>,
}

/// Providers the sandbox e-wallet knows.
const EWALLET_PROVIDERS: [&str; 5] = ["paypal", "alipay", "wechat_pay", "grabpay", "paytm"];

fn parse_method(body: PaymentMethodBody) -> Result<ConfirmMethod, ApiError> {
    let method = body.kind.parse::<MethodType>().map_err(|_| {
        ApiError::invalid_param(
            "payment_method.type",
            format!("unknown payment method type `{}`", body.kind),
        )
    })?;
    let present = |name: &str, is: bool| -> Result<(), ApiError> {
        if is && name != body.kind {
            Err(ApiError::unknown_param(format!("payment_method.{name}")))
        } else {
            Ok(())
        }
    };
    present("card", body.card.is_some())?;
    present("ewallet", body.ewallet.is_some())?;
    present("crypto", body.crypto.is_some())?;
    Ok(match method {
        MethodType::Card => {
            let card = body
                .card
                .ok_or_else(|| ApiError::missing_param("payment_method.card"))?;
            let billing_country = body
                .billing_details
                .and_then(|b| b.address)
                .and_then(|a| a.country)
                .map(|c| c.to_uppercase());
            ConfirmMethod::Card {
                number: card.number,
                exp_month: card.exp_month,
                exp_year: card.exp_year,
                cvc: card.cvc,
                billing_country,
            }
        }
        MethodType::BankTransfer => ConfirmMethod::BankTransfer,
        MethodType::Ewallet => {
            let ewallet = body
                .ewallet
                .ok_or_else(|| ApiError::missing_param("payment_method.ewallet.provider"))?;
            if !EWALLET_PROVIDERS.contains(&ewallet.provider.as_str()) {
                return Err(ApiError::invalid_param(
                    "payment_method.ewallet.provider",
                    format!("provider must be one of {}", EWALLET_PROVIDERS.join(", ")),
                ));
            }
            ConfirmMethod::Ewallet {
                provider: ewallet.provider,
            }
        }
        MethodType::CashVoucher => ConfirmMethod::CashVoucher,
        MethodType::Check => ConfirmMethod::Check,
        MethodType::Crypto => {
            let crypto = body
                .crypto
                .ok_or_else(|| ApiError::missing_param("payment_method.crypto"))?;
            let crypto: CryptoBody = super::extract::parse_json(crypto.to_string().as_bytes())
                .map_err(|mut e| {
                    e.param = e.param.map(|p| format!("payment_method.crypto.{p}"));
                    e
                })?;
            let mode = match crypto.mode.as_deref() {
                None | Some("any") => CryptoMode::Any,
                Some("deposit") => CryptoMode::Deposit,
                Some(_) => {
                    return Err(ApiError::invalid_param(
                        "payment_method.crypto.mode",
                        "mode must be one of any, deposit",
                    ));
                }
            };
            ConfirmMethod::Crypto {
                chain_id: crypto.chain_id,
                asset: crypto.asset.to_lowercase(),
                mode,
            }
        }
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CryptoBody {
    chain_id: u64,
    asset: String,
    /// `any` (default): the router and the deposit address; `deposit`:
    /// only the deposit address.
    #[serde(default)]
    mode: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn confirm(
    State(state): State<AppState>,
    AnyKey(caller): AnyKey,
    ClientIp(client_ip): ClientIp,
    request_key: RequestKey,
    Path(id): Path<String>,
    Json(body): Json<ConfirmBody>,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let id = payment_id(&id)?;
    let audience = match caller.kind {
        KeyKind::Secret => Audience::Merchant,
        KeyKind::Publishable => {
            let secret = body
                .client_secret
                .as_deref()
                .ok_or_else(|| ApiError::missing_param("client_secret"))?;
            // Unknown payment and wrong secret look the same.
            let payment = state.payments.get(&caller.merchant_id, &id).await?;
            if !payment.client_secret_matches(Some(secret)) {
                return Err(ApiError::not_found("payment", id.as_str()));
            }
            Audience::Checkout
        }
    };
    let method = parse_method(
        body.payment_method
            .ok_or_else(|| ApiError::missing_param("payment_method"))?,
    )?;
    let confirmed = match method {
        ConfirmMethod::Crypto {
            chain_id,
            asset,
            mode,
        } => {
            state
                .payments
                .confirm_crypto(&caller.merchant_id, &id, chain_id, &asset, mode)
                .await
        }
        method => {
            state
                .payments
                .confirm(
                    &caller.merchant_id,
                    &id,
                    method,
                    Some(client_ip.to_string()),
                    request_key.as_deref(),
                )
                .await
        }
    };
    let payment =
        confirmed.map_err(|e| ApiError::from_payment(e, audience, state.payments.livemode()))?;
    Ok(axum::Json(state.payments.view(&payment, audience)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChallengeBody {
    code: String,
    client_secret: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn challenge(
    State(state): State<AppState>,
    AnyKey(caller): AnyKey,
    request_key: RequestKey,
    Path(id): Path<String>,
    Json(body): Json<ChallengeBody>,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let id = payment_id(&id)?;
    let audience = match caller.kind {
        KeyKind::Secret => Audience::Merchant,
        KeyKind::Publishable => {
            let payment = state.payments.get(&caller.merchant_id, &id).await?;
            if !payment.client_secret_matches(body.client_secret.as_deref()) {
                return Err(ApiError::not_found("payment", id.as_str()));
            }
            Audience::Checkout
        }
    };
    if body.code.is_empty()
        || body.code.len() > 12
        || !body.code.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::invalid_param(
            "code",
            "code must be the digits of the one-time code",
        ));
    }
    let payment = state
        .payments
        .answer_challenge(&caller.merchant_id, &id, &body.code, request_key.as_deref())
        .await
        .map_err(|e| ApiError::from_payment(e, audience, state.payments.livemode()))?;
    Ok(axum::Json(state.payments.view(&payment, audience)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaptureBody {
    amount_to_capture: Option<i64>,
}

#[tracing::instrument(skip_all)]
async fn capture(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    request_key: RequestKey,
    Path(id): Path<String>,
    Json(body): Json<CaptureBody>,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let id = payment_id(&id)?;
    let payment = state
        .payments
        .capture(
            &caller.merchant_id,
            &id,
            body.amount_to_capture,
            request_key.as_deref(),
        )
        .await?;
    Ok(axum::Json(
        state.payments.view(&payment, Audience::Merchant),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    cancellation_reason: Option<String>,
}

/// Stripe's cancellation reasons.
const CANCELLATION_REASONS: [&str; 4] = [
    "duplicate",
    "fraudulent",
    "requested_by_customer",
    "abandoned",
];

#[tracing::instrument(skip_all)]
async fn cancel(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    request_key: RequestKey,
    Path(id): Path<String>,
    Json(body): Json<CancelBody>,
) -> Result<axum::Json<PaymentObject>, ApiError> {
    let id = payment_id(&id)?;
    if let Some(reason) = &body.cancellation_reason
        && !CANCELLATION_REASONS.contains(&reason.as_str())
    {
        return Err(ApiError::invalid_param(
            "cancellation_reason",
            format!(
                "cancellation_reason must be one of {}",
                CANCELLATION_REASONS.join(", ")
            ),
        ));
    }
    let payment = state
        .payments
        .cancel(
            &caller.merchant_id,
            &id,
            body.cancellation_reason,
            request_key.as_deref(),
        )
        .await?;
    Ok(axum::Json(
        state.payments.view(&payment, Audience::Merchant),
    ))
}
