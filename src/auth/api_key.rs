//! API keys: random secrets of which only the SHA-256 is configured, compared in constant time.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Caller, Scope};
use crate::config::ApiKeySettings;

/// Prefix of generated keys, so a leaked one is recognisable in secret scanners.
pub const PREFIX: &str = "pgw_";

/// One configured key.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    name: String,
    hash: [u8; 32],
    scopes: Vec<Scope>,
}

impl KeyEntry {
    /// From validated settings.
    pub fn from_settings(settings: &ApiKeySettings) -> Self {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&settings.sha256, &mut hash).expect("validated sha256");
        Self {
            name: settings.name.clone(),
            hash,
            scopes: settings.scopes.clone(),
        }
    }
}

/// Lowercase hex SHA-256 of a key, as configured.
pub fn hash_hex(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The caller whose key this is. Compares against every entry without stopping early, so the
/// time taken says nothing about which entry (if any) matched.
pub fn find(entries: &[KeyEntry], presented: &str) -> Option<Caller> {
    let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let mut found = None;
    for entry in entries {
        if bool::from(entry.hash.ct_eq(&hash)) {
            found = Some(entry);
        }
    }
    found.map(|e| Caller {
        name: e.name.clone(),
        id: format!("key:{}", e.name),
        scopes: e.scopes.clone(),
        method: "api_key",
    })
}

/// A new random key: the prefix and 32 random bytes, base64url.
pub fn generate() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_match_their_hash() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert!(a.starts_with(PREFIX) && a.len() == PREFIX.len() + 43);
        let entry = KeyEntry::from_settings(&ApiKeySettings {
            name: "svc".into(),
            sha256: hash_hex(&a),
            scopes: vec![Scope::SendInvitations],
        });
        assert_eq!(find(std::slice::from_ref(&entry), &a).unwrap().name, "svc");
        assert!(find(&[entry], &b).is_none());
    }
}
