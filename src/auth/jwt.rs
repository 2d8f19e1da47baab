//! JWT bearer tokens (RS256, ES256) checked against a JWKS from a file or an HTTPS URL.
//!
//! Keys are cached by `kid`. A token signed with an unknown `kid` triggers a refresh (at most one
//! per `min_refresh_ms`), so a key the identity provider adds is accepted without a restart.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{AuthError, Caller, Scope};
use crate::config::JwtSettings;

/// Three base64url segments: what a compact JWS looks like (API keys never contain dots).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

#[derive(Clone)]
struct Key {
    algorithm: Algorithm,
    key: DecodingKey,
}

pub struct JwtVerifier {
    settings: JwtSettings,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, Key>>,
    /// Serialises refreshes and remembers when the last one finished.
    last_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl JwtVerifier {
    pub fn new(settings: &JwtSettings) -> anyhow::Result<Self> {
        Ok(Self {
            settings: settings.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()?,
            keys: RwLock::new(HashMap::new()),
            last_refresh: tokio::sync::Mutex::new(None),
        })
    }

    fn key(&self, kid: &str) -> Option<Key> {
        self.keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let body = match (&self.settings.jwks_file, &self.settings.jwks_url) {
            (Some(path), _) => tokio::fs::read(path).await?,
            (None, Some(url)) => self
                .http
                .get(url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?
                .to_vec(),
            (None, None) => anyhow::bail!("no JWKS source configured"),
        };
        Ok(serde_json::from_slice(&body)?)
    }

    /// Reloads the JWKS now; on failure the cached keys stay.
    pub async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        self.reload().await;
        *last = Some(Instant::now());
    }

    async fn reload(&self) {
        match self.fetch().await {
            Ok(set) => {
                let keys: HashMap<String, Key> = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        let kid = jwk.common.key_id.clone()?;
                        let algorithm = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                            (Some(KeyAlgorithm::RS256), _) => Algorithm::RS256,
                            (Some(KeyAlgorithm::ES256), _) => Algorithm::ES256,
                            (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                            (None, AlgorithmParameters::EllipticCurve(p))
                                if p.curve == EllipticCurve::P256 =>
                            {
                                Algorithm::ES256
                            }
                            _ => return None,
                        };
                        let key = DecodingKey::from_jwk(jwk).ok()?;
                        Some((kid, Key { algorithm, key }))
                    })
                    .collect();
                tracing::info!(keys = keys.len(), "JWKS loaded");
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = keys;
            }
            Err(e) => tracing::warn!(error = %e, "cannot load the JWKS; keeping the cached keys"),
        }
    }

    /// Refreshes for an unknown `kid`, unless the last refresh is too recent.
    async fn refresh_for_unknown_kid(&self, kid: &str) {
        let mut last = self.last_refresh.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if self.key(kid).is_some() {
            return;
        }
        let min = Duration::from_millis(self.settings.min_refresh_ms);
        if last.is_some_and(|at| at.elapsed() < min) {
            return;
        }
        self.reload().await;
        *last = Some(Instant::now());
    }

    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let invalid = |why: &str| AuthError::InvalidToken(why.to_owned());
        let header = decode_header(token).map_err(|_| invalid("not a well-formed JWT"))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid("only RS256 and ES256 tokens are accepted"));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid("the token names no key (kid)"))?;
        let key = match self.key(&kid) {
            Some(key) => key,
            None => {
                self.refresh_for_unknown_kid(&kid).await;
                self.key(&kid)
                    .ok_or_else(|| invalid("signed by a key the gateway does not trust"))?
            }
        };
        if key.algorithm != header.alg {
            return Err(invalid("the token's algorithm does not match its key"));
        }
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.settings.leeway_s;
        let claims = decode::<Map<String, Value>>(token, &key.key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind::*;
                invalid(match e.kind() {
                    ExpiredSignature => "the token has expired",
                    ImmatureSignature => "the token is not valid yet",
                    InvalidIssuer => "the token is from another issuer",
                    InvalidAudience => "the token is for another audience",
                    InvalidSignature => "the signature does not verify",
                    MissingRequiredClaim(_) => "the token lacks exp, iss or aud",
                    _ => "the token does not verify",
                })
            })?
            .claims;
        let name = claims
            .get(&self.settings.caller_claim)
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("the token does not name the caller"))?;
        let scopes = match claims.get(&self.settings.scopes_claim) {
            Some(Value::String(s)) => s.split_whitespace().filter_map(Scope::parse).collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Scope::parse)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Caller {
            name: name.chars().take(128).collect(),
            id: jwt_caller_id(&self.settings.issuer, name),
            scopes,
            method: "jwt",
        })
    }
}

/// `jwt:ISSUER#SUBJECT`, or `jwt:sha256:HEX` of it when longer than 200 characters: never cut,
/// so two long subjects cannot collide.
pub fn jwt_caller_id(issuer: &str, subject: &str) -> String {
    let id = format!("jwt:{issuer}#{subject}");
    if id.chars().count() <= 200 {
        id
    } else {
        use sha2::Digest;
        format!(
            "jwt:sha256:{}",
            hex::encode(sha2::Sha256::digest(id.as_bytes()))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{jwt_caller_id, looks_like_jwt};

    #[test]
    fn jwt_ids_are_namespaced_and_never_cut() {
        assert_eq!(
            jwt_caller_id("https://idp", "alice"),
            "jwt:https://idp#alice"
        );
        let a = format!("{}a", "x".repeat(300));
        let b = format!("{}b", "x".repeat(300));
        assert_ne!(jwt_caller_id("i", &a), jwt_caller_id("i", &b));
        assert!(jwt_caller_id("i", &a).starts_with("jwt:sha256:"));
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("pgw_abcdef"));
        assert!(!looks_like_jwt("a.b"));
    }
}
