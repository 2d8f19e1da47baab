//! Every check a typed field cannot make; each error names its key.

use std::net::SocketAddr;

use secrecy::ExposeSecret;

use super::{ConfigError, Settings, StoreBackend, invalid};
use crate::domain::CreditAmount;

impl Settings {
    /// Checks every value a typed field cannot rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| invalid("server.listen", "must be an address such as 0.0.0.0:8080"))?;
        if !(64..=1024 * 1024).contains(&self.server.max_body_bytes) {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 64 and 1048576",
            ));
        }
        positive("server.request_timeout_ms", self.server.request_timeout_ms)?;
        positive("server.header_timeout_ms", self.server.header_timeout_ms)?;
        positive("server.idle_timeout_ms", self.server.idle_timeout_ms)?;
        positive("server.write_timeout_ms", self.server.write_timeout_ms)?;
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        for origin in &self.server.cors_allowed_origins {
            let parsed = url::Url::parse(origin).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.origin().ascii_serialization() == *origin
            });
            if parsed.is_none() {
                return Err(invalid(
                    "server.cors_allowed_origins",
                    format!("`{origin}` is not an origin such as https://app.example.com"),
                ));
            }
        }
        let endpoint = url::Url::parse(&self.upstream.endpoint)
            .map_err(|e| invalid("upstream.endpoint", format!("not a URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(invalid(
                "upstream.endpoint",
                "must be an http(s) URL with a host",
            ));
        }
        if endpoint.path() != "/" || endpoint.query().is_some() {
            return Err(invalid(
                "upstream.endpoint",
                "must not have a path or query",
            ));
        }
        if let Some(region) = &self.upstream.region
            && !region.is_empty()
            && !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                "upstream.region",
                "must be a region id such as ap-singapore",
            ));
        }
        positive("upstream.timeout_ms", self.upstream.timeout_ms)?;
        positive(
            "upstream.connect_timeout_ms",
            self.upstream.connect_timeout_ms,
        )?;
        if self.upstream.max_retries > 10 {
            return Err(invalid("upstream.max_retries", "must be at most 10"));
        }
        positive("upstream.auth_recheck_ms", self.upstream.auth_recheck_ms)?;
        for (key, value) in [
            (
                "quotas.invitations_per_second",
                self.quotas.invitations_per_second,
            ),
            ("quotas.credit_per_second", self.quotas.credit_per_second),
            ("quotas.queries_per_second", self.quotas.queries_per_second),
            ("quotas.lookups_per_second", self.quotas.lookups_per_second),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(invalid(key, "must be between 1 and 100000"));
            }
        }
        let q = &self.quotas;
        if q.guard_max_ms > 1_000 {
            return Err(invalid("quotas.guard_max_ms", "must be at most 1000"));
        }
        if q.guard_min_ms > q.guard_max_ms {
            return Err(invalid(
                "quotas.guard_min_ms",
                "must be at most quotas.guard_max_ms",
            ));
        }
        if q.departure_slack_ms >= q.guard_max_ms {
            return Err(invalid(
                "quotas.departure_slack_ms",
                "must be below quotas.guard_max_ms: the guard must cover the slack and the path's jitter",
            ));
        }
        positive("quotas.probe_interval_ms", q.probe_interval_ms)?;
        positive(
            "upstream.pool_idle_timeout_ms",
            self.upstream.pool_idle_timeout_ms,
        )?;
        self.max_amount_cents()?;
        if self.credit.settle_ms < self.upstream.timeout_ms {
            return Err(invalid(
                "credit.settle_ms",
                "must be at least upstream.timeout_ms: an allocation may still be in flight until then",
            ));
        }
        positive(
            "credit.resolve_interval_ms",
            self.credit.resolve_interval_ms,
        )?;
        if !(1..=1_000).contains(&self.credit.history_max_pages) {
            return Err(invalid(
                "credit.history_max_pages",
                "must be between 1 and 1000",
            ));
        }
        if let Some(secret) = &self.credit.marker_secret
            && secret.expose_secret().len() < 32
        {
            return Err(invalid(
                "credit.marker_secret",
                "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        positive("idempotency.ttl_s", self.idempotency.ttl_s)?;
        if self.idempotency.max_entries == 0 {
            return Err(invalid("idempotency.max_entries", "must be greater than 0"));
        }
        // The largest of Tencent's batch limits (QueryInvitationInfo's 100 tokens); each batched
        // action takes at most its own limit.
        if !(1..=100).contains(&self.reads.batch_size) {
            return Err(invalid("reads.batch_size", "must be from 1 to 100"));
        }
        if self.reads.cache_ms > 60_000 {
            return Err(invalid(
                "reads.cache_ms",
                "must be at most 60000: credit read back a minute late is no longer news",
            ));
        }
        for (name, endpoint) in [
            (
                "credentials.metadata_endpoint",
                &self.credentials.metadata_endpoint,
            ),
            ("credentials.sts_endpoint", &self.credentials.sts_endpoint),
        ] {
            let url = url::Url::parse(endpoint)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if url.is_none() {
                return Err(invalid(name, "must be an http(s) URL"));
            }
        }
        if self.credentials.watch_ms < 100 {
            return Err(invalid("credentials.watch_ms", "must be at least 100"));
        }
        positive(
            "credentials.refresh_before_s",
            self.credentials.refresh_before_s,
        )?;
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        self.sandbox.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "sandbox.listen",
                "must be an address such as 127.0.0.1:9100",
            )
        })?;
        cents("sandbox.partner_credit", self.sandbox.partner_credit)?;
        self.validate_store()?;
        self.validate_auth()
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let store = &self.store;
        if store.key_prefix.len() > 64
            || store
                .key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c == '{' || c == '}')
        {
            return Err(invalid(
                "store.key_prefix",
                "must be at most 64 characters without spaces or braces (braces are Redis Cluster hash tags)",
            ));
        }
        positive("store.redis_timeout_ms", store.redis_timeout_ms)?;
        positive("store.redis_probe_ms", store.redis_probe_ms)?;
        if store.backend == StoreBackend::Memory {
            return Ok(());
        }
        let Some(url) = &store.redis_url else {
            return Err(invalid(
                "store.redis_url",
                "must be set (or REDIS_URL) when store.backend = \"redis\"",
            ));
        };
        let urls: Vec<&str> = url.expose_secret().split(',').map(str::trim).collect();
        if urls.len() > 1 && !store.redis_cluster {
            return Err(invalid(
                "store.redis_url",
                "holds several URLs: set store.redis_cluster = true for a Redis Cluster",
            ));
        }
        for one in urls {
            match url::Url::parse(one) {
                Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {}
                _ => {
                    return Err(invalid(
                        "store.redis_url",
                        "must be a redis:// or rediss:// URL with a host (several, comma-separated, for a cluster)",
                    ));
                }
            }
        }
        if store.expected_replicas > 1000 {
            return Err(invalid("store.expected_replicas", "must be at most 1000"));
        }
        positive("store.heartbeat_ms", store.heartbeat_ms)?;
        if store.partition_lease_ms < store.heartbeat_ms * 10 {
            return Err(invalid(
                "store.partition_lease_ms",
                "must be at least ten heartbeats (store.heartbeat_ms)",
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for key in &self.auth.api_keys {
            if key.name.is_empty()
                || key.name.len() > 64
                || !key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(invalid(
                    "auth.api_keys.name",
                    format!(
                        "`{}` must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                        key.name
                    ),
                ));
            }
            if !names.insert(key.name.as_str()) {
                return Err(invalid(
                    "auth.api_keys.name",
                    format!("`{}` is used twice", key.name),
                ));
            }
            if key.sha256.len() != 64
                || !key
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(
                    "auth.api_keys.sha256",
                    format!("the key of `{}` must be 64 lowercase hex digits", key.name),
                ));
            }
        }
        if let Some(jwt) = &self.auth.jwt {
            match (&jwt.jwks_file, &jwt.jwks_url) {
                (Some(_), None) => {}
                (None, Some(url)) => {
                    let parsed = url::Url::parse(url)
                        .map_err(|e| invalid("auth.jwt.jwks_url", e.to_string()))?;
                    let loopback = match parsed.host() {
                        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                        Some(url::Host::Domain(d)) => d == "localhost",
                        None => false,
                    };
                    if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback)) {
                        return Err(invalid(
                            "auth.jwt.jwks_url",
                            "must be https (http only on a loopback address)",
                        ));
                    }
                }
                _ => {
                    return Err(invalid(
                        "auth.jwt",
                        "set exactly one of jwks_file and jwks_url",
                    ));
                }
            }
            if jwt.issuer.is_empty() {
                return Err(invalid("auth.jwt.issuer", "must be set"));
            }
            positive("auth.jwt.refresh_interval_s", jwt.refresh_interval_s)?;
            if jwt.max_stale_s < jwt.refresh_interval_s {
                return Err(invalid(
                    "auth.jwt.max_stale_s",
                    "must be at least auth.jwt.refresh_interval_s",
                ));
            }
            if jwt.audience.is_empty() {
                return Err(invalid("auth.jwt.audience", "must be set"));
            }
        }
        if self.auth.caller_requests_per_minute > 0 && self.auth.caller_burst == 0 {
            return Err(invalid(
                "auth.caller_burst",
                "must be at least 1 when caller_requests_per_minute is set",
            ));
        }
        Ok(())
    }

    /// `credit.max_amount` in cents.
    pub fn max_amount_cents(&self) -> Result<i64, ConfigError> {
        cents("credit.max_amount", self.credit.max_amount)
    }

    pub fn region(&self) -> Option<&str> {
        self.upstream.region.as_deref().filter(|r| !r.is_empty())
    }
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be greater than 0"));
    }
    Ok(())
}

fn cents(key: &'static str, value: f64) -> Result<i64, ConfigError> {
    let cents = (value * 100.0).round();
    if !value.is_finite() || value <= 0.0 || (value * 100.0 - cents).abs() > 1e-6 {
        return Err(invalid(
            key,
            "must be a positive amount with at most 2 decimal places",
        ));
    }
    CreditAmount::from_cents(cents as i64)
        .map(CreditAmount::cents)
        .ok_or_else(|| invalid(key, "must be at most 10000000000000"))
}
