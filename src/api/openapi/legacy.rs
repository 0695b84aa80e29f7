//! Response schemas not yet generated from a Rust type.
//!
//! The objects the domain still builds as JSON (`to_api()` in payments,
//! refunds, disputes, settlements, events, webhooks) have their schemas
//! here, in `legacy.json`, until their typed response structs derive
//! `ToSchema`; each placeholder type below only names its schema in a
//! `#[utoipa::path]` response. Remove an entry when its struct lands.

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, Schema};

/// The schemas, as the hand-written document had them.
const SCHEMAS: &str = include_str!("legacy.json");

macro_rules! legacy {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("The `", stringify!($name), "` schema of `legacy.json`.")]
            #[derive(Debug)]
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    placeholder()
                }
            }

            impl utoipa::ToSchema for $name {}
        )*
    };
}

legacy!(
    PaymentMethodType,
    PaymentStatus,
    CaptureMethod,
    EventType,
    Metadata,
    List,
    CardDetails,
    PaymentMethodDetails,
    NextAction,
    CryptoTransfer,
    CryptoPayment,
    PaymentError,
    Customer,
    Address,
    Shipping,
    RiskAssessment,
    Payment,
    PaymentList,
    Refund,
    RefundList,
    Dispute,
    Event,
    EventList,
    WebhookEndpointList,
    WebhookDeliveryList,
    SettlementItem,
    Settlement,
    SettlementList,
    ProofBundle,
    Health,
    ChainHealth,
    Readiness,
    Payout,
    ProcessorCall,
    ProcessorCallList,
    ReconciliationExceptionType,
    ReconciliationException,
    ReconciliationExceptionList,
    CryptoOption,
);

/// What a placeholder type says until `merge` replaces it.
const PLACEHOLDER: &str = "(legacy.json)";

fn placeholder() -> RefOr<Schema> {
    let mut object = Object::new();
    object.description = Some(PLACEHOLDER.to_owned());
    RefOr::T(Schema::Object(object))
}

/// Puts the `legacy.json` schemas into the document's components, in
/// place of the placeholders (never over a generated schema).
pub fn merge(doc: &mut Value) {
    let Ok(Value::Object(schemas)) = serde_json::from_str::<Value>(SCHEMAS) else {
        return;
    };
    let Some(components) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for (name, schema) in schemas {
        let slot = components.entry(name).or_insert(Value::Null);
        if slot.is_null() || slot["description"] == PLACEHOLDER {
            *slot = schema;
        }
    }
}
