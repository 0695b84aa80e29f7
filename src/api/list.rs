//! List conventions (docs/api.md, "Pagination"): `limit` 1–100 (default 10) and
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
    // An empty cursor (`starting_after=`) is no cursor, as a form that
    // leaves the field blank sends it.
    raw.filter(|c| !c.is_empty())
        .map(|c| {
            parse(c).map_err(|_| ApiError::invalid_param(param, format!("No such {what}: '{c}'")))
        })
        .transpose()
}

/// A page's cursor: at most one of `starting_after` and `ending_before`,
/// each parsed as an id of `what`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursors<T> {
    /// Objects after (older than) this one.
    pub starting_after: Option<T>,
    /// Objects before (newer than) this one.
    pub ending_before: Option<T>,
}

impl<T> Cursors<T> {
    /// Parses both cursors; both at once is a 400 naming `ending_before`.
    pub fn parse<E>(
        starting_after: Option<&str>,
        ending_before: Option<&str>,
        what: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Self, ApiError> {
        let starting_after = cursor(starting_after, "starting_after", what, &parse)?;
        let ending_before = cursor(ending_before, "ending_before", what, &parse)?;
        if starting_after.is_some() && ending_before.is_some() {
            return Err(ApiError::invalid_param(
                "ending_before",
                "starting_after and ending_before cannot be used together",
            ));
        }
        Ok(Self {
            starting_after,
            ending_before,
        })
    }

    /// The page the cursors ask for.
    pub fn into_page(self) -> crate::page::Page<T> {
        match (self.starting_after, self.ending_before) {
            (_, Some(before)) => crate::page::Page::Before(before),
            (Some(after), None) => crate::page::Page::After(after),
            (None, None) => crate::page::Page::First,
        }
    }

    /// The parameter the cursor came from, to name in an error about it.
    pub fn param(&self) -> &'static str {
        if self.ending_before.is_some() {
            "ending_before"
        } else {
            "starting_after"
        }
    }
}

/// A page of a list (docs/api.md, "Pagination"): what every list answer
/// carries besides its items (`data`, newest first). Page on with
/// `starting_after` = the last item's id (or `ending_before` = the first
/// one's).
///
/// Each typed list (`list_of!`) extends this schema with its items.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = List)]
pub struct ListHead {
    /// Always `list`.
    #[schema(schema_with = list_object_name)]
    pub object: &'static str,
    /// The list's path.
    pub url: String,
    /// Whether more items follow this page.
    pub has_more: bool,
}

crate::object_name_schema!(list_object_name, "list");

impl ListHead {
    /// The envelope of a page of `url`.
    pub fn new(url: impl Into<String>, has_more: bool) -> Self {
        Self {
            object: "list",
            url: url.into(),
            has_more,
        }
    }
}

/// Declares `$name`, a page of `$item`s as the API answers it (`object`,
/// `url`, `has_more` and `data`): the handler serializes it and its schema
/// is the `List` schema extended with the items' type.
#[macro_export]
macro_rules! list_of {
    ($(#[$meta:meta])* $vis:vis $name:ident, $item:ty) => {
        $(#[$meta])*
        #[derive(Debug, serde::Serialize, utoipa::ToSchema)]
        $vis struct $name {
            /// `object`, `url` and `has_more`.
            #[serde(flatten)]
            pub list: $crate::api::list::ListHead,
            /// The page, newest first.
            pub data: Vec<$item>,
        }

        impl $name {
            /// A page of the list at `url`.
            pub fn new(url: impl Into<String>, data: Vec<$item>, has_more: bool) -> Self {
                Self {
                    list: $crate::api::list::ListHead::new(url, has_more),
                    data,
                }
            }
        }
    };
}
