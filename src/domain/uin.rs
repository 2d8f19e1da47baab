//! A customer's account id, as it appears in the route `/customers/{uin}/credit`.

use std::fmt;

/// A Tencent Cloud account id: 1..=u64::MAX written in canonical decimal (no sign, no leading
/// zeros, digits only), so one customer has exactly one spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientUin(u64);

impl ClientUin {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a decimal number made of digits only");
        }
        if raw.starts_with('0') {
            return Err("must be at least 1 and have no leading zeros");
        }
        raw.parse()
            .map(Self)
            .map_err(|_| "must be at most 18446744073709551615")
    }

    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClientUin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_decimals_only() {
        assert_eq!(
            ClientUin::parse("800000232018").unwrap().get(),
            800_000_232_018
        );
        assert_eq!(
            ClientUin::parse("18446744073709551615").unwrap().get(),
            u64::MAX
        );
        for bad in [
            "",
            "0",
            "007",
            "-1",
            "+1",
            "1.0",
            "1e3",
            " 1",
            "١٢",
            "18446744073709551616",
            "abc",
        ] {
            assert!(ClientUin::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn every_u64_from_one_round_trips(n in 1u64..) {
            prop_assert_eq!(ClientUin::parse(&n.to_string()).unwrap().get(), n);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = ClientUin::parse(&s);
        }
    }
}
