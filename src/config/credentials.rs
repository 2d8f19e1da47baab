//! The partner's Tencent Cloud API credentials, and where to look for them (`[credentials]`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where the credentials come from (`credentials.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSourceSetting {
    /// The official SDKs' order: environment, profile file, CVM role.
    #[default]
    Chain,
    Env,
    File,
    CvmRole,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialSettings {
    pub source: CredentialSourceSetting,
    /// The CVM metadata service (tests and the sandbox stand in for it).
    pub metadata_endpoint: String,
    /// How often credentials without an expiry (variables' files, the profile file) are read
    /// again.
    pub watch_ms: u64,
    /// How long before their expiry temporary credentials are replaced (at most half their
    /// remaining life).
    pub refresh_before_s: u64,
}

impl Default for CredentialSettings {
    fn default() -> Self {
        Self {
            source: CredentialSourceSetting::Chain,
            metadata_endpoint: "http://metadata.tencentyun.com".into(),
            watch_ms: 5_000,
            refresh_before_s: 300,
        }
    }
}

impl CredentialSettings {
    pub fn watch(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.watch_ms)
    }

    pub fn refresh_before(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.refresh_before_s)
    }
}

use crate::env;

/// The partner's Tencent Cloud API credentials, from the environment only.
#[derive(Clone)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: SecretString,
    pub token: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &redact_id(&self.secret_id))
            .field("secret_key", &"[REDACTED]")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Keeps the first four characters of a key id, enough to tell keys apart.
pub fn redact_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}…")
}

impl Credentials {
    /// Reads the credentials; the error lists every missing variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<&'static str>> {
        let get = |name| lookup(name).filter(|v| !v.trim().is_empty());
        let id = get(env::SECRET_ID);
        let key = get(env::SECRET_KEY);
        match (id, key) {
            (Some(secret_id), Some(key)) => Ok(Self {
                secret_id: secret_id.trim().to_owned(),
                secret_key: SecretString::from(key.trim().to_owned()),
                token: get(env::TOKEN).map(|t| SecretString::from(t.trim().to_owned())),
            }),
            (id, key) => Err([
                (env::SECRET_ID, id.is_none()),
                (env::SECRET_KEY, key.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect()),
        }
    }

    pub fn from_env() -> Result<Self, Vec<&'static str>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Fresh random credentials for the sandbox.
    pub fn generate_sandbox() -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        let mut rng = rand::rng();
        Self {
            secret_id: format!("AKIDsandbox{}", Alphanumeric.sample_string(&mut rng, 24)),
            secret_key: SecretString::from(Alphanumeric.sample_string(&mut rng, 32)),
            token: None,
        }
    }
}
