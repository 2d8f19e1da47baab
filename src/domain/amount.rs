//! A credit increment, parsed exactly from the JSON number the caller wrote.
//!
//! Binary floats cannot tell `100.005` from `100.00499999`, so the amount is parsed from the raw
//! JSON text into whole cents; it becomes a float only when the upstream body is written, where
//! the bounded magnitude keeps `cents / 100` exactly representable in its shortest form.

use std::fmt;

/// A non-zero amount with at most two decimal places; negative takes credit back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CreditAmount {
    cents: i64,
}

/// Largest magnitude in cents any configuration may allow: 10^13 currency units, far beyond any
/// credit line, and small enough that every cent value is an exact `f64` in shortest form.
pub const MAX_CENTS_LIMIT: i64 = 1_000_000_000_000_000;

/// Why an amount was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountError {
    NotANumber,
    Zero,
    TooPrecise,
    TooLarge { max: String },
}

impl fmt::Display for AmountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotANumber => f.write_str("must be a JSON number, such as 100 or -12.5"),
            Self::Zero => f.write_str("must not be zero"),
            Self::TooPrecise => f.write_str("must have at most 2 decimal places"),
            Self::TooLarge { max } => write!(f, "must be between -{max} and {max}"),
        }
    }
}

impl CreditAmount {
    /// Parses the raw text of a JSON value (as captured by `serde_json::value::RawValue`).
    /// `max_cents` bounds the magnitude.
    pub fn parse_json(raw: &str, max_cents: i64) -> Result<Self, AmountError> {
        let too_large = || AmountError::TooLarge {
            max: format_cents(max_cents),
        };
        let cents = parse_cents(raw.trim()).map_err(|e| match e {
            ParseError::Syntax => AmountError::NotANumber,
            ParseError::Precision => AmountError::TooPrecise,
            ParseError::Overflow => too_large(),
        })?;
        if cents == 0 {
            return Err(AmountError::Zero);
        }
        if cents.unsigned_abs() > max_cents.unsigned_abs() {
            return Err(too_large());
        }
        Ok(Self { cents })
    }

    /// Builds an amount from whole cents (config values, the sandbox ledger, tests).
    pub fn from_cents(cents: i64) -> Option<Self> {
        (cents != 0 && cents.unsigned_abs() <= MAX_CENTS_LIMIT as u64).then_some(Self { cents })
    }

    pub fn cents(self) -> i64 {
        self.cents
    }

    /// The value as Tencent's `AddedCredit` float; exact in shortest decimal form.
    pub fn as_f64(self) -> f64 {
        self.cents as f64 / 100.0
    }
}

impl fmt::Display for CreditAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_cents(self.cents))
    }
}

