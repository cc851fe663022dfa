//! Path-aware validation driven by the OpenAPI schema of the request type.
//!
//! poem-openapi's own JSON parsing stops at the first problem and names no
//! path (poem#195). `ValidatedJson<T>` keeps the body as a `Value`, walks it
//! against `T`'s registered schema collecting every issue with its dotted
//! path, and only then parses `T`. The schema is the one the spec serves,
//! so the documentation and the validator cannot drift apart.

use std::{
    any::TypeId,
    cell::RefCell,
    collections::HashMap,
    str::FromStr,
    sync::{LazyLock, RwLock},
};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::Type,
};
use rust_decimal::Decimal;
use serde_json::Value;

use crate::{
    domain::{money::exact_decimal, sync::MAX_ISSUES},
    error::Issue,
};

/// Format of strings holding an assigned ISO 3166-1 alpha-2 code.
pub const COUNTRY_FORMAT: &str = "iso3166-alpha2";

/// The registry `T` fills, built once per type: the walk resolves `$ref`s in it.
fn registry_of<T: Type + 'static>() -> &'static Registry {
    static CACHE: LazyLock<RwLock<HashMap<TypeId, &'static Registry>>> =
        LazyLock::new(Default::default);
    let id = TypeId::of::<T>();
    if let Some(reg) = CACHE.read().expect("registry cache").get(&id) {
        return reg;
    }
    let mut reg = Registry::new();
    T::register(&mut reg);
    let reg: &'static Registry = Box::leak(Box::new(reg));
    CACHE
        .write()
        .expect("registry cache")
        .entry(id)
        .or_insert(reg)
}

/// Every issue of `value` against `T`'s schema, in document order, up to
/// [`MAX_ISSUES`] (the walk stops there: a hostile body of 100,000 broken
/// orders costs no more than a thousand issues).
pub fn schema_issues<T: Type + 'static>(value: &Value) -> Vec<Issue> {
    let mut walker = Walker {
        registry: registry_of::<T>(),
        path: Vec::new(),
        issues: Vec::new(),
    };
    walker.check(&T::schema_ref(), value);
    walker.issues
}

/// Most digits of a number in free-form JSON (`metadata`), whose magnitude
/// must also be a 64-bit float's, as I-JSON (RFC 7493) asks: PostgreSQL's
/// `jsonb` refuses numbers far beyond these (`1e999999999`, or 20,000
/// decimals) and expands `1e131071` into 131,072 digits.
const FREE_NUMBER_MAX_DIGITS: usize = 1_000;

/// A step of the path to where the walk is: printed only for an issue, so
/// a valid body of 1,000 orders costs no string per field.
#[derive(Clone, Copy)]
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

struct Walker<'v> {
    registry: &'static Registry,
    path: Vec<Step<'v>>,
    issues: Vec<Issue>,
}

