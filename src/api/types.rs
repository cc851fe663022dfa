//! Leaf types of the wire format whose schema poem-openapi cannot express
//! with its built-ins, or whose built-in check costs too much: exact
//! decimals, whole numbers written as `2.0`, country codes, HS codes. Each
//! states its constraints in its schema, which the validator walks
//! (`api::validation`), so spec and checks agree.

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::{
    api::validation::{COUNTRY_FORMAT, match_pattern},
    domain::money::exact_decimal,
};

macro_rules! leaf_type {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl ::poem_openapi::types::Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = Self;
            type RawElementValueType = Self;

            fn name() -> ::std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn schema_ref() -> ::poem_openapi::registry::MetaSchemaRef {
                ::poem_openapi::registry::MetaSchemaRef::Inline(Box::new($schema))
            }

            fn as_raw_value(&self) -> Option<&Self> {
                Some(self)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
                Box::new(self.as_raw_value().into_iter())
            }
        }
    };
}
pub(crate) use leaf_type;

fn decimal_from_json<T: Type>(value: Option<Value>) -> Result<Decimal, ParseError<T>> {
    match value {
        Some(Value::Number(n)) => {
            exact_decimal(&n).ok_or_else(|| ParseError::custom("number out of range"))
        }
        other => Err(ParseError::expected_type(other.unwrap_or_default())),
    }
}

fn decimal_to_json(d: Decimal) -> Value {
    // Normalised so that 110.000 is written 110, as a JSON number.
    Value::Number(
        d.normalize()
            .to_string()
            .parse()
            .expect("a decimal is a JSON number"),
    )
}

/// A unit value in USD: 0 to 1,000,000,000 with at most six decimal places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitValueUsd(pub Decimal);

leaf_type!(
    UnitValueUsd,
    "UnitValueUsd",
    MetaSchema {
        minimum: Some(0.0),
        maximum: Some(1e9),
        multiple_of: Some(0.000001),
        ..MetaSchema::new_with_format("number", "decimal")
    }
);

impl ParseFromJSON for UnitValueUsd {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        decimal_from_json(value).map(Self)
    }
}

impl ToJSON for UnitValueUsd {
    fn to_json(&self) -> Option<Value> {
        Some(decimal_to_json(self.0))
    }
}

/// An exact USD amount in a response, e.g. a calculated total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usd(pub Decimal);

leaf_type!(
    Usd,
    "Usd",
    MetaSchema {
        minimum: Some(0.0),
        multiple_of: Some(0.000001),
        ..MetaSchema::new_with_format("number", "decimal")
    }
);

impl ParseFromJSON for Usd {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        decimal_from_json(value).map(Self)
    }
}

impl ToJSON for Usd {
    fn to_json(&self) -> Option<Value> {
        Some(decimal_to_json(self.0))
    }
}

/// A whole number of units, 1 to 1,000,000,000; `2.0` and `2e0` count as 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(pub i64);

leaf_type!(
    Quantity,
    "Quantity",
    MetaSchema {
        minimum: Some(1.0),
        maximum: Some(1e9),
        ..MetaSchema::new_with_format("integer", "int64")
    }
);

impl ParseFromJSON for Quantity {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let d = decimal_from_json(value)?;
        if !d.fract().is_zero() {
            return Err(ParseError::custom("expected a whole number"));
        }
        i64::try_from(d)
            .map(Self)
            .map_err(|_| ParseError::custom("number out of range"))
    }
}

impl ToJSON for Quantity {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// An assigned ISO 3166-1 alpha-2 country code; lower case is accepted and
/// normalised to upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCode(pub String);

leaf_type!(
    CountryCode,
    "CountryCode",
    MetaSchema {
        min_length: Some(2),
        max_length: Some(2),
        pattern: Some("^[A-Za-z]{2}$".to_owned()),
        example: Some(Value::from("US")),
        ..MetaSchema::new_with_format("string", COUNTRY_FORMAT)
    }
);

impl ParseFromJSON for CountryCode {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => celes::Country::from_alpha2(&s)
                .map(|c| Self(c.alpha2.to_owned()))
                .map_err(|_| ParseError::custom("not an ISO 3166-1 alpha-2 code")),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for CountryCode {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0.clone()))
    }
}

/// A Harmonized System code: 6 to 10 digits. A type of its own rather than
/// a `String` with poem-openapi's `pattern` validator, which compiles its
/// regex on every value it checks: once per product of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsCode(pub String);

const HS_CODE_PATTERN: &str = "^[0-9]{6,10}$";

leaf_type!(
    HsCode,
    "HsCode",
    MetaSchema {
        pattern: Some(HS_CODE_PATTERN.to_owned()),
        ..MetaSchema::new("string")
    }
);

impl ParseFromJSON for HsCode {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => match_pattern(HS_CODE_PATTERN, &s)
                .map(|()| Self(s))
                .map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for HsCode {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0.clone()))
    }
}

/// Free-form source metadata: a JSON object of at most 64 KiB (compact
/// UTF-8), stored as given.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata(pub serde_json::Map<String, Value>);

leaf_type!(
    Metadata,
    "Metadata",
    MetaSchema {
        additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
        ..MetaSchema::new("object")
    }
);

impl ParseFromJSON for Metadata {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Object(map)) => Ok(Self(map)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for Metadata {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Object(self.0.clone()))
    }
}

/// The `Idempotency-Key` header, for the spec only: its schema states the
/// rule (1 to 255 visible ASCII characters). The sync body extractor takes
/// the raw header (`SyncBody::take_idempotency_header`) so that
/// `idempotency::IdempotencyKey::parse` reports a bad key together with the
/// body's issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKeyHeader(pub String);

leaf_type!(
    IdempotencyKeyHeader,
    "IdempotencyKeyHeader",
    MetaSchema {
        min_length: Some(1),
        max_length: Some(crate::domain::idempotency::KEY_MAX_LEN),
        pattern: Some(crate::domain::idempotency::KEY_PATTERN.to_owned()),
        ..MetaSchema::new("string")
    }
);

impl ParseFromParameter for IdempotencyKeyHeader {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.to_owned()))
    }
}
