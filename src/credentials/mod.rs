//! Where the partner's Tencent Cloud credentials come from, and keeping them current.
//!
//! The sources, in the order of the official SDKs' default chain (`credentials.source = "chain"`):
//! 1. **env**: `TENCENTCLOUD_SECRET_ID`, `TENCENTCLOUD_SECRET_KEY` and a token
//!    (`TENCENTCLOUD_TOKEN`, or the Node SDK's `TENCENTCLOUD_SESSION_TOKEN`); each also as a
//!    `*_FILE` variable naming a file that holds it (a mounted Kubernetes Secret);
//! 2. **file**: the profile file `$TENCENTCLOUD_CREDENTIALS_FILE`, else
//!    `~/.tencentcloud/credentials`, else `/etc/tencentcloud/credentials` (INI, `[default]`,
//!    `secret_id`, `secret_key`, `token`);
//! 3. **cvm_role**: the CVM instance's role, from the metadata service
//!    (`credentials.metadata_endpoint`): temporary credentials with a token and an expiry;
//! 4. **tke_oidc**: TKE workload identity: the pod's web-identity token
//!    (`TKE_WEB_IDENTITY_TOKEN_FILE`, read again each time) exchanged with STS
//!    (`credentials.sts_endpoint`) for temporary credentials.
//!
//! What the chain chose is read again in the background ([`refresh`]): files every
//! `credentials.watch_ms`, temporary credentials ahead of their expiry. Requests sign with the
//! credentials current when they leave ([`CredentialCell::current`]), so a request in flight
//! keeps the ones it was signed with.

pub mod refresh;
pub mod remote;
pub mod sources;

use std::sync::Arc;

use parking_lot::RwLock;

use crate::config::Credentials;

pub use sources::{Origin, discover};

/// Where credentials came from (a metric label: a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Env,
    File,
    CvmRole,
    TkeOidc,
}

impl Source {
    pub const ALL: [Source; 4] = [Self::Env, Self::File, Self::CvmRole, Self::TkeOidc];

    pub fn label(self) -> &'static str {
        match self {
            Self::Env => "env",
            Self::File => "file",
            Self::CvmRole => "cvm_role",
            Self::TkeOidc => "tke_oidc",
        }
    }
}

/// Credentials as a source issued them.
#[derive(Debug, Clone)]
pub struct Issued {
    pub credentials: Credentials,
    /// When temporary credentials stop working (Unix seconds); `None`: they do not expire.
    pub expires: Option<i64>,
    pub source: Source,
}

impl Issued {
    /// Whether two issues are the same key material (not counting when they were read).
    fn same_as(&self, other: &Issued) -> bool {
        use secrecy::ExposeSecret;
        let (a, b) = (&self.credentials, &other.credentials);
        a.secret_id == b.secret_id
            && a.secret_key.expose_secret() == b.secret_key.expose_secret()
            && a.token.as_ref().map(|t| t.expose_secret().to_owned())
                == b.token.as_ref().map(|t| t.expose_secret().to_owned())
            && self.expires == other.expires
    }
}

/// The credentials requests sign with now.
#[derive(Debug)]
pub struct CredentialCell {
    current: RwLock<Arc<Issued>>,
}

impl CredentialCell {
    pub fn new(issued: Issued) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(issued)),
        })
    }

    /// Fixed credentials (tests, the sandbox): never refreshed.
    pub fn fixed(credentials: Credentials) -> Arc<Self> {
        Self::new(Issued {
            credentials,
            expires: None,
            source: Source::Env,
        })
    }

    /// What a request leaving now signs with.
    pub fn current(&self) -> Arc<Issued> {
        self.current.read().clone()
    }

    /// Replaces the credentials; true if they changed.
    pub fn replace(&self, issued: Issued) -> bool {
        let mut current = self.current.write();
        if current.same_as(&issued) {
            return false;
        }
        *current = Arc::new(issued);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::Source;

    #[test]
    fn every_source_is_a_label_of_the_source_metric() {
        let labels = Source::ALL.map(Source::label);
        assert_eq!(labels, crate::metrics::CREDENTIAL_SOURCES);
    }
}
