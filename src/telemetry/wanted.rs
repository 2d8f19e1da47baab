//! What the `OTEL_*` variables ask of the trace export, read and checked before anything starts.
//!
//! The gateway reads the variables that decide whether and where traces go, and the queue's; the
//! SDK and the exporter read the rest themselves (sampler, resource, headers, compression). A
//! value the gateway reads and cannot use stops the start with a message naming the variable and
//! never echoing a value that may hold a credential (an endpoint's user info or query).

use std::time::Duration;

use opentelemetry_otlp::Protocol;

use super::queue::QueueSettings;
use crate::env;

/// The export's own timeout when `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT` is not set (the spec's).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the environment asks for, when it asks for traces.
#[derive(Clone, PartialEq)]
pub struct Wanted {
    /// The traces URL, as given (it may hold user info: never logged).
    pub(super) url: String,
    /// The variable that named it, and the URL as logs may show it.
    pub shown: (&'static str, String),
    pub protocol: Protocol,
    pub timeout: Duration,
    pub queue: QueueSettings,
}

impl std::fmt::Debug for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wanted")
            .field("shown", &self.shown)
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// The process's environment, as [`wanted`] reads it.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads the `OTEL_*` variables through `lookup`: `Ok(None)` when traces are off.
pub fn wanted(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<Wanted>, String> {
    let set = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if set(env::OTEL_SDK_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if let Some(exporters) = set(env::OTEL_TRACES_EXPORTER) {
        let exporters: Vec<String> = exporters
            .split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .collect();
        if exporters.iter().any(|e| e == "none") {
            return Ok(None);
        }
        if !exporters.iter().any(|e| e == "otlp") {
            return Err(format!(
                "{} names no exporter the gateway has: traces go over OTLP (`otlp`) or nowhere \
                 (`none`)",
                env::OTEL_TRACES_EXPORTER
            ));
        }
    }
    // The traces variable is used as given; the general one gets the traces path (the spec's
    // rule, as the exporter applies it).
    let (name, given) = match [env::OTEL_TRACES_ENDPOINT, env::OTEL_ENDPOINT]
        .into_iter()
        .find_map(|name| set(name).map(|v| (name, v)))
    {
        Some(found) => found,
        None => return Ok(None),
    };
    let not_a_url = || format!("{name} is not an http:// or https:// URL with a host");
    let mut url = url::Url::parse(&given).map_err(|_| not_a_url())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(not_a_url());
    }
    // The exporter's client would not send them: credentials belong in the headers variable.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{name} carries user info, which is not sent: put the collector's credentials in {} \
             (e.g. `authorization=Basic …`)",
            env::OTEL_HEADERS
        ));
    }
    if name == env::OTEL_ENDPOINT {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    let shown = shown_url(url.clone());
    let url = url.to_string();
    let (protocol_var, protocol) = [env::OTEL_TRACES_PROTOCOL, env::OTEL_PROTOCOL]
        .into_iter()
        .find_map(|name| set(name).map(|v| (name, v.to_ascii_lowercase())))
        .unwrap_or((env::OTEL_PROTOCOL, "http/protobuf".into()));
    let protocol = match protocol.as_str() {
        "http/protobuf" => Protocol::HttpBinary,
        "http/json" => Protocol::HttpJson,
        other => {
            return Err(format!(
                "{protocol_var}={other} is not supported: the gateway exports over OTLP/HTTP \
                 (`http/protobuf` or `http/json`, usually port 4318), not gRPC"
            ));
        }
    };
    // The exporter drops what it cannot use without a word; the gateway says so at start.
    for name in [env::OTEL_TRACES_COMPRESSION, env::OTEL_COMPRESSION] {
        if let Some(v) = set(name)
            && !matches!(v.to_ascii_lowercase().as_str(), "gzip" | "none")
        {
            return Err(format!("{name} must be `gzip` or `none`"));
        }
    }
    for name in [env::OTEL_TRACES_HEADERS, env::OTEL_HEADERS] {
        if let Some(v) = set(name)
            && !v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .all(|pair| {
                    pair.split_once('=').is_some_and(|(key, _)| {
                        http::HeaderName::from_bytes(key.trim().as_bytes()).is_ok()
                    })
                })
        {
            // Not the value: it may hold the collector's key.
            return Err(format!(
                "{name} must be `key=value` pairs separated by commas"
            ));
        }
    }
    let timeout = match [env::OTEL_TRACES_TIMEOUT, env::OTEL_TIMEOUT]
        .into_iter()
        .find_map(|name| set(name).map(|v| (name, v)))
    {
        None => DEFAULT_TIMEOUT,
        Some((name, v)) => Duration::from_millis(positive(name, &v)?),
    };
    Ok(Some(Wanted {
        url,
        shown: (name, shown),
        protocol,
        timeout,
        queue: QueueSettings::from_lookup(&|name| set(name))?,
    }))
}

/// A whole number above zero, or an error naming `name`.
pub(super) fn positive(name: &str, value: &str) -> Result<u64, String> {
    match value.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "{name} must be a whole number above zero, not {value:?}"
        )),
    }
}

/// The URL as logs may show it: scheme, host, port and path; never user info or a query.
fn shown_url(mut url: url::Url) -> String {
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests;
