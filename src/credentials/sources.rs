//! The sources of the chain: the environment (and `*_FILE` files), the profile file, then the
//! ones in [`super::remote`]; and choosing among them.

use std::path::{Path, PathBuf};

use secrecy::SecretString;
use tokio::io::AsyncReadExt;

use super::remote::{MAX_FILE_BYTES, Oidc, from_cvm};
use super::{Issued, Source};
use crate::clock::{Clock, SystemClock};
use crate::config::{CredentialSettings, CredentialSourceSetting, Credentials};
use crate::env;

/// How a source is asked again.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The environment; its `*_FILE` files are read again each time.
    Env,
    /// A profile file.
    File(PathBuf),
    /// The CVM metadata service at this base URL.
    CvmRole(String),
    /// TKE workload identity: a web-identity token exchanged with STS.
    TkeOidc(Oidc),
}

impl Origin {
    pub fn source(&self) -> Source {
        match self {
            Self::Env => Source::Env,
            Self::File(_) => Source::File,
            Self::CvmRole(_) => Source::CvmRole,
            Self::TkeOidc(_) => Source::TkeOidc,
        }
    }

    /// The credentials this source gives now.
    pub async fn fetch(
        &self,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Issued, String> {
        match self {
            Self::Env => from_env(lookup).await?.ok_or_else(|| {
                format!(
                    "{} and {} (or their *_FILE variants) are not both set",
                    env::SECRET_ID,
                    env::SECRET_KEY
                )
            }),
            Self::File(path) => from_profile(path).await,
            Self::CvmRole(endpoint) => from_cvm(endpoint).await,
            Self::TkeOidc(oidc) => oidc.fetch().await,
        }
    }

    /// Where the credentials come from, for `check-config` and logs (never a secret).
    pub fn describe(&self) -> String {
        match self {
            Self::Env => "the environment".to_owned(),
            Self::File(path) => path.display().to_string(),
            Self::CvmRole(endpoint) => format!("the CVM role, from {endpoint}"),
            Self::TkeOidc(oidc) => format!(
                "TKE workload identity: role {} through provider {}, from {}",
                oidc.role_arn, oidc.provider_id, oidc.sts_endpoint
            ),
        }
    }
}

/// A small file's text (at most 64 KiB, a regular file), read off the async threads.
pub async fn read_small(path: &Path) -> Result<String, String> {
    let shown = path.display();
    // Looked at before it is opened: opening a FIFO or a device could block for ever.
    let kind = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !kind.is_file() {
        return Err(format!("{shown} is not a file"));
    }
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("{shown} is larger than {MAX_FILE_BYTES} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| format!("{shown} is not UTF-8 text"))
}

/// A variable's value, or the content of the file its `*_FILE` variant names; blank is unset.
async fn value_or_file(
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    name: &str,
) -> Result<Option<String>, String> {
    let direct = lookup(name).filter(|v| !v.trim().is_empty());
    if direct.is_some() {
        return Ok(direct.map(|v| v.trim().to_owned()));
    }
    let file_var = format!("{name}_FILE");
    match lookup(&file_var).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(path) => {
            let text = read_small(Path::new(path.trim()))
                .await
                .map_err(|e| format!("{file_var}: {e}"))?;
            Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
        }
    }
}

/// How many times a pair read across a rotation is read again before giving up.
const CONSISTENT_READS: usize = 3;

/// The environment's credentials, if both halves are set. The id is read again after the key:
/// a Secret volume swapped between the reads of its files would otherwise pair the old id with
/// the new key.
async fn from_env(
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Issued>, String> {
    for _ in 0..CONSISTENT_READS {
        let issued = read_env(lookup).await?;
        let id_again = value_or_file(lookup, env::SECRET_ID).await?;
        if issued.as_ref().map(|i| &i.credentials.secret_id) == id_again.as_ref()
            || issued.is_none()
        {
            return Ok(issued);
        }
    }
    Err(format!(
        "{} kept changing while it was read",
        env::SECRET_ID
    ))
}

async fn read_env(
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<Issued>, String> {
    let id = value_or_file(lookup, env::SECRET_ID).await?;
    let key = value_or_file(lookup, env::SECRET_KEY).await?;
    let token = match value_or_file(lookup, env::TOKEN).await? {
        Some(token) => Some(token),
        None => value_or_file(lookup, env::SESSION_TOKEN).await?,
    };
    Ok(match (id, key) {
        (Some(secret_id), Some(key)) => Some(Issued {
            credentials: Credentials {
                secret_id,
                secret_key: SecretString::from(key),
                token: token.map(SecretString::from),
            },
            expires: None,
            source: Source::Env,
        }),
        _ => None,
    })
}

/// The profile files the chain looks at: `$TENCENTCLOUD_CREDENTIALS_FILE` alone when it is set
/// (the operator named it: missing is an error, as in the Go SDK), else
/// `~/.tencentcloud/credentials`, then `/etc/tencentcloud/credentials`.
pub fn profile_paths(lookup: &(dyn Fn(&str) -> Option<String> + Sync)) -> Vec<PathBuf> {
    if let Some(path) = lookup(env::CREDENTIALS_FILE).filter(|p| !p.trim().is_empty()) {
        return vec![PathBuf::from(path.trim())];
    }
    let mut paths = Vec::new();
    if let Some(home) = lookup("HOME").filter(|h| !h.trim().is_empty()) {
        paths.push(Path::new(home.trim()).join(".tencentcloud/credentials"));
    }
    paths.push(PathBuf::from("/etc/tencentcloud/credentials"));
    paths
}

/// The `[default]` section of a profile file, read until two reads agree (a file rewritten in
/// place can be caught half-written).
async fn from_profile(path: &Path) -> Result<Issued, String> {
    let mut text = read_small(path).await?;
    let mut agreed = false;
    for _ in 0..CONSISTENT_READS {
        let again = read_small(path).await?;
        if again == text {
            agreed = true;
            break;
        }
        text = again;
    }
    if !agreed {
        return Err(format!(
            "{} kept changing while it was read",
            path.display()
        ));
    }
    let (mut id, mut key, mut token) = (None, None, None);
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != "default" {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match name.trim() {
            "secret_id" => id = value,
            "secret_key" => key = value,
            "token" => token = value,
            _ => {}
        }
    }
    match (id, key) {
        (Some(secret_id), Some(key)) => Ok(Issued {
            credentials: Credentials {
                secret_id,
                secret_key: SecretString::from(key),
                token: token.map(SecretString::from),
            },
            expires: None,
            source: Source::File,
        }),
        _ => Err(format!(
            "{}: [default] lacks secret_id or secret_key",
            path.display()
        )),
    }
}

/// The source `credentials.source` names, or the first of the chain that gives credentials;
/// the error says what each source lacked. Credentials that have already expired are an error.
pub async fn discover(
    settings: &CredentialSettings,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(Origin, Issued), String> {
    let (origin, issued) = choose(settings, lookup).await?;
    let issued = unexpired(&origin, issued, SystemClock.now_unix_secs())?;
    Ok((origin, issued))
}

/// `issued`, unless it had expired by `now` (Unix seconds): a source that hands out dead
/// credentials (or a clock that is wrong) has failed, at the start as on a refresh.
pub fn unexpired(origin: &Origin, issued: Issued, now: i64) -> Result<Issued, String> {
    match issued.expires {
        Some(expires) if expires <= now => Err(format!(
            "{} gave credentials that expired {} s ago (is this machine's clock right?)",
            origin.describe(),
            now.saturating_sub(expires)
        )),
        _ => Ok(issued),
    }
}

async fn choose(
    settings: &CredentialSettings,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(Origin, Issued), String> {
    let named = lookup(env::CREDENTIALS_FILE).is_some_and(|p| !p.trim().is_empty());
    let profile = || {
        let paths = profile_paths(lookup);
        if named {
            return paths.into_iter().next().map(Origin::File);
        }
        paths.into_iter().find(|p| p.exists()).map(Origin::File)
    };
    let cvm = || Origin::CvmRole(settings.metadata_endpoint.clone());
    match settings.source {
        CredentialSourceSetting::Env => {
            let issued = Origin::Env.fetch(lookup).await?;
            Ok((Origin::Env, issued))
        }
        CredentialSourceSetting::File => {
            let origin = profile().ok_or_else(|| {
                format!(
                    "no profile file: looked at {}",
                    shown(&profile_paths(lookup))
                )
            })?;
            let issued = origin.fetch(lookup).await?;
            Ok((origin, issued))
        }
        CredentialSourceSetting::CvmRole => {
            let origin = cvm();
            let issued = origin.fetch(lookup).await?;
            Ok((origin, issued))
        }
        CredentialSourceSetting::TkeOidc => {
            let origin = Origin::TkeOidc(Oidc::from_env(lookup, &settings.sts_endpoint)?);
            let issued = origin.fetch(lookup).await?;
            Ok((origin, issued))
        }
        CredentialSourceSetting::Chain => {
            let mut lacked = Vec::new();
            if let Some(issued) = from_env(lookup).await? {
                return Ok((Origin::Env, issued));
            }
            let mut missing = Vec::new();
            for name in [env::SECRET_ID, env::SECRET_KEY] {
                if value_or_file(lookup, name).await.ok().flatten().is_none() {
                    missing.push(name);
                }
            }
            lacked.push(format!("env: {} not set", missing.join(" and ")));
            match profile() {
                Some(origin) => {
                    // A profile file that exists but is wrong is an error, not a reason to try
                    // the next source: the operator meant it.
                    let issued = origin.fetch(lookup).await?;
                    return Ok((origin, issued));
                }
                None => lacked.push(format!("file: none of {}", shown(&profile_paths(lookup)))),
            }
            match cvm().fetch(lookup).await {
                Ok(issued) => return Ok((cvm(), issued)),
                Err(why) => lacked.push(format!("cvm_role: {why}")),
            }
            match Oidc::from_env(lookup, &settings.sts_endpoint) {
                // The pod was given workload identity: an exchange that fails is an error.
                Ok(oidc) => {
                    let origin = Origin::TkeOidc(oidc);
                    let issued = origin.fetch(lookup).await?;
                    Ok((origin, issued))
                }
                Err(why) => {
                    lacked.push(format!("tke_oidc: {why}"));
                    Err(format!("no credentials found ({})", lacked.join("; ")))
                }
            }
        }
    }
}

fn shown(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
