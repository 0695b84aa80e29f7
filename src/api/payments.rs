//! `/v1/payments`: create, confirm, challenge, capture, cancel, retrieve,
//! list. Request bodies are parsed into the payments subsystem's types
//! here; every rule about state lives there.

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentCreateParams)]
struct CreateBody {
    /// Amount in the currency's smallest unit (`1234` USD = $12.34; `500` JPY = ¥500).
    #[schema(minimum = 1, maximum = 99_999_999, format = Int64)]
    #[serde(deserialize_with = "super::extract::integral")]
    amount: i64,
    #[schema(schema_with = super::openapi::currency_schema)]
    currency: String,
    /// Methods the customer may pay with; a subset of the merchant's. Default: all enabled for the merchant.
    #[schema(value_type = Option<Vec<crate::methods::MethodType>>, min_items = 1)]
    payment_method_types: Option<Vec<String>>,
    /// `automatic` (default) captures at authorization; `manual` waits for `POST /v1/payments/{id}/capture`.
    #[schema(value_type = Option<crate::payments::CaptureMethod>)]
    capture_method: Option<CaptureMethod>,
    #[schema(max_length = 1000)]
    description: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::metadata_schema)]
    metadata: BTreeMap<String, String>,
    customer: Option<CustomerBody>,
    shipping: Option<ShippingBody>,
    /// Where the hosted checkout sends the customer once the payment ends, with `payment_id=pay_…` added to its query. An absolute https URL; in test mode http to localhost, 127.0.0.1 or [::1] too. No credentials in it.
    #[schema(
        max_length = 2048,
        pattern = r"^(https://[^/?#@\s]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)([/?#]\S*)?$",
        examples("https://shop.example/orders/1001/done")
    )]
    return_url: Option<String>,
    /// `true` confirms the payment at once with `payment_method`, as `POST /v1/payments/{id}/confirm` would: a server-side integration pays in one request (the answer is that of a confirmation, e.g. `402` when the card is declined, with the failed payment in `error.payment`). Default `false`; `payment_method` is refused without it.
    confirm: Option<bool>,
    /// With `confirm: true`: the method to confirm with, as in a confirmation.
    payment_method: Option<PaymentMethodBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CustomerBody {
    /// Stored lower-cased.
    #[schema(
        max_length = 254,
        pattern = r"^[^@ \t\n\f\r]+@[^@ \t\n\f\r]*\.[^@ \t\n\f\r]*$"
    )]
    email: Option<String>,
    name: Option<String>,
}

/// Where to ship. Required lines are at most 200 characters, with at least
/// one that is not white space.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ShippingBody {
    /// Recipient.
    #[schema(
        required = true,
        nullable = false,
        max_length = 200,
        pattern = r"[^ \t\n\f\r]"
    )]
    name: Option<String>,
    #[schema(required = true, nullable = false)]
    address: Option<AddressBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddressBody {
    #[schema(
        required = true,
        nullable = false,
        max_length = 200,
        pattern = r"[^ \t\n\f\r]"
    )]
    line1: Option<String>,
    line2: Option<String>,
    #[schema(
        required = true,
        nullable = false,
        max_length = 200,
        pattern = r"[^ \t\n\f\r]"
    )]
    city: Option<String>,
    state: Option<String>,
    #[schema(
        required = true,
        nullable = false,
        max_length = 200,
        pattern = r"[^ \t\n\f\r]"
    )]
    postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 (either case).
    #[schema(required = true, nullable = false, pattern = "^[A-Za-z]{2}$")]
    country: Option<String>,
}

fn required(value: Option<String>, param: &str) -> Result<String, ApiError> {
    // The length is that of the text as sent, and only ASCII white space is
    // trimmed, so that the document can state both exactly.
    match value.map(|v| (v.chars().count(), v.trim_ascii().to_owned())) {
        Some((length, v)) if !v.is_empty() => {
            if length > 200 {
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
    let country = address
        .country
        .ok_or_else(|| ApiError::missing_param("shipping.address.country"))?;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
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
            country: country.to_ascii_uppercase(),
        },
    })
}

