//! Who is calling, and may they do this.
//!
//! Services present an API key, signed-in users a JWT, both as `Authorization: Bearer …`.
//! [`Authenticator::authenticate`] turns the header into a [`Caller`] with scopes; the routes'
//! `Authorized` extractor (`routes::extract`) runs it before the body is read and checks the
//! route's scope and the caller's own rate. Nothing here knows axum's state or the routes.

pub mod api_key;
pub mod jwt;

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::AuthSettings;
pub use crate::domain::Scope;
use crate::problem::{ApiError, ProblemType};

/// `realm` of every `WWW-Authenticate` challenge.
const REALM: &str = "partner-gateway";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For display (logs, the ` [by …]` remark tag): the API key's configured name, or the JWT's
    /// caller claim (cut to 128 characters).
    pub name: String,
    /// The identity, namespaced by kind of credential and never cut: `key:NAME`,
    /// `jwt:ISSUER#SUBJECT` (`jwt:sha256:HEX` of that when longer than 200 characters), or
    /// `none:anonymous`. Idempotency keys, per-caller rates and the audit go by it.
    pub id: String,
    pub scopes: Vec<Scope>,
    /// `api_key`, `jwt` or `none` (authentication disabled).
    pub method: &'static str,
}

impl Caller {
    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why a request is not authenticated (all 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credentials: send Authorization: Bearer <API key or token>")]
    Missing,
    #[error("the Authorization header is not `Bearer <credential>`")]
    Malformed,
    #[error("the API key is not known")]
    UnknownKey,
    #[error("the token is not accepted: {0}")]
    InvalidToken(String),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let challenge = match &error {
            AuthError::Missing => format!("Bearer realm=\"{REALM}\""),
            other => format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                other.to_string().replace('"', "'")
            ),
        };
        ApiError::new(ProblemType::Unauthenticated, error.to_string()).www_authenticate(challenge)
    }
}

/// 403 for a caller without `scope`.
pub fn insufficient_scope(scope: Scope) -> ApiError {
    ApiError::new(
        ProblemType::InsufficientScope,
        format!("this route needs the scope `{}`", scope.as_str()),
    )
    .www_authenticate(format!(
        "Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{}\"",
        scope.as_str()
    ))
}

/// Checks credentials and per-caller rates.
pub struct Authenticator {
    disabled: bool,
    keys: Vec<api_key::KeyEntry>,
    jwt: Option<jwt::JwtVerifier>,
    per_caller: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("disabled", &self.disabled)
            .field("api_keys", &self.keys.len())
            .field("jwt", &self.jwt.is_some())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Fails when authentication is on but no caller could ever pass it.
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        if settings.disabled {
            tracing::warn!(
                "authentication is DISABLED (auth.disabled = true): anyone who reaches the port can send invitations and allocate credit"
            );
        } else if settings.api_keys.is_empty() && settings.jwt.is_none() {
            anyhow::bail!(
                "authentication is on but no caller is configured: add [[auth.api_keys]] (see `partner-gateway hash-key`) or [auth.jwt], or set auth.disabled = true"
            );
        }
        let per_caller = NonZeroU32::new(settings.caller_requests_per_minute).map(|per_minute| {
            let period = Duration::from_secs(60) / per_minute.get();
            let burst = NonZeroU32::new(settings.caller_burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(
                Quota::with_period(period)
                    .expect("non-zero period")
                    .allow_burst(burst),
            )
        });
        Ok(Self {
            disabled: settings.disabled,
            keys: settings
                .api_keys
                .iter()
                .map(api_key::KeyEntry::from_settings)
                .collect(),
            jwt: settings
                .jwt
                .as_ref()
                .map(jwt::JwtVerifier::new)
                .transpose()?,
            per_caller,
        })
    }

    /// With JWTs: refreshes the JWKS on its schedule, forever.
    pub async fn run_jwks_refresher(self: std::sync::Arc<Self>) {
        if let Some(jwt) = &self.jwt {
            jwt.run_refresher().await;
        }
    }

    /// With JWTs: the key set's age and refresh failures.
    pub fn jwks_state(&self) -> Option<jwt::JwksState> {
        self.jwt.as_ref().map(jwt::JwtVerifier::state)
    }

    /// With JWTs whose last refreshes failed, what `/readyz` lists under `degraded`.
    pub fn jwks_note(&self) -> Option<String> {
        let jwt = self.jwt.as_ref()?;
        let state = jwt.state();
        match state.age_s {
            None => Some("the JWKS could not be fetched yet: tokens are refused".into()),
            Some(age) if state.expired => Some(format!(
                "the JWKS could not be refreshed for {age:.0} s (over auth.jwt.max_stale_s): tokens are refused, API keys work"
            )),
            Some(age) if age > jwt.next_refresh().as_secs_f64() + 5.0 => Some(format!(
                "the JWKS could not be refreshed for {age:.0} s: the last good keys are used until auth.jwt.max_stale_s"
            )),
            Some(_) => None,
        }
    }

