//! The marker a keyed allocation carries at the end of its Tencent `Remark`, so that an
//! allocation whose answer was lost can be recognised in the customer's allocation history.
//!
//! `[pgw:` + 32 hex digits + `]`: the first 128 bits of HMAC-SHA256 under the gateway's marker
//! secret over the scoped idempotency key, the customer and the amount. Why this cannot be faked:
//! - a caller cannot write one: remarks containing `[pgw:` are refused (422) at the edge, and
//!   without the secret nobody can compute the marker of another caller's key;
//! - a copied marker does not help: a match needs the marker to be the remark's *last* word (where
//!   the gateway puts it) *and* the entry's amount to equal the allocation's, and the MAC binds
//!   the marker to that customer and amount. A copied marker with another amount is an alarm,
//!   never an "applied".
//!
//! The secret is `credit.marker_secret` when set; otherwise the Redis backend creates one random
//! secret for the whole fleet (`PREFIX credit-marker-secret`, set only if absent), and the memory
//! backend one per process (its records do not outlive the process either).

use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// How every marker starts; a caller's remark containing it (any case) is refused.
pub const PREFIX: &str = "[pgw:";
/// Characters in a marker: `[pgw:` + 32 hex digits + `]`.
pub const LEN: usize = PREFIX.len() + 32 + 1;

/// The HMAC key markers are made with. Never printed.
#[derive(Clone)]
pub struct MarkerKey(SecretSlice<u8>);

impl std::fmt::Debug for MarkerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MarkerKey([REDACTED])")
    }
}

impl MarkerKey {
    pub fn new(bytes: &[u8]) -> Self {
        Self(SecretSlice::from(bytes.to_vec()))
    }

    /// 32 random bytes.
    pub fn random() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self::new(&bytes)
    }

    /// The marker of the allocation of `cents` to `uin` under the scoped idempotency key.
    pub fn marker(&self, scoped_key: &str, uin: u64, cents: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret())
            .expect("HMAC takes keys of any length");
        for part in [
            "pgw-marker-v1".as_bytes(),
            scoped_key.as_bytes(),
            &uin.to_be_bytes(),
            &cents.to_be_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        format!("{PREFIX}{}]", hex::encode(&digest[..16]))
    }
}

/// Whether a caller's remark contains marker syntax (refused: only the gateway writes markers).
pub fn has_marker_syntax(remark: &str) -> bool {
    remark.to_ascii_lowercase().contains(PREFIX)
}

/// `remark` without the gateway's marker at its end (and the space before it), as a person
/// reads it.
pub fn strip(remark: &str) -> &str {
    let Some(at) = remark.rfind(PREFIX) else {
        return remark;
    };
    let marker = &remark[at..];
    let well_formed = marker.len() == PREFIX.len() + 33
        && marker.ends_with(']')
        && marker[PREFIX.len()..marker.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return remark;
    }
    remark[..at].strip_suffix(' ').unwrap_or(&remark[..at])
}

/// Whether `remark` ends with `marker` as its own last word, where the gateway puts it.
pub fn ends_with(remark: &str, marker: &str) -> bool {
    remark == marker
        || remark
            .strip_suffix(marker)
            .is_some_and(|head| head.ends_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_bind_key_customer_and_amount_and_need_the_secret() {
        let key = MarkerKey::new(b"secret one");
        let m = key.marker("idem:credit:key:svc:k1", 1, 100);
        assert_eq!(m.len(), LEN);
        assert!(m.starts_with(PREFIX) && m.ends_with(']'));
        assert_eq!(m, key.marker("idem:credit:key:svc:k1", 1, 100));
        for other in [
            key.marker("idem:credit:key:svc:k2", 1, 100),
            key.marker("idem:credit:key:svc:k1", 2, 100),
            key.marker("idem:credit:key:svc:k1", 1, 101),
            MarkerKey::new(b"secret two").marker("idem:credit:key:svc:k1", 1, 100),
        ] {
            assert_ne!(m, other);
        }
        assert!(!format!("{key:?}").contains("secret"));
    }

    #[test]
    fn a_marker_matches_only_as_the_last_word() {
        let m = "[pgw:0123456789abcdef0123456789abcdef]";
        assert!(ends_with(m, m));
        assert!(ends_with(&format!("Q3 [by svc] {m}"), m));
        assert!(!ends_with(&format!("x{m}"), m), "glued to another word");
        assert!(!ends_with(&format!("{m} after"), m), "not at the end");
        assert!(!ends_with(&format!("{m}]"), m));
        assert!(!ends_with("", m));
    }

    #[test]
    fn marker_syntax_is_found_in_any_case() {
        assert!(has_marker_syntax("pay [pgw:abc]"));
        assert!(has_marker_syntax("[PGW:"));
        assert!(!has_marker_syntax("pgw: fine [pg w:"));
    }

    #[test]
    fn strip_takes_off_the_marker_only() {
        let secret = MarkerKey::new(b"0123456789abcdef0123456789abcdef");
        let marker = secret.marker("key", 800000232018, 100);
        assert_eq!(strip(&format!("Q3 top-up {marker}")), "Q3 top-up");
        assert_eq!(strip(&marker), "");
        assert_eq!(strip("no marker"), "no marker");
        // Not the gateway's (a person typed it, or it is cut): left as it is.
        assert_eq!(strip("see [pgw:abc]"), "see [pgw:abc]");
        assert_eq!(strip(&marker[..20]), &marker[..20]);
    }
}