impl<'v> Walker<'v> {
    fn push(&mut self, code: &'static str, message: impl Into<String>) {
        if !self.full() {
            let path = self
                .path
                .iter()
                .map(|step| match step {
                    Step::Key(key) => (*key).to_owned(),
                    Step::Index(i) => i.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".");
            self.issues.push(Issue::new(path, code, message));
        }
    }

    fn full(&self) -> bool {
        self.issues.len() >= MAX_ISSUES
    }

    fn resolve<'a>(&self, schema: &'a MetaSchemaRef) -> &'a MetaSchema {
        let registry: &'static Registry = self.registry;
        match schema {
            MetaSchemaRef::Inline(s) => s,
            MetaSchemaRef::Reference(name) => registry
                .schemas
                .get(name)
                .unwrap_or_else(|| panic!("schema {name} is not registered")),
        }
    }

    fn check(&mut self, schema: &MetaSchemaRef, value: &'v Value) {
        if self.full() {
            return;
        }
        let s = self.resolve(schema);
        if !s.all_of.is_empty() {
            // A field's own constraints on a referenced type: `allOf: [$ref, {…}]`,
            // where the second member repeats the constraints of `s` itself.
            for part in &s.all_of {
                self.check(part, value);
            }
            return;
        }
        match s.ty {
            "object" => self.check_object(s, value),
            "array" => self.check_array(s, value),
            "string" => self.check_string(s, value),
            "integer" | "number" => self.check_number(s, value),
            "boolean" if !value.is_boolean() => self.type_mismatch("boolean", value),
            "" => self.check_free(value),
            _ => {}
        }
    }

    /// JSON the schema leaves free (`metadata`), which is stored: no U+0000
    /// in its strings and keys, numbers that every backend can hold.
    fn check_free(&mut self, value: &'v Value) {
        if self.full() {
            return;
        }
        match value {
            Value::String(text) => {
                self.check_nul(text);
            }
            Value::Number(n) => self.check_free_number(n),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    self.path.push(Step::Index(i));
                    self.check_free(item);
                    self.path.pop();
                }
            }
            Value::Object(map) => {
                for (key, child) in map {
                    self.check_key(key);
                    self.path.push(Step::Key(key));
                    self.check_free(child);
                    self.path.pop();
                }
            }
            _ => {}
        }
    }

    /// An object key holding U+0000 is reported at the object's path: the
    /// key itself cannot be named without the character.
    fn check_key(&mut self, key: &str) {
        if key.contains('\0') {
            self.push("invalid_string", "Object keys must not contain U+0000");
        }
    }

    fn check_nul(&mut self, text: &str) -> bool {
        let nul = text.contains('\0');
        if nul {
            self.push("invalid_string", "String must not contain U+0000");
        }
        nul
    }

    /// A number in free-form JSON: at most 1,000 digits, within a 64-bit
    /// float's range (zero included).
    fn check_free_number(&mut self, n: &serde_json::Number) {
        let text = n.as_str();
        let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
        let digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
        let nonzero = mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b));
        let value = text.parse::<f64>().unwrap_or(f64::INFINITY);
        if digits > FREE_NUMBER_MAX_DIGITS || value.is_infinite() {
            self.push(
                "too_big",
                "Number must fit a 64-bit float and have at most 1000 digits",
            );
        } else if nonzero && value == 0.0 {
            self.push(
                "too_small",
                "Number is too close to zero for a 64-bit float",
            );
        }
    }

    fn type_mismatch(&mut self, expected: &str, value: &Value) {
        let received = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        self.push(
            "invalid_type",
            format!("Expected {expected}, received {received}"),
        );
    }

    fn check_object(&mut self, s: &MetaSchema, value: &'v Value) {
        let Value::Object(map) = value else {
            return self.type_mismatch("object", value);
        };
        // Members the schema leaves free (`metadata`'s); other unknown
        // fields are ignored, never stored.
        if let Some(schema) = &s.additional_properties {
            for (key, child) in map {
                if s.properties.iter().any(|(name, _)| name == key) {
                    continue;
                }
                self.check_key(key);
                self.path.push(Step::Key(key));
                self.check(schema, child);
                self.path.pop();
            }
        }
        for (name, prop) in &s.properties {
            let required = s.required.contains(name);
            self.path.push(Step::Key(name));
            match map.get(*name) {
                None if required => self.push("invalid_type", "Required"),
                None => {}
                Some(Value::Null) if !required => {}
                Some(child) => self.check(prop, child),
            }
            self.path.pop();
        }
    }

    fn check_array(&mut self, s: &MetaSchema, value: &'v Value) {
        let Value::Array(items) = value else {
            return self.type_mismatch("array", value);
        };
        if let Some(min) = s.min_items.filter(|&m| items.len() < m) {
            self.push(
                "too_small",
                format!("Array must contain at least {min} element(s)"),
            );
        }
        if let Some(max) = s.max_items.filter(|&m| items.len() > m) {
            self.push(
                "too_big",
                format!("Array must contain at most {max} element(s)"),
            );
        }
        if let Some(item_schema) = &s.items {
            for (i, item) in items.iter().enumerate() {
                self.path.push(Step::Index(i));
                self.check(item_schema, item);
                self.path.pop();
            }
        }
    }

    fn check_string(&mut self, s: &MetaSchema, value: &Value) {
        let Value::String(text) = value else {
            return self.type_mismatch("string", value);
        };
        if self.check_nul(text) {
            return;
        }
        let len = text.chars().count();
        if let Some(min) = s.min_length.filter(|&m| len < m) {
            self.push(
                "too_small",
                format!("String must contain at least {min} character(s)"),
            );
        }
        if let Some(max) = s.max_length.filter(|&m| len > m) {
            self.push(
                "too_big",
                format!("String must contain at most {max} character(s)"),
            );
        }
        if let Some(pattern) = &s.pattern
            && let Err(message) = match_pattern(pattern, text)
        {
            self.push("invalid_string", message);
        } else if s.format == Some(COUNTRY_FORMAT) && celes::Country::from_alpha2(text).is_err() {
            self.push(
                "invalid_string",
                "Expected an ISO 3166-1 alpha-2 country code",
            );
        }
    }

    fn check_number(&mut self, s: &MetaSchema, value: &Value) {
        let Value::Number(n) = value else {
            let expected = if s.ty == "integer" {
                "integer"
            } else {
                "number"
            };
            return self.type_mismatch(expected, value);
        };
        let Some(d) = exact_decimal(n) else {
            // Beyond Decimal's 28 significant digits: far out of every range
            // we accept, or finer than any precision we keep.
            let magnitude = n.as_str().parse::<f64>().map_or(f64::INFINITY, f64::abs);
            return if magnitude >= 1.0 {
                self.push("too_big", "Number is too large")
            } else if s.ty == "integer" {
                self.push("invalid_type", "Expected integer, received float")
            } else {
                self.push("not_multiple_of", "Number has too many decimal places")
            };
        };
        if s.ty == "integer" && !d.fract().is_zero() {
            return self.push("invalid_type", "Expected integer, received float");
        }
        if let Some(min) = s.minimum.map(decimal_of)
            && d < min
        {
            self.push(
                "too_small",
                format!("Number must be greater than or equal to {min}"),
            );
        }
        if let Some(max) = s.maximum.map(decimal_of)
            && d > max
        {
            self.push(
                "too_big",
                format!("Number must be less than or equal to {max}"),
            );
        }
        if let Some(step) = s.multiple_of.map(decimal_of)
            && !(d % step).is_zero()
        {
            let places = step.scale();
            self.push(
                "not_multiple_of",
                format!("Number must have at most {places} decimal places"),
            );
        }
    }
}

