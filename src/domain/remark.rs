//! The free-text note stored with a credit allocation in Tencent's history.

/// At most 256 characters, no control characters (they would corrupt history views and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark(String);

pub const MAX_CHARS: usize = 256;

impl Remark {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.chars().count() > MAX_CHARS {
            return Err("must be at most 256 characters");
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_and_control_characters() {
        assert!(Remark::parse("Q3 top-up — ok ✓").is_ok());
        assert!(Remark::parse(&"é".repeat(256)).is_ok());
        assert!(Remark::parse(&"é".repeat(257)).is_err());
        for bad in [
            "a\nb",
            "tab\there",
            "nul\0",
            "esc\u{1b}[31m",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            assert!(Remark::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