fn parse_customer(body: CustomerBody) -> Result<Customer, ApiError> {
    let email = match body.email {
        Some(email) => {
            // Exactly the pattern of the document: a local part, one `@`,
            // a domain with a dot, no white space; at most 254 characters.
            let allowed =
                |s: &str| !s.is_empty() && !s.contains(['@', ' ', '\t', '\n', '\x0c', '\r']);
            let valid = email.chars().count() <= 254
                && email.split_once('@').is_some_and(|(local, domain)| {
                    allowed(local) && allowed(domain) && domain.contains('.')
                });
            let email = email.to_lowercase();
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
    // What is stored is the normalized URL, which percent-encoding can make
    // longer than what was sent: the limit holds for what is kept.
    let normalized = url.to_string();
    if normalized.len() > 2048 {
        return Err(invalid(
            "return_url must be at most 2048 characters once percent-encoded",
        ));
    }
    Ok(normalized)
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

#[utoipa::path(
    post,
    path = "/v1/payments",
    operation_id = "createPayment",
    tag = "Payments",
    summary = "Create a payment",
    description = "Creates a payment with status `requires_payment_method` and a `client_secret` to hand to the customer's browser (e.g. the hosted checkout `/checkout/{payment_id}?client_secret=…&key=pk_…`). With `confirm: true` and a `payment_method` it is confirmed in the same request (see `POST /v1/payments/{id}/confirm`).",
    security(("secretKey" = [])),
    request_body(content = CreateBody, example = json!({"amount": 1234, "currency": "usd", "capture_method": "automatic", "description": "Order 1001", "metadata": {"order_id": "1001"}, "customer": {"email": "jane@example.com", "name": "Jane Doe"}})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 402, response = crate::api::openapi::PaymentRequired),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
    let enabled_methods = match caller.enabled_methods {
        Some(methods) => methods,
        None => state
            .merchants
            .get(&caller.merchant_id)
            .await?
            .payment_method_types
            .into(),
    };
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
                .create(
                    &caller.merchant_id,
                    &enabled_methods,
                    new,
                    request_key.as_deref(),
                )
                .await?
        }
        Some(method) => state
            .payments
            .create_confirmed(
                &caller.merchant_id,
                &enabled_methods,
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RetrieveQuery {
    /// Required with a publishable key: the payment's client secret. With a wrong or missing one the payment is not found (404).
    client_secret: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/payments/{id}",
    operation_id = "retrievePayment",
    tag = "Payments",
    summary = "Retrieve a payment",
    description = "With a secret key: the merchant view. With a publishable key and the payment's `client_secret`: the checkout view (no `description`, `metadata`, `customer`, `shipping`, `cancellation_reason`, `risk` or `expires_at`).",
    security(("secretKey" = []), ("publishableKey" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
        RetrieveQuery,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentObject),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1–100 (default 10).
    #[param(minimum = 1, maximum = 100, default = 10)]
    limit: Option<i64>,
    /// A cursor: the id of the last item of the previous page; returns the items after it. Not with `ending_before`. Empty means none.
    #[param(pattern = "^(pay_[A-Za-z0-9]{24})?$")]
    starting_after: Option<String>,
    /// A cursor: the id of the first item of the next page; returns the items before it. Not with `starting_after`. Empty means none.
    #[param(pattern = "^(pay_[A-Za-z0-9]{24})?$")]
    ending_before: Option<String>,
    /// Only payments with this status.
    #[param(value_type = Option<crate::payments::Status>)]
    status: Option<String>,
}

crate::list_of!(
    /// A `list` of `Payment` objects.
    pub PaymentList,
    PaymentObject
);

#[utoipa::path(
    get,
    path = "/v1/payments",
    operation_id = "listPayments",
    tag = "Payments",
    summary = "List payments",
    description = "The merchant's payments, newest first.",
    security(("secretKey" = [])),
    params(
        ListQuery,
    ),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentList),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    SecretKey(caller): SecretKey,
    Query(query): Query<ListQuery>,
) -> Result<axum::Json<PaymentList>, ApiError> {
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
    Ok(axum::Json(PaymentList::new(
        "/v1/payments",
        data,
        payments.has_more,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentConfirmParams)]
struct ConfirmBody {
    #[schema(required = true, nullable = false)]
    payment_method: Option<PaymentMethodBody>,
    /// The payment's client secret. Required with a publishable key; a wrong one answers 404, as for an unknown payment.
    client_secret: Option<String>,
}

/// How the customer pays. Exactly the sub-object of its `type` may be present (`card` for `card`, `ewallet` for `ewallet`, …); `bank_transfer`, `cash_voucher` and `check` have none.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PaymentMethodBody {
    #[serde(rename = "type")]
    #[schema(value_type = crate::methods::MethodType)]
    kind: String,
    /// With `type: card` only.
    card: Option<CardBody>,
    /// With `type: ewallet` only (required then).
    ewallet: Option<EwalletBody>,
    /// With `type: crypto` only (required then). Locks a quote for 15 minutes and answers `next_action.crypto_transfer`.
    #[schema(value_type = Option<CryptoBody>)]
    crypto: Option<Value>,
    /// Optional billing details collected by the checkout.
    billing_details: Option<BillingBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CardBody {
    /// The card number (spaces allowed). Sandbox: `4242424242424242` succeeds, `4000000000000002` declines, `4000000000009995` declines with `insufficient_funds`, `4000002760003184` needs the one-time code `123456`, `4000000000000259` succeeds and is later disputed.
    number: String,
    #[schema(minimum = 1, maximum = 12)]
    #[serde(deserialize_with = "super::extract::integral")]
    exp_month: i64,
    /// Four digits; the expiry must be in the future.
    #[serde(deserialize_with = "super::extract::integral")]
    exp_year: i64,
    /// 3 or 4 digits.
    #[schema(pattern = "^[0-9]{3,4}$")]
    cvc: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct EwalletBody {
    #[schema(value_type = EwalletProvider)]
    provider: String,
}

/// Providers the sandbox e-wallet knows.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum EwalletProvider {
    Paypal,
    Alipay,
    WechatPay,
    Grabpay,
    Paytm,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BillingBody {
    address: Option<BillingAddress>,
}

/// Only the country is used (risk); the other lines are accepted so that
/// checkouts can send the address they collected.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct BillingAddress {
    /// ISO 3166-1 alpha-2; used by risk scoring.
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CryptoBody {
    /// A chain the node watches.
    #[schema(examples(31337))]
    #[serde(deserialize_with = "super::extract::integral")]
    chain_id: u64,
    /// An asset accepted on that chain (`usdc`, `eth`, …).
    #[schema(examples("usdc"))]
    asset: String,
    /// `deposit`: the quote's only instruction is the payment's deposit address (for payers who can only send to an address); `any` (default): the router call and the deposit address.
    #[serde(default)]
    #[schema(value_type = Option<CryptoModeParam>)]
    mode: Option<String>,
}

/// `any` or `deposit`.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum CryptoModeParam {
    Any,
    Deposit,
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/confirm",
    operation_id = "confirmPayment",
    tag = "Payments",
    summary = "Confirm a payment",
    description = "Attaches the customer's payment method and authorizes. The answer's `status` says what happened: `succeeded` (or `requires_capture` for manual capture), `requires_action` with a `next_action` (`otp_challenge`, `redirect`, `display_voucher`, `crypto_transfer`), or `processing` (bank transfer, check: with instructions in `next_action`). A decline answers 402 and leaves the payment `failed`, to be confirmed again. With a publishable key, `client_secret` is required. Allowed from `requires_payment_method` and `failed`; otherwise 409.",
    security(("secretKey" = []), ("publishableKey" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = ConfirmBody, example = json!({"payment_method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034, "cvc": "123"}}})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 402, response = crate::api::openapi::PaymentRequired),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 502, response = crate::api::openapi::BadGateway),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
    let confirmed = state
        .payments
        .confirm(
            &caller.merchant_id,
            &id,
            method,
            Some(client_ip.to_string()),
            request_key.as_deref(),
        )
        .await;
    let payment =
        confirmed.map_err(|e| ApiError::from_payment(e, audience, state.payments.livemode()))?;
    Ok(axum::Json(state.payments.view(&payment, audience)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentChallengeParams)]
struct ChallengeBody {
    /// The digits of the one-time code (sandbox: `123456` passes).
    #[schema(pattern = "^[0-9]{1,12}$")]
    code: String,
    /// Required with a publishable key.
    client_secret: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/challenge",
    operation_id = "answerPaymentChallenge",
    tag = "Payments",
    summary = "Answer a one-time-code challenge",
    description = "Answers `next_action.type = otp_challenge` (card 3-D Secure). A wrong code answers 402 `authentication_failed` and the payment becomes `failed`. With a publishable key, `client_secret` is required.",
    security(("secretKey" = []), ("publishableKey" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = ChallengeBody, example = json!({"code": "123456"})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 402, response = crate::api::openapi::PaymentRequired),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 502, response = crate::api::openapi::BadGateway),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentCaptureParams)]
struct CaptureBody {
    /// At most the authorized amount; the rest is released. Default: all of it.
    #[schema(minimum = 1, format = Int64)]
    #[serde(default, deserialize_with = "super::extract::integral_opt")]
    amount_to_capture: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/capture",
    operation_id = "capturePayment",
    tag = "Payments",
    summary = "Capture an authorized payment",
    description = "Captures a `requires_capture` payment (manual capture), all of it or `amount_to_capture`; the rest of the authorization is released.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<CaptureBody>, example = json!({"amount_to_capture": 1000})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 502, response = crate::api::openapi::BadGateway),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PaymentCancelParams)]
struct CancelBody {
    #[schema(value_type = Option<CancellationReason>)]
    cancellation_reason: Option<String>,
}

/// Why the payment was canceled.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum CancellationReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
    Abandoned,
}

/// Stripe's cancellation reasons.
const CANCELLATION_REASONS: [&str; 4] = [
    "duplicate",
    "fraudulent",
    "requested_by_customer",
    "abandoned",
];

#[utoipa::path(
    post,
    path = "/v1/payments/{id}/cancel",
    operation_id = "cancelPayment",
    tag = "Payments",
    summary = "Cancel a payment",
    description = "Cancels a payment in `requires_payment_method`, `requires_action`, `requires_capture` or `failed`, releasing any authorization; otherwise 409.",
    security(("secretKey" = [])),
    params(
        ("id" = String, Path, description = "The payment's id (`pay_…`)."),
    ),
    request_body(content = Option<CancelBody>, example = json!({"cancellation_reason": "requested_by_customer"})),
    responses(
        (status = 200, description = "OK", content_type = "application/json", body = PaymentObject, headers(("Idempotent-Replayed" = String, description = "`true` when this is the saved response of an earlier request with the same `Idempotency-Key`."))),
        (status = 400, response = crate::api::openapi::BadRequest),
        (status = 401, response = crate::api::openapi::Unauthorized),
        (status = 403, response = crate::api::openapi::Forbidden),
        (status = 404, response = crate::api::openapi::NotFound),
        (status = 409, response = crate::api::openapi::Conflict),
        (status = 413, response = crate::api::openapi::PayloadTooLarge),
        (status = 429, response = crate::api::openapi::TooManyRequests),
        (status = 500, response = crate::api::openapi::InternalError),
        (status = 502, response = crate::api::openapi::BadGateway),
        (status = 503, response = crate::api::openapi::ServiceUnavailable),
    )
)]
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
