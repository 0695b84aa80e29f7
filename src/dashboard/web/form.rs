//! Form bodies (`application/x-www-form-urlencoded`), parsed with the
//! field that is wrong named in the refusal.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::layout;

/// A parsed form.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            layout::error_page(StatusCode::BAD_REQUEST, "The form could not be read.")
        })?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(&bytes));
        serde_path_to_error::deserialize(de).map(Form).map_err(|e| {
            layout::error_page(
                StatusCode::BAD_REQUEST,
                &format!("The form field `{}` is wrong: {}", e.path(), e.inner()),
            )
        })
    }
}

/// The body of a form that carries nothing but its CSRF token (a button).
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

/// An id taken from a page's path; a malformed one is a page not found.
pub fn path_id<T>(raw: &str) -> Result<T, Response>
where
    T: std::str::FromStr<Err = crate::ids::InvalidId>,
{
    raw.parse()
        .map_err(|e| layout::error_page(StatusCode::NOT_FOUND, &format!("`{raw}`: {e}")))
}
