//! JWT bearer tokens (RS256, ES256) checked against a JWKS from a file or an HTTPS URL.
//!
//! Keys are cached by `kid`, and the whole set has a lifetime:
//! - it is fetched again every `auth.jwt.refresh_interval_s`, or sooner when the JWKS answer's
//!   `Cache-Control: max-age` says so, so a key the identity provider removed stops working at the
//!   next refresh, and one it added works at once;
//! - a token signed with an unknown `kid` also triggers a refresh (at most one per
//!   `min_refresh_ms`);
//! - a refresh that fails keeps the last good set, for at most `auth.jwt.max_stale_s` after it
//!   was fetched; past that every token is refused (401): the gateway fails closed rather than
//!   trust keys that may have been revoked meanwhile. Failures and the set's age are in
//!   `/metrics`, and `/readyz` lists the stale set under `degraded` (API keys still work).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;

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
    /// When the current set was fetched, and the `max-age` its answer gave, if any.
    fetched: RwLock<Option<(Instant, Option<Duration>)>>,
    /// Refreshes that failed since the start.
    failures: AtomicU64,
    /// Refreshes that failed since the last one that worked.
    streak: AtomicU64,
}

/// The state of the key set, for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JwksState {
    /// Seconds since the set was fetched (`None`: never).
    pub age_s: Option<f64>,
    pub failures: u64,
    /// Past `auth.jwt.max_stale_s`: every token is refused.
    pub expired: bool,
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
            fetched: RwLock::new(None),
            failures: AtomicU64::new(0),
            streak: AtomicU64::new(0),
        })
    }

    /// How old the key set is, how many refreshes failed, whether it has expired.
    pub fn state(&self) -> JwksState {
        let fetched = *self.fetched.read();
        let age = fetched.map(|(at, _)| at.elapsed());
        JwksState {
            age_s: age.map(|a| a.as_secs_f64()),
            failures: self.failures.load(Ordering::Relaxed),
            expired: age.is_some_and(|a| a > self.settings.max_stale()),
        }
    }

    /// How long until the next scheduled refresh: the interval, or the answer's `max-age` when
    /// shorter (at least `min_refresh_ms` and a second); after failures, 1, 2, 4… seconds up to
    /// that, so a recovered identity provider is noticed soon.
    pub fn next_refresh(&self) -> Duration {
        let interval = self.settings.refresh_interval();
        let floor = self.settings.min_refresh().max(Duration::from_secs(1));
        let max_age = self.fetched.read().and_then(|(_, max_age)| max_age);
        let scheduled = match max_age {
            Some(age) => age.clamp(floor.min(interval), interval),
            None => interval,
        };
        match self.streak.load(Ordering::Relaxed) {
            0 => scheduled,
            streak => scheduled.min(Duration::from_secs(1 << (streak - 1).min(10))),
        }
    }

    /// Refreshes the key set on its schedule, forever.
    pub async fn run_refresher(&self) {
        loop {
            tokio::time::sleep(self.next_refresh()).await;
            self.refresh().await;
        }
    }

    fn key(&self, kid: &str) -> Option<Key> {
        self.keys.read().get(kid).cloned()
    }

    /// The set, and the `max-age` of its answer (URLs only).
    async fn fetch(&self) -> anyhow::Result<(JwkSet, Option<Duration>)> {
        let (body, max_age) = match (&self.settings.jwks_file, &self.settings.jwks_url) {
            (Some(path), _) => (tokio::fs::read(path).await?, None),
            (None, Some(url)) => {
                let response = self.http.get(url).send().await?.error_for_status()?;
                let max_age = response
                    .headers()
                    .get(http::header::CACHE_CONTROL)
                    .and_then(|v| v.to_str().ok())
                    .and_then(max_age);
                (response.bytes().await?.to_vec(), max_age)
            }
            (None, None) => anyhow::bail!("no JWKS source configured"),
        };
        Ok((serde_json::from_slice(&body)?, max_age))
    }

    /// Reloads the JWKS now; on failure the cached keys stay.
    pub async fn refresh(&self) {
        let mut last = self.last_refresh.lock().await;
        self.reload().await;
        *last = Some(Instant::now());
    }

    async fn reload(&self) {
        match self.fetch().await {
            Ok((set, max_age)) => {
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
                if keys.is_empty() {
                    // An answer with no key the gateway can use is not a key set: keep the last.
                    self.failed("the JWKS holds no usable key (RS256 or ES256 with a kid)");
                    return;
                }
                tracing::info!(keys = keys.len(), "JWKS loaded");
                *self.keys.write() = keys;
                *self.fetched.write() = Some((Instant::now(), max_age));
                self.streak.store(0, Ordering::Relaxed);
            }
            Err(e) => self.failed(&e.to_string()),
        }
    }

    fn failed(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.streak.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            error,
            "cannot load the JWKS; keeping the cached keys until they are auth.jwt.max_stale_s old"
        );
    }

    /// Refreshes for an unknown `kid`, unless the last refresh is too recent.
    async fn refresh_for_unknown_kid(&self, kid: &str) {
        let mut last = self.last_refresh.lock().await;
        // Another request may have refreshed while this one waited for the lock.
        if self.key(kid).is_some() {
            return;
        }
        self.reload_if_due(&mut last).await;
    }

    /// Refreshes unless the last refresh is more recent than `min_refresh_ms`.
    async fn refresh_now_if_due(&self) {
        let mut last = self.last_refresh.lock().await;
        self.reload_if_due(&mut last).await;
    }

    async fn reload_if_due(&self, last: &mut Option<Instant>) {
        let min = self.settings.min_refresh();
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
        if self.state().expired {
            // Try again now (at most every `min_refresh_ms`): the identity provider may be back.
            self.refresh_now_if_due().await;
            if self.state().expired {
                return Err(invalid(
                    "the gateway could not refresh the identity provider's keys for too long",
                ));
            }
        }
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

/// `max-age` of a `Cache-Control` value, when present and sane.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|directive| {
        let (name, value) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        value
            .trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
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
    use super::{jwt_caller_id, looks_like_jwt, max_age};
    use std::time::Duration;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(
            max_age("Max-Age=\"5\", must-revalidate"),
            Some(Duration::from_secs(5))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

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
