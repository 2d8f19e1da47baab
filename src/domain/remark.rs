//! The free-text note stored with a credit allocation in Tencent's history.

use unicode_normalization::UnicodeNormalization;

/// At most 256 characters once NFC-normalised; no control characters (they would corrupt history
/// views and logs) and no invisible formatting characters that can make text read other than it
/// is (`DISGUISING`). Stored NFC-normalised, so the same words typed two ways are one remark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remark(String);

pub const MAX_CHARS: usize = 256;

/// Characters refused because they reorder, hide or fake text in Tencent's console and in logs:
/// bidirectional embeddings, overrides and isolates (the "Trojan Source" characters), implicit
/// direction marks, line and paragraph separators, zero-width spaces and joiners of words, the
/// byte-order mark, invisible operators, deprecated format controls, interlinear annotations,
/// invisible fillers and blanks, the combining grapheme joiner, Khmer and Mongolian invisible
/// vowels and selectors, shorthand and Egyptian format controls, the object replacement
/// character, variation selectors other than the emoji ones (they can carry hidden bytes), private
/// use, and the language tag. The joiners real scripts and emoji need (U+200C ZWNJ, U+200D ZWJ),
/// an emoji presentation selector right after a character, and emoji tag sequences (a flag:
/// U+1F3F4, tag characters, U+E007F) stay allowed; tag characters anywhere else do not (they
/// smuggle invisible ASCII). At most [`MAX_MARKS`] combining marks may follow one character.
pub const DISGUISING: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200B}'),
    ('\u{200E}', '\u{200F}'),
    ('\u{2028}', '\u{202E}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206F}'),
    ('\u{2800}', '\u{2800}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{E000}', '\u{F8FF}'),
    ('\u{FE00}', '\u{FE0D}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF9}', '\u{FFFC}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0001}', '\u{E0001}'),
    ('\u{E0100}', '\u{E01EF}'),
    ('\u{F0000}', '\u{10FFFF}'),
];

/// Combining marks allowed after one character (real scripts stack two or three; more is the
/// "Zalgo" text that spills over neighbouring lines).
pub const MAX_MARKS: usize = 4;

const FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

fn is_tag(c: char) -> bool {
    ('\u{E0020}'..='\u{E007F}').contains(&c)
}

/// Why the character at `i` of `chars` may not stand where it is, if it may not.
fn refused(chars: &[char], i: usize) -> Option<&'static str> {
    let c = chars[i];
    if c.is_control() {
        return Some("must not contain control characters");
    }
    const HIDDEN: &str = "must not contain invisible formatting characters (bidirectional controls, line separators, zero-width spaces, tags, selectors and the like)";
    if DISGUISING.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
        return Some(HIDDEN);
    }
    if is_tag(c) {
        // Only inside a flag's tag sequence: U+1F3F4, tags, U+E007F.
        let start = chars[..i].iter().rposition(|&p| !is_tag(p));
        let in_flag = start.is_some_and(|s| chars[s] == FLAG)
            && chars[i..].iter().find(|&&n| !is_tag(n) || n == CANCEL_TAG) == Some(&CANCEL_TAG);
        return (!in_flag).then_some(HIDDEN);
    }
    if matches!(c, '\u{FE0E}' | '\u{FE0F}') {
        let after_base = i > 0
            && !matches!(chars[i - 1], '\u{FE0E}' | '\u{FE0F}')
            && !unicode_normalization::char::is_combining_mark(chars[i - 1]);
        return (!after_base).then_some(HIDDEN);
    }
    if unicode_normalization::char::is_combining_mark(c) {
        let run = chars[..=i]
            .iter()
            .rev()
            .take_while(|&&m| unicode_normalization::char::is_combining_mark(m))
            .count();
        if run > MAX_MARKS {
            return Some("must not stack more than 4 combining marks on one character");
        }
    }
    None
}

impl Remark {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        // Bounded before normalising: a character decomposes into at most four, so a remark
        // far beyond the limit is refused without the work.
        if raw.chars().count() > 4 * MAX_CHARS {
            return Err("must be at most 256 characters");
        }
        let normal: Vec<char> = raw.nfc().collect();
        if normal.len() > MAX_CHARS {
            return Err("must be at most 256 characters");
        }
        if let Some(why) = (0..normal.len()).find_map(|i| refused(&normal, i)) {
            return Err(why);
        }
        Ok(Self(normal.into_iter().collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` made safe for a remark: NFC, every character [`Remark::parse`] would refuse replaced
/// by `?` (for text the gateway adds itself, such as a caller's name from a token).
pub fn sanitize(text: &str) -> String {
    let normal: Vec<char> = text.nfc().collect();
    (0..normal.len())
        .map(|i| {
            if refused(&normal, i).is_some() {
                '?'
            } else {
                normal[i]
            }
        })
        .collect()
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
            "smuggled\u{E0041}\u{E0042}",
            "vs\u{FE01}",
            "a\u{FE0F}\u{FE0F}",
            "ideographic\u{E0100}",
            "private\u{E123}",
            "braille\u{2800}blank",
            "object\u{FFFC}",
            "cgj\u{34F}",
            "zalgo z\u{300}\u{301}\u{302}\u{303}\u{304}",
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

    #[test]
    fn text_the_gateway_adds_is_sanitised() {
        assert_eq!(sanitize("alice\u{202E}cipa"), "alice?cipa");
        assert_eq!(sanitize("Cafe\u{301}"), "Café");
        assert!(Remark::parse(&sanitize("x\u{E0041}\u{2028}\u{FE01}")).is_ok());
    }

    proptest! {
        /// Whatever is accepted is NFC, within the limit, and free of what the rules refuse;
        /// whatever is sanitised is accepted (when short enough). Any code point at all, with the
        /// ranges that matter drawn often.
        #[test]
        fn accepted_remarks_keep_every_rule(
            raw in proptest::collection::vec(
                prop_oneof![
                    any::<char>(),
                    proptest::char::range('\u{200B}', '\u{206F}'),
                    proptest::char::range('\u{0300}', '\u{036F}'),
                    proptest::char::range('\u{E0000}', '\u{E01EF}'),
                    proptest::char::range('\u{FE00}', '\u{FE0F}'),
                    Just('\u{1F3F4}'),
                    proptest::char::range('a', 'z'),
                ],
                0..80,
            )
        ) {
            let raw: String = raw.into_iter().collect();
            if let Ok(remark) = Remark::parse(&raw) {
                let s: Vec<char> = remark.as_str().chars().collect();
                prop_assert!(s.len() <= MAX_CHARS);
                prop_assert!((0..s.len()).all(|i| refused(&s, i).is_none()));
                prop_assert_eq!(remark.as_str().nfc().collect::<String>(), remark.as_str());
            }
            prop_assert!(Remark::parse(&sanitize(&raw)).is_ok());
        }
    }
}
