//! The one way to paginate: every list of the node, whatever its store,
//! takes a [`Page`] (Stripe's `starting_after` / `ending_before`, parsed
//! at the edge by `api::list::Cursors`) and answers a [`Listed`].

/// Which page of a newest-first list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page<C> {
    /// The newest items.
    First,
    /// Items older than this one (`starting_after`).
    After(C),
    /// Items newer than this one, the page just before it
    /// (`ending_before`).
    Before(C),
}

impl<C> Page<C> {
    /// Whether the page runs towards newer items.
    pub fn backwards(&self) -> bool {
        matches!(self, Page::Before(_))
    }

    /// The cursor, if any.
    pub fn cursor(&self) -> Option<&C> {
        match self {
            Page::First => None,
            Page::After(c) | Page::Before(c) => Some(c),
        }
    }

    /// The API parameter the cursor came from, to name in an error.
    pub fn param(&self) -> &'static str {
        match self {
            Page::Before(_) => "ending_before",
            Page::First | Page::After(_) => "starting_after",
        }
    }

    /// `(starting_after, ending_before)`, as queries bind them.
    pub fn bounds(&self) -> (Option<&C>, Option<&C>) {
        match self {
            Page::First => (None, None),
            Page::After(c) => (Some(c), None),
            Page::Before(c) => (None, Some(c)),
        }
    }

    /// The same page with another cursor type.
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> Page<D> {
        match self {
            Page::First => Page::First,
            Page::After(c) => Page::After(f(c)),
            Page::Before(c) => Page::Before(f(c)),
        }
    }

    /// The same page with a fallible cursor conversion.
    pub fn try_map<D, E>(self, f: impl FnOnce(C) -> Result<D, E>) -> Result<Page<D>, E> {
        Ok(match self {
            Page::First => Page::First,
            Page::After(c) => Page::After(f(c)?),
            Page::Before(c) => Page::Before(f(c)?),
        })
    }
}

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<T> {
    /// The items.
    pub data: Vec<T>,
    /// Whether more items lie beyond this page in the direction of travel.
    pub has_more: bool,
}

impl<T> Listed<T> {
    /// Builds a page from up to `limit + 1` rows fetched in the direction of
    /// travel (the extra row only says there is more): newest first going
    /// forwards, oldest first going backwards.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, backwards: bool) -> Self {
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        if backwards {
            rows.reverse();
        }
        Self {
            data: rows,
            has_more,
        }
    }

    /// Builds a page from up to `limit + 1` rows already newest first: the
    /// extra row is the oldest going forwards, the newest going backwards.
    pub fn from_newest_first(mut rows: Vec<T>, limit: usize, backwards: bool) -> Self {
        let has_more = rows.len() > limit;
        if has_more {
            if backwards {
                rows.drain(..rows.len() - limit);
            } else {
                rows.truncate(limit);
            }
        }
        Self {
            data: rows,
            has_more,
        }
    }

    /// The same page with every item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listed<U> {
        Listed {
            data: self.data.into_iter().map(f).collect(),
            has_more: self.has_more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_row_only_says_there_is_more() {
        assert_eq!(
            Listed::from_rows(vec![1, 2, 3], 2, true),
            Listed {
                data: vec![2, 1],
                has_more: true
            }
        );
        assert_eq!(
            Listed::from_newest_first(vec![9, 8, 7], 2, true),
            Listed {
                data: vec![8, 7],
                has_more: true
            }
        );
        assert_eq!(
            Listed::from_newest_first(vec![9, 8, 7], 2, false),
            Listed {
                data: vec![9, 8],
                has_more: true
            }
        );
        assert!(!Listed::from_newest_first(vec![9], 2, true).has_more);
    }
}
