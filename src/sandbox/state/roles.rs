//! The CVM metadata service's role credentials: temporary keys with a token and an expiry, which
//! the API accepts only with that token and only until then.

use rand::distr::{Alphanumeric, SampleString};
use secrecy::SecretString;

use super::{Refusal, SandboxState};
use crate::sandbox::SandboxKey;

/// The role the simulated instance has.
pub const ROLE: &str = "partner-gateway-role";
/// Most temporary keys remembered (the oldest are forgotten).
const MAX_TEMPORARY: usize = 1_000;

/// Temporary credentials, as the metadata service gives them.
#[derive(Debug, Clone)]
pub struct RoleCredentials {
    pub key: SandboxKey,
    pub expires_unix: i64,
}

impl SandboxState {
    /// New temporary credentials of the role, valid `config.temporary_ttl` from now; `None`
    /// while the metadata service is set to fail.
    pub fn issue_role_credentials(&self) -> Option<RoleCredentials> {
        if !self.lock().metadata_up {
            return None;
        }
        Some(self.issue_temporary(self.config.temporary_ttl))
    }

    /// New temporary credentials valid `ttl` from now, which the API accepts with their token.
    pub fn issue_temporary(&self, ttl: std::time::Duration) -> RoleCredentials {
        let mut rng = rand::rng();
        let key = SandboxKey {
            secret_id: format!("AKIDtmp{}", Alphanumeric.sample_string(&mut rng, 24)),
            secret_key: SecretString::from(Alphanumeric.sample_string(&mut rng, 32)),
            token: Some(SecretString::from(Alphanumeric.sample_string(&mut rng, 64))),
        };
        let now = self.config.clock.now_unix_secs();
        let issued = RoleCredentials {
            key,
            expires_unix: now + ttl.as_secs() as i64,
        };
        let mut inner = self.lock();
        if inner.temporary.len() >= MAX_TEMPORARY {
            // Expired keys go first; the oldest live one only when none has expired.
            inner.temporary.retain(|t| t.expires_unix > now);
            if inner.temporary.len() >= MAX_TEMPORARY {
                inner.temporary.pop_front();
            }
        }
        inner.temporary.push_back(issued.clone());
        issued
    }

    /// The temporary key with this id, if it was issued and has not expired.
    pub(in crate::sandbox) fn temporary_key(&self, secret_id: &str) -> Result<SandboxKey, Refusal> {
        let now = self.config.clock.now_unix_secs();
        let inner = self.lock();
        let issued = inner
            .temporary
            .iter()
            .find(|t| t.key.secret_id == secret_id)
            .ok_or((
                "AuthFailure.SecretIdNotFound",
                "The SecretId is not found.".to_owned(),
            ))?;
        if now >= issued.expires_unix {
            return Err((
                "AuthFailure.TokenFailure",
                "The temporary credentials have expired.".into(),
            ));
        }
        Ok(issued.key.clone())
    }

    /// Every temporary key remembered (tests check that none reaches a log).
    pub fn temporary_keys(&self) -> Vec<SandboxKey> {
        self.lock()
            .temporary
            .iter()
            .map(|t| t.key.clone())
            .collect()
    }

    /// Makes the metadata service answer (`true`) or fail (`false`).
    pub fn set_metadata_up(&self, up: bool) {
        self.lock().metadata_up = up;
    }
}