/// `12345` → `"123.45"`, `-5` → `"-0.05"`, `100` → `"1"`.
pub fn format_cents(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    match abs % 100 {
        0 => format!("{sign}{}", abs / 100),
        frac if frac % 10 == 0 => format!("{sign}{}.{}", abs / 100, frac / 10),
        frac => format!("{sign}{}.{frac:02}", abs / 100),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ParseError {
    Syntax,
    Precision,
    Overflow,
}

/// Parses a JSON number (RFC 8259 grammar, exponent allowed) into exact cents.
fn parse_cents(s: &str) -> Result<i64, ParseError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = bytes.first() == Some(&b'-');
    if negative {
        i += 1;
    }
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = &s[int_start..i];
    if int_digits.is_empty() || (int_digits.len() > 1 && int_digits.starts_with('0')) {
        return Err(ParseError::Syntax);
    }
    let mut frac_digits = "";
    if bytes.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = &s[start..i];
        if frac_digits.is_empty() {
            return Err(ParseError::Syntax);
        }
    }
    let mut exponent: i64 = 0;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        let exp_negative = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(ParseError::Syntax);
        }
        // Exponents beyond a few dozen are out of range either way; saturate instead of overflowing.
        let magnitude: i64 = s[start..i].parse().unwrap_or(i64::MAX / 2).min(1_000_000);
        exponent = if exp_negative { -magnitude } else { magnitude };
    }
    if i != bytes.len() {
        return Err(ParseError::Syntax);
    }
    // value = digits × 10^(exponent − frac_len); cents = value × 100.
    let digits = format!("{int_digits}{frac_digits}");
    let mut scale = exponent - frac_digits.len() as i64 + 2;
    let mut significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(0);
    }
    let trimmed = significant.trim_end_matches('0');
    scale += (significant.len() - trimmed.len()) as i64;
    significant = trimmed;
    if scale < 0 {
        return Err(ParseError::Precision);
    }
    if significant.len() as i64 + scale > 18 {
        return Err(ParseError::Overflow);
    }
    let mut cents: i64 = significant.parse().map_err(|_| ParseError::Overflow)?;
    for _ in 0..scale {
        cents = cents.checked_mul(10).ok_or(ParseError::Overflow)?;
    }
    Ok(if negative { -cents } else { cents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: i64 = 10_000_000; // 100,000.00

    fn cents(raw: &str) -> Result<i64, AmountError> {
        CreditAmount::parse_json(raw, MAX).map(CreditAmount::cents)
    }

    #[test]
    fn exact_decimals() {
        assert_eq!(cents("100"), Ok(10_000));
        assert_eq!(cents("100.5"), Ok(10_050));
        assert_eq!(cents("-0.01"), Ok(-1));
        assert_eq!(cents("0.07"), Ok(7));
        assert_eq!(cents("1.5e2"), Ok(15_000));
        assert_eq!(cents("1E-2"), Ok(1));
        assert_eq!(
            cents("12.300"),
            Ok(1_230),
            "trailing zeros are not decimal places"
        );
        assert_eq!(cents("100000"), Ok(MAX));
        assert_eq!(cents("-100000.00"), Ok(-MAX));
    }

    #[test]
    fn rejections() {
        assert_eq!(cents("0"), Err(AmountError::Zero));
        assert_eq!(cents("-0.00"), Err(AmountError::Zero));
        assert_eq!(cents("0e5"), Err(AmountError::Zero));
        assert_eq!(cents("100.005"), Err(AmountError::TooPrecise));
        assert_eq!(cents("1e-3"), Err(AmountError::TooPrecise));
        assert_eq!(cents("0.001"), Err(AmountError::TooPrecise));
        let too_large = Err(AmountError::TooLarge {
            max: "100000".into(),
        });
        assert_eq!(cents("100000.01"), too_large);
        assert_eq!(cents("1e308"), too_large);
        assert_eq!(cents("1e99999999999999999999"), too_large);
        assert_eq!(cents("-99999999999999999999999"), too_large);
        for bad in [
            "\"100\"", "null", "true", "[1]", "{}", "01", "1.", ".5", "+1", "1e", "NaN",
            "Infinity", "--1", "0x10", "",
        ] {
            assert_eq!(cents(bad), Err(AmountError::NotANumber), "{bad}");
        }
    }

    #[test]
    fn upstream_float_is_exact_in_shortest_form() {
        let a = CreditAmount::parse_json("0.07", MAX).unwrap();
        assert_eq!(serde_json::to_string(&a.as_f64()).unwrap(), "0.07");
        let b = CreditAmount::parse_json("-99999.99", MAX).unwrap();
        assert_eq!(serde_json::to_string(&b.as_f64()).unwrap(), "-99999.99");
    }

    #[test]
    fn display() {
        assert_eq!(format_cents(12_345), "123.45");
        assert_eq!(format_cents(-5), "-0.05");
        assert_eq!(format_cents(10_000), "100");
        assert_eq!(format_cents(150), "1.5");
    }

    proptest! {
        /// Any cent value in range written as a decimal parses back to itself, and its f64 prints
        /// back as the same decimal.
        #[test]
        fn round_trip(c in -MAX_CENTS_LIMIT..=MAX_CENTS_LIMIT) {
            prop_assume!(c != 0);
            let text = format_cents(c);
            let parsed = CreditAmount::parse_json(&text, MAX_CENTS_LIMIT).unwrap();
            prop_assert_eq!(parsed.cents(), c);
            let f = serde_json::to_string(&parsed.as_f64()).unwrap();
            let back: f64 = f.parse().unwrap();
            prop_assert_eq!((back * 100.0).round() as i64, c);
            prop_assert_eq!(CreditAmount::parse_json(&f, MAX_CENTS_LIMIT).unwrap().cents(), c);
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = CreditAmount::parse_json(&s, MAX);
        }

        #[test]
        fn agrees_with_float_parsing_when_accepted(s in "-?[0-9]{1,6}(\\.[0-9]{1,3})?([eE][-+]?[0-9])?") {
            if let Ok(a) = CreditAmount::parse_json(&s, MAX) {
                let f: f64 = s.parse().unwrap();
                prop_assert!((f * 100.0 - a.cents() as f64).abs() < 1e-6);
            }
        }
    }
}
