//! The `[auth]` section: API keys, JWTs, per-caller rates.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::durations;

use crate::domain::Scope;

/// Who may call the gateway. Authentication is on unless `disabled = true` is set explicitly.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Turns authentication off (every caller is `anonymous` with every scope). Never implied:
    /// it must be set, and a warning is logged at every start.
    pub disabled: bool,
    /// API keys of services, stored as SHA-256 hashes (`partner-gateway hash-key` makes one).
    pub api_keys: Vec<ApiKeySettings>,
    /// JWT bearer tokens of signed-in users (OIDC).
    pub jwt: Option<JwtSettings>,
    /// Requests per minute one caller may make; 0 turns the per-caller limit off.
    pub caller_requests_per_minute: u32,
    /// Requests a caller may make at once on top of that rate.
    pub caller_burst: u32,
    /// Append ` [by CALLER]` to the Remark Tencent stores with each allocation.
    pub remark_caller: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// The caller's name, as logged and audited.
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// `invitations:send`, `credit:allocate`.
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// A JWKS document on disk.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL: https, or http on a loopback address.
    pub jwks_url: Option<String>,
    /// Required `iss`.
    pub issuer: String,
    /// Required in `aud`.
    pub audience: String,
    /// Claim holding the scopes: a space-separated string or a list.
    pub scopes_claim: String,
    /// Claim naming the caller.
    pub caller_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// Least time between two JWKS refreshes caused by unknown `kid`s.
    pub min_refresh_ms: u64,
    /// How often the JWKS is fetched again (sooner when its answer's `max-age` says so).
    pub refresh_interval_s: u64,
    /// How long the last good JWKS is trusted while refreshes fail; then tokens get 401.
    pub max_stale_s: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            jwks_file: None,
            jwks_url: None,
            issuer: String::new(),
            audience: String::new(),
            scopes_claim: "scope".into(),
            caller_claim: "sub".into(),
            leeway_s: 30,
            min_refresh_ms: 10_000,
            refresh_interval_s: 300,
            max_stale_s: 3_600,
        }
    }
}

durations!(JwtSettings {
    min_refresh: min_refresh_ms in ms,
    refresh_interval: refresh_interval_s in s,
    max_stale: max_stale_s in s,
});
