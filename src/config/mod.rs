//! Typed settings: built-in defaults, then TOML files, then `GATEWAY__SECTION__KEY` variables.
//!
//! Every key has a default here and a commented entry in `config/default.toml`; unknown keys are
//! rejected so a typo cannot silently fall back to a default. [`Settings::validate`] names the
//! offending key in its message. Credentials are not settings: they come from the variables in
//! `crate::env` only, and live in [`Credentials`] as `SecretString`s.
//!
//! | file | what |
//! |---|---|
//! | `sections.rs` | the server, upstream, quota, credit, idempotency, invitation, log and sandbox sections, with their `Duration` accessors |
//! | `auth.rs`, `store.rs` | the auth and store sections |
//! | `load.rs` | reading files and variables ([`Sources`], [`Settings::load`]) |
//! | `validate.rs` | every check a typed field cannot make ([`Settings::validate`]) |
//! | `credentials.rs` | the partner's Tencent Cloud keys ([`Credentials`]) |

use serde::{Deserialize, Serialize};

mod auth;
mod credentials;
mod load;
mod sections;
mod store;
mod validate;

pub use auth::{ApiKeySettings, AuthSettings, JwtSettings};
pub use credentials::{CredentialSettings, CredentialSourceSetting, Credentials, redact_id};
pub use load::Sources;
pub use sections::{
    CreditSettings, IdempotencySettings, InvitationSettings, LogFormat, LogSettings, QuotaSettings,
    ReadSettings, SandboxSettings, ServerSettings, UpstreamSettings,
};
pub use store::{StoreBackend, StoreSettings, redact_url};

/// The file read when no `--config` is given (relative to the working directory; optional).
pub const DEFAULT_FILE: &str = "config/default.toml";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub quotas: QuotaSettings,
    pub credit: CreditSettings,
    pub idempotency: IdempotencySettings,
    pub invitations: InvitationSettings,
    pub reads: ReadSettings,
    pub log: LogSettings,
    pub sandbox: SandboxSettings,
    pub auth: AuthSettings,
    pub store: StoreSettings,
    pub credentials: CredentialSettings,
}

/// A setting that cannot be used, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(String),
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// `Duration` accessors for a section's `…_ms` and `…_s` fields, so callers never convert units.
macro_rules! durations {
    ($section:ty { $($name:ident: $field:ident in $unit:ident),* $(,)? }) => {
        impl $section {
            $(
                #[doc = concat!("`", stringify!($field), "` as a `Duration`.")]
                pub fn $name(&self) -> std::time::Duration {
                    durations!(@$unit self.$field)
                }
            )*
        }
    };
    (@ms $value:expr) => { std::time::Duration::from_millis($value) };
    (@s $value:expr) => { std::time::Duration::from_secs($value) };
}
use durations;

#[cfg(test)]
mod tests;