    /// Loads the JWKS ahead of the first token (a failure is logged; tokens retry it).
    pub async fn warm_up(&self) {
        if let Some(jwt) = &self.jwt {
            jwt.refresh().await;
        }
    }

    /// Who sent this `Authorization` header.
    pub async fn authenticate(
        &self,
        header: Option<&http::HeaderValue>,
    ) -> Result<Caller, AuthError> {
        if self.disabled {
            return Ok(Caller {
                name: "anonymous".into(),
                id: "none:anonymous".into(),
                scopes: Scope::ALL.to_vec(),
                method: "none",
            });
        }
        let header = header.ok_or(AuthError::Missing)?;
        let value = header.to_str().map_err(|_| AuthError::Malformed)?;
        let (scheme, credential) = value.split_once(' ').ok_or(AuthError::Malformed)?;
        let credential = credential.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || credential.is_empty() {
            return Err(AuthError::Malformed);
        }
        match &self.jwt {
            Some(jwt) if jwt::looks_like_jwt(credential) => jwt.verify(credential).await,
            _ => api_key::find(&self.keys, credential).ok_or(AuthError::UnknownKey),
        }
    }

    /// Forgets callers whose rate state is back to full, so the state stays bounded by the
    /// callers active recently (JWT subjects are not known in advance).
    pub fn prune(&self) {
        if let Some(limiter) = &self.per_caller {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Whether `caller` is within its own rate; the error is how long until it is.
    pub fn check_rate(&self, caller: &Caller) -> Result<(), Duration> {
        let Some(limiter) = &self.per_caller else {
            return Ok(());
        };
        limiter
            .check_key(&caller.id)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeySettings;

    fn settings(keys: Vec<ApiKeySettings>) -> AuthSettings {
        AuthSettings {
            api_keys: keys,
            ..AuthSettings::default()
        }
    }

    #[test]
    fn refuses_to_start_with_no_way_in() {
        let err = Authenticator::from_settings(&settings(vec![])).unwrap_err();
        assert!(err.to_string().contains("auth.disabled"), "{err}");
        assert!(
            Authenticator::from_settings(&AuthSettings {
                disabled: true,
                ..AuthSettings::default()
            })
            .is_ok()
        );
    }

    #[tokio::test]
    async fn header_forms() {
        let key = "pgw_test_key";
        let auth = Authenticator::from_settings(&settings(vec![ApiKeySettings {
            name: "svc".into(),
            sha256: api_key::hash_hex(key),
            scopes: vec![Scope::AllocateCredit],
        }]))
        .unwrap();
        let header = |v: &str| http::HeaderValue::from_str(v).unwrap();
        assert_eq!(auth.authenticate(None).await, Err(AuthError::Missing));
        assert_eq!(
            auth.authenticate(Some(&header("Basic abc"))).await,
            Err(AuthError::Malformed)
        );
        assert_eq!(
            auth.authenticate(Some(&header("Bearer"))).await,
            Err(AuthError::Malformed)
        );
        assert_eq!(
            auth.authenticate(Some(&header("Bearer nope"))).await,
            Err(AuthError::UnknownKey)
        );
        let caller = auth
            .authenticate(Some(&header(&format!("bearer {key}"))))
            .await
            .unwrap();
        assert_eq!(caller.name, "svc");
        assert!(caller.may(Scope::AllocateCredit) && !caller.may(Scope::SendInvitations));
    }

    #[test]
    fn per_caller_rate_is_per_caller() {
        let auth = Authenticator::from_settings(&AuthSettings {
            disabled: true,
            caller_requests_per_minute: 1,
            caller_burst: 2,
            ..AuthSettings::default()
        })
        .unwrap();
        let caller = |n: &str| Caller {
            name: n.into(),
            id: format!("key:{n}"),
            scopes: vec![],
            method: "api_key",
        };
        assert!(auth.check_rate(&caller("a")).is_ok());
        assert!(auth.check_rate(&caller("a")).is_ok());
        let wait = auth.check_rate(&caller("a")).unwrap_err();
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{wait:?}"
        );
        assert!(auth.check_rate(&caller("b")).is_ok());
        // Pruning keeps callers whose state is not back to full: "a" stays limited.
        auth.prune();
        assert!(auth.check_rate(&caller("a")).is_err());
    }
}
