//! Webhooks: merchants' endpoints, signed delivery of events that is never
//! lost, and the rules that keep the node from being used to reach its own
//! network.
//!
//! - [`endpoints`]: the endpoints (`we_…`) and their signing secrets, sealed
//!   at rest.
//! - [`deliveries`]: each event's delivery to each endpoint and the log of
//!   every attempt; redelivery.
//! - [`worker`]: the background job that claims due deliveries
//!   (`FOR UPDATE SKIP LOCKED` with a lease), POSTs them, and schedules
//!   retries with exponential backoff and full jitter.
//! - [`signature`]: the `Epg-Signature` header, shared with
//!   `epg webhooks verify`.
//! - [`guard`]: the URL and address policy (SSRF).
//!
//! Deliveries are enqueued by [`crate::events::record`] in the writer's
//! transaction, so an event that committed always has its deliveries.
//! Delivery is at least once: a receiver may see an event again (after a
//! node died between the receiver's answer and recording it) and dedupes
//! on the event `id`. Each attempt, though, is made by exactly one node.

pub mod deliveries;
pub mod endpoints;
pub mod guard;
pub mod signature;
pub mod worker;

pub use deliveries::{Attempt, Delivery, DeliveryStore};
pub use endpoints::{CreatedEndpoint, Endpoint, EndpointChanges, EndpointStore, NewEndpoint};
pub use guard::UrlPolicy;

/// Errors of the webhook subsystem.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// No such object for this merchant.
    #[error("no such {what}: {id}")]
    NotFound {
        /// `webhook_endpoint`, `event`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// Invalid input, naming the parameter.
    #[error("invalid {param}: {message}")]
    Invalid {
        /// The parameter at fault (`url`, `enabled_events[2]`).
        param: String,
        /// What is wrong, for the merchant.
        message: String,
    },
    /// A signing secret could not be unsealed (the encryption key changed?).
    #[error("a webhook signing secret could not be unsealed: {0}")]
    Sealing(#[from] crate::crypto::OpenError),
    /// The configured encryption key is unusable.
    #[error("the encryption key is unusable: {0}")]
    Key(String),
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl WebhookError {
    fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        WebhookError::Invalid {
            param: param.into(),
            message: message.into(),
        }
    }
}

/// The AAD binding a sealed signing secret to its endpoint row.
pub(crate) fn secret_context(endpoint: &str) -> Vec<u8> {
    format!("epg.webhook_endpoint.secret.v1:{endpoint}").into_bytes()
}
