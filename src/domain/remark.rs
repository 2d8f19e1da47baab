//! The free-text note stored with a credit allocation in Tencent's history.

use unicode_normalization::UnicodeNormalization;

/// At most 256 characters once NFC-normalised; no control characters (they would corrupt history
/// views and logs) and no invisible formatting characters that can make text read other than it
/// is ([`DISGUISING`]). Stored NFC-normalised, so the same words typed two ways are one remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark(String);

pub const MAX_CHARS: usize = 256;

/// Characters refused because they reorder, hide or fake text in Tencent's console and in logs:
/// bidirectional embeddings, overrides and isolates (the "Trojan Source" characters), implicit
/// direction marks, line and paragraph separators, zero-width spaces and joiners of words, the
/// byte-order mark, invisible operators, deprecated format controls, interlinear annotations,
/// invisible fillers, and the language tag. The joiners real scripts and emoji need (U+200C ZWNJ,
/// U+200D ZWJ), variation selectors and emoji tag sequences stay allowed.
pub const DISGUISING: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{180E}', '\u{180E}'),
    ('\u{200B}', '\u{200B}'),
    ('\u{200E}', '\u{200F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF9}', '\u{FFFB}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
];

fn disguising(c: char) -> bool {
    DISGUISING.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

impl Remark {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        // Bounded before normalising: NFC never makes a string longer than 3x in characters, and
        // a remark far beyond the limit is refused without the work.
        if raw.chars().count() > 4 * MAX_CHARS {
            return Err("must be at most 256 characters");
        }
        let normal: String = raw.nfc().collect();
        if normal.chars().count() > MAX_CHARS {
            return Err("must be at most 256 characters");
        }
        if normal.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        if normal.chars().any(disguising) {
            return Err(
                "must not contain invisible formatting characters (bidirectional controls, line separators, zero-width spaces and the like)",
            );
        }
        Ok(Self(normal))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    #[test]
    fn text_that_reads_other_than_it_is_is_refused() {
        for bad in [
            "refund \u{202E}001 tnuocca\u{202C}",
            "\u{2066}isolate\u{2069}",
            "line\u{2028}separator",
            "para\u{2029}graph",
            "zero\u{200B}width",
            "bom\u{FEFF}",
            "mark\u{200F}",
            "soft\u{00AD}hyphen",
            "word\u{2060}joiner",
            "filler\u{3164}",
            "tag\u{E0001}",
        ] {
            assert!(Remark::parse(bad).is_err(), "{bad:?} accepted");
        }
        // What real scripts and emoji need stays.
        for good in [
            "नमस्ते",
            "می\u{200C}خواهم",
            "👩\u{200D}💻 team",
            "❤\u{FE0F}",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
            "漢字かなカナ",
        ] {
            assert!(Remark::parse(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn normalised_before_it_is_measured_and_stored() {
        // "é" as e + combining acute: 512 code points, 256 characters once composed.
        let decomposed = "e\u{301}".repeat(256);
        let remark = Remark::parse(&decomposed).unwrap();
        assert_eq!(remark.as_str(), "é".repeat(256));
        assert_eq!(
            Remark::parse("Cafe\u{301}").unwrap(),
            Remark::parse("Café").unwrap()
        );
    }

    proptest! {
        /// Whatever is accepted is NFC, within the limit, and free of what the rules refuse.
        #[test]
        fn accepted_remarks_keep_every_rule(raw in "\\PC{0,300}|[\\u{200B}-\\u{206F}a-z ]{0,40}") {
            if let Ok(remark) = Remark::parse(&raw) {
                let s = remark.as_str();
                prop_assert!(s.chars().count() <= MAX_CHARS);
                prop_assert!(!s.chars().any(|c| c.is_control() || disguising(c)));
                prop_assert_eq!(s.nfc().collect::<String>(), s);
            }
        }
    }
}
