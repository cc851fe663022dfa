//! Exact USD arithmetic. Amounts are `rust_decimal::Decimal` read from the
//! JSON literal (never through f64); unit values are stored as i64
//! micro-dollars, totals as decimal text because Σ quantity × unit can
//! exceed what an i64 of micro-dollars holds.

use rust_decimal::Decimal;

/// The exact value of a JSON number, read from its literal text
/// (`serde_json/arbitrary_precision` keeps it): `1.5e2` is 150, `0.1` is 0.1.
/// `None` beyond Decimal's 28 significant digits.
pub fn exact_decimal(n: &serde_json::Number) -> Option<Decimal> {
    let text = n.as_str();
    if text.contains(['e', 'E']) {
        Decimal::from_scientific(text).ok()
    } else {
        Decimal::from_str_exact(text).ok()
    }
}

/// Decimal places a unit value may carry.
pub const USD_SCALE: u32 = 6;

/// A unit value as micro-dollars. `None` when it has more than six decimal
/// places or does not fit (callers validate first, so that is a bug).
pub fn to_micros(amount: Decimal) -> Option<i64> {
    let scaled = amount.checked_mul(Decimal::from(1_000_000))?;
    if !scaled.fract().is_zero() {
        return None;
    }
    i64::try_from(scaled).ok()
}

pub fn from_micros(micros: i64) -> Decimal {
    Decimal::new(micros, USD_SCALE).normalize()
}

/// Σ quantity × unit value, exact. `None` only on overflow of Decimal's
/// 96-bit mantissa, which validated input (≤ 1,000 lines of ≤ 1e9 × ≤ 1e9
/// with 6 decimals) cannot reach.
pub fn total<I: IntoIterator<Item = (i64, i64)>>(lines: I) -> Option<Decimal> {
    let mut sum = Decimal::ZERO;
    for (quantity, unit_micros) in lines {
        let line = Decimal::from(quantity).checked_mul(Decimal::new(unit_micros, USD_SCALE))?;
        sum = sum.checked_add(line)?;
    }
    Some(sum.normalize())
}

/// Serialises an amount as its exact JSON number, normalised (`110.50` as
/// `110.5`): the form the API documents for amounts.
pub fn serialize_usd<S: serde::Serializer>(d: &Decimal, serializer: S) -> Result<S::Ok, S::Error> {
    serialize_number_text(&d.normalize().to_string(), serializer)
}

/// [`serialize_usd`] of an amount held in micro-dollars, written from the
/// integer's digits rather than through a `Decimal` and its `Display`: a
/// page of 200 orders writes 600 unit values.
pub fn serialize_micros<S: serde::Serializer>(
    micros: &i64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serialize_number_text(&micros_text(*micros), serializer)
}

/// Decimal text written as that JSON number, digit for digit
/// (`serde_json/arbitrary_precision`).
fn serialize_number_text<S: serde::Serializer>(
    text: &str,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    let number: serde_json::Number = text.parse().map_err(serde::ser::Error::custom)?;
    number.serialize(serializer)
}

/// `micros` as dollars in decimal text, normalised as [`serialize_usd`]
/// writes them: 10,500,000 is `10.5`, 990,000 is `0.99`, 3,000,000 is `3`.
fn micros_text(micros: i64) -> String {
    const PLACES: usize = USD_SCALE as usize;
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros.unsigned_abs());
    let whole_len = digits.len().saturating_sub(PLACES);
    let (whole, fraction) = digits.split_at(whole_len);
    let fraction = fraction.trim_end_matches('0');
    let mut text = String::with_capacity(digits.len() + 3);
    if micros < 0 {
        text.push('-');
    }
    text.push_str(if whole.is_empty() { "0" } else { whole });
    if !fraction.is_empty() {
        text.push('.');
        // Leading zeros of a fraction with fewer digits than places
        // (990,000 micros is `0.99`, 5 is `0.000005`).
        let written = digits.len() - whole_len;
        text.extend(std::iter::repeat_n('0', PLACES - written));
        text.push_str(fraction);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn micros_are_written_as_their_normalised_decimal() {
        for micros in [
            0,
            1,
            5,
            10,
            990_000,
            1_000_000,
            3_000_000,
            10_500_000,
            123_456_789,
            100_000_000_000,
            1_000_000_000_000_001,
            i64::MAX,
            -1,
            -10_500_000,
            i64::MIN,
        ] {
            assert_eq!(
                micros_text(micros),
                from_micros(micros).to_string(),
                "{micros} micros"
            );
        }
    }

    fn micros(s: &str) -> i64 {
        to_micros(Decimal::from_str(s).unwrap()).unwrap()
    }

    #[test]
    fn totals_are_exact_decimals() {
        let t = total([(3, micros("19.99")), (1, micros("0.1")), (1, micros("0.2"))]).unwrap();
        assert_eq!(t.to_string(), "60.27");
        assert_eq!(
            total([(1, micros("0.1")), (1, micros("0.2"))])
                .unwrap()
                .to_string(),
            "0.3"
        );
        assert_eq!(
            total([(2, micros("110")), (1, micros("35"))])
                .unwrap()
                .to_string(),
            "255"
        );
    }

    #[test]
    fn the_largest_valid_order_does_not_overflow() {
        let max = micros("1000000000");
        let t = total(std::iter::repeat_n((1_000_000_000, max), 1000)).unwrap();
        assert_eq!(t.to_string(), "1000000000000000000000");
    }

    #[test]
    fn micros_reject_a_seventh_decimal() {
        assert_eq!(to_micros(Decimal::from_str("0.1234567").unwrap()), None);
        assert_eq!(micros("0.1000000"), 100_000);
        assert_eq!(from_micros(100_000).to_string(), "0.1");
        assert_eq!(from_micros(110_000_000).to_string(), "110");
    }
}
