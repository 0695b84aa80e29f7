//! Request extractors that turn every malformed input into a 400 naming the
//! parameter at fault, instead of axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// A JSON body. An empty body deserializes as `{}` so that endpoints whose
/// parameters are all optional accept a bare POST.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
            let is_json = content_type
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
            if !is_json {
                return Err(ApiError::bad_request(
                    "unsupported_content_type",
                    "Request bodies must be JSON with Content-Type: application/json.",
                ));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large()
            } else {
                ApiError::bad_request("body_unreadable", rejection.body_text())
            }
        })?;
        parse_json(&bytes).map(Json)
    }
}

/// Parses a JSON body, naming the parameter at fault on error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // PostgreSQL text cannot hold U+0000: refuse it here rather than fail
    // at the database with a 500.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000")) {
        return Err(ApiError::invalid_param(
            "body",
            "Invalid body: text may not contain the NUL character (\\u0000).",
        ));
    }
    // Every body is a JSON object (serde would also read a struct from an
    // array of its fields, which the API never documents).
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(ApiError::invalid_param(
            "body",
            "Invalid body: the request body must be a JSON object.",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| describe(e.path().to_string(), e.inner()))
}

fn describe(path: String, inner: &serde_json::Error) -> ApiError {
    let message = inner.to_string();
    let path = if path == "." || path == "?" {
        String::new()
    } else {
        path
    };
    // The path of an unknown field already ends with it; a missing field's
    // path is its parent.
    let join = |field: &str| {
        if path.is_empty() {
            field.to_owned()
        } else if path == field || path.ends_with(&format!(".{field}")) {
            path.clone()
        } else {
            format!("{path}.{field}")
        }
    };
    if let Some(field) = backticked(&message, "unknown field `") {
        return ApiError::unknown_param(join(&field));
    }
    if let Some(field) = backticked(&message, "missing field `") {
        return ApiError::missing_param(join(&field));
    }
    if inner.is_syntax() || inner.is_eof() {
        // There is no field to blame in broken JSON; point at where parsing
        // stopped, or at the body as a whole.
        let param = if path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        return ApiError::bad_request(
            "invalid_json",
            format!("The request body is not valid JSON: {message}."),
        )
        .with_param(param);
    }
    let param = if path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    ApiError::invalid_param(
        param.clone(),
        format!("Invalid {param}: {}", strip_position(&message)),
    )
}

/// `serde_json` appends " at line 1 column 17"; the param already says where.
fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

fn backticked(message: &str, prefix: &str) -> Option<String> {
    message
        .strip_prefix(prefix)?
        .split('`')
        .next()
        .map(str::to_owned)
}

/// Reads an integer as JSON Schema defines one: any number whose fraction
/// is zero (`400.0` is `400`), for the integer fields of bodies.
pub fn integral<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    use serde::de::Error;
    let number = serde_json::Number::deserialize(deserializer)?;
    let out_of_range = || D::Error::custom(format!("{number} is out of range"));
    if let Some(n) = number.as_u64() {
        return T::try_from(n).map_err(|_| out_of_range());
    }
    if let Some(n) = number.as_i64() {
        return T::try_from(n).map_err(|_| out_of_range());
    }
    let whole = number
        .as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
        .ok_or_else(|| D::Error::custom(format!("invalid type: {number}, expected an integer")))?;
    // Exact below 2^53, which the filter above keeps.
    #[allow(clippy::cast_possible_truncation)]
    let n = whole as i64;
    T::try_from(n).map_err(|_| out_of_range())
}

/// The same for an optional field.
pub fn integral_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    #[derive(serde::Deserialize)]
    struct Wrap<T: TryFrom<i64> + TryFrom<u64>>(#[serde(deserialize_with = "integral")] T);
    Option::<Wrap<T>>::deserialize(deserializer).map(|w| w.map(|Wrap(n)| n))
}

/// No parameters: an empty body or `{}`; any field is refused with 400 `parameter_unknown`.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Query-string parameters with the same error shape as [`Json`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|e| {
                let message = e.inner().to_string();
                if let Some(field) = backticked(&message, "unknown field `") {
                    return ApiError::unknown_param(field);
                }
                if let Some(field) = backticked(&message, "missing field `") {
                    return ApiError::missing_param(field);
                }
                let path = e.path().to_string();
                ApiError::invalid_param(path.clone(), format!("Invalid {path}: {message}"))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        city: String,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        amount: u64,
        address: Option<Inner>,
    }

    fn param(body: &str) -> Option<String> {
        parse_json::<Outer>(body.as_bytes()).unwrap_err().param
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(param(r#"{"amount":"x"}"#).as_deref(), Some("amount"));
        assert_eq!(param(r#"{"amount":-1}"#).as_deref(), Some("amount"));
        assert_eq!(
            param(r#"{"amount":1,"colour":1}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(param(r#"{}"#).as_deref(), Some("amount"));
        assert_eq!(
            param(r#"{"amount":1,"address":{"city":1}}"#).as_deref(),
            Some("address.city")
        );
        assert_eq!(
            param(r#"{"amount":1,"address":{"town":"x"}}"#).as_deref(),
            Some("address.town")
        );
        assert_eq!(param(r#"{"amount":1,"#).as_deref(), Some("body"));
        assert_eq!(param("[1]").as_deref(), Some("body"));
    }
}
