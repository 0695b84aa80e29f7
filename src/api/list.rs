//! List conventions (API.md, "Lists"): `limit` 1–100 (default 10) and
//! cursors naming an object of the list.

use super::error::ApiError;

/// Validates `limit`.
pub fn limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(10),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_param(
            "limit",
            "limit must be between 1 and 100",
        )),
    }
}

/// Parses the cursor `param` (`starting_after`, `ending_before`) as an id
/// of `what`; a malformed id cannot name an object of the list.
pub fn cursor<T, E>(
    raw: Option<&str>,
    param: &str,
    what: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, ApiError> {
    raw.map(|c| {
        parse(c).map_err(|_| ApiError::invalid_param(param, format!("No such {what}: '{c}'")))
    })
    .transpose()
}
