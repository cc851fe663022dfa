//! List paging. A cursor is the ID of the last item of a page: pages are
//! keyset ranges on the primary key (as Stripe's `starting_after`), so any
//! well-formed ID of the listing's kind is a valid position, and anything
//! else (another listing's cursor, a made-up string) fails the parameter's
//! pattern with a `VALIDATION_ERROR` at `cursor`.

use poem_openapi::{
    registry::MetaSchema,
    types::{ParseError, ParseFromParameter, ParseResult, ToJSON},
};
use serde_json::Value;

use crate::{
    api::{types::leaf_type, validation::match_pattern},
    domain,
};

/// The `limit` of a listing: 1 to 200 items, 50 when absent. Its schema
/// states the bounds, and a page size out of them is a `VALIDATION_ERROR`
/// at `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageSize(pub u64);

impl PageSize {
    const MAX: u64 = domain::MAX_PAGE;

    /// The page of this size after the position `after` (a cursor or a feed
    /// token).
    pub fn after(self, after: Option<&str>) -> domain::Paging<'_> {
        domain::Paging::new(after, self.0)
    }
}

impl Default for PageSize {
    fn default() -> Self {
        Self(50)
    }
}

leaf_type!(
    PageSize,
    "PageSize",
    MetaSchema {
        minimum: Some(1.0),
        maximum: Some(PageSize::MAX as f64),
        ..MetaSchema::new_with_format("integer", "uint64")
    }
);

impl ParseFromParameter for PageSize {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        match value.parse::<u64>() {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Self(n)),
            _ => Err(ParseError::custom(format!(
                "expected a whole number from 1 to {}",
                Self::MAX
            ))),
        }
    }
}

impl ToJSON for PageSize {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// A query parameter that must match `$pattern`, stated in its schema and
/// checked with the regex the body's validation compiled once
/// (`validation::match_pattern`). poem-openapi's `pattern` validator
/// compiles its regex on every request it checks, which a walk of a listing
/// or a feed paid on every page (README, "Performance"). A mismatch is a
/// `VALIDATION_ERROR` at the parameter, as it was with the validator.
macro_rules! pattern_param {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub String);

        leaf_type!(
            $ty,
            $name,
            MetaSchema {
                pattern: Some($pattern.to_owned()),
                ..MetaSchema::new("string")
            }
        );

        impl ParseFromParameter for $ty {
            fn parse_from_parameter(value: &str) -> ParseResult<Self> {
                match_pattern($pattern, value)
                    .map(|()| Self(value.to_owned()))
                    .map_err(ParseError::custom)
            }
        }
    };
}

pattern_param!(
    /// A position in the orders listing: an order ID.
    OrderCursor,
    "OrderCursor",
    "^ord_[A-Za-z0-9_]{1,60}$"
);

pattern_param!(
    /// A position in the products listing: a product ID.
    ProductCursor,
    "ProductCursor",
    "^prod_[A-Za-z0-9_]{1,60}$"
);

pattern_param!(
    /// A position in the change feed, as `nextToken` gave it.
    FeedToken,
    "FeedToken",
    "^[0-9a-f]{16}(ord_[A-Za-z0-9_]{1,60})?$"
);