/// Schema bounds are `f64` in poem-openapi; ours are short decimals, which
/// `Display` prints exactly (`1e-6` as `0.000001`).
///
/// A body checks each bound once per number, so each bound's conversion
/// is kept per thread rather than printed and parsed again.
fn decimal_of(f: f64) -> Decimal {
    thread_local! {
        static BOUNDS: RefCell<HashMap<u64, Decimal>> = RefCell::default();
    }
    BOUNDS.with_borrow_mut(|bounds| {
        *bounds.entry(f.to_bits()).or_insert_with(|| {
            Decimal::from_str(&f.to_string()).expect("schema bound is a plain decimal")
        })
    })
}

/// `Ok` when `text` matches the schema `pattern`, else the issue's message.
/// Leaf types with a pattern check with it too (their regex is compiled
/// once here, not on each check as poem-openapi's validator does).
pub(crate) fn match_pattern(pattern: &str, text: &str) -> Result<(), String> {
    if regex_for(pattern).is_match(text) {
        Ok(())
    } else {
        Err(format!("String must match the pattern {pattern}"))
    }
}

fn regex_for(pattern: &str) -> regex::Regex {
    static CACHE: LazyLock<RwLock<HashMap<String, regex::Regex>>> = LazyLock::new(Default::default);
    if let Some(re) = CACHE.read().expect("regex cache").get(pattern) {
        return re.clone();
    }
    let re = regex::Regex::new(pattern).expect("schema pattern is a valid regex");
    CACHE
        .write()
        .expect("regex cache")
        .insert(pattern.to_owned(), re.clone());
    re
}
