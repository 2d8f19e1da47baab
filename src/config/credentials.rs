//! The partner's Tencent Cloud API credentials, and where to look for them (`[credentials]`).

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

/// Where the credentials come from (`credentials.source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSourceSetting {
    /// The official SDKs' order: environment, profile file, CVM role, TKE workload identity.
    #[default]
    Chain,
    Env,
    File,
    CvmRole,
    TkeOidc,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialSettings {
    pub source: CredentialSourceSetting,
    /// The CVM metadata service (tests and the sandbox stand in for it).
    pub metadata_endpoint: String,
    /// Tencent Cloud STS, which exchanges a TKE web-identity token for temporary credentials
    /// (`AssumeRoleWithWebIdentity`; tests and the sandbox stand in for it).
    pub sts_endpoint: String,
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
            sts_endpoint: "https://sts.tencentcloudapi.com".into(),
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

/// The partner's Tencent Cloud API credentials (found by [`crate::credentials`]).
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

/// Shows a key id's first four and last four characters (`AKID…Xy12`): enough to tell two keys
/// apart in a log or on a console, too little to be the id. Short ids show their first four only.
pub fn redact_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    let head: String = chars.iter().take(4).collect();
    if chars.len() < 12 {
        return format!("{head}…");
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

impl Credentials {
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
