//! Prometheus metrics, named after the OpenTelemetry semantic conventions where they exist.
//!
//! Each [`Metrics`] owns its recorder instead of installing a global one, so several gateways in
//! one process (the tests) never mix their numbers. Rendering at `GET /metrics` needs no HTTP
//! server of the exporter's own.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `http_server_request_duration_seconds` | histogram | `http_route` (a template, or `unmatched`), `http_request_method` (a standard method or `_OTHER`), `http_response_status_code` |
//! | `http_server_active_requests` | gauge | – |
//! | `http_client_request_duration_seconds` (calls to Tencent) | histogram | `tencent_action`, `outcome`, `tencent_code` (a documented code or `other`) |
//! | `gateway_quota_wait_seconds` | histogram | `tencent_action` |
//! | `gateway_quota_rejections_total` | counter | `tencent_action` |
//! | `gateway_quota_configured` | gauge | `tencent_action` (calls per second, from the configuration) |
//! | `gateway_quota_effective` | gauge | `tencent_action` (calls per second the gateway uses: lower after Tencent's refusals showed a lower quota) |
//! | `gateway_quota_guard_seconds` | gauge | `tencent_action` (the window's extra beyond one second, learned from the path) |
//! | `gateway_quota_late_departures_total` | counter | `tencent_action`, `reason` (`connect`: its connection was not ready by the slot; `wake`: the host woke it too late; `redis`: the reservation's Redis round trip exceeded its allowance): slots given up because the call could not leave in time |
//! | `gateway_quota_fallback_total` | counter | `tencent_action`, `result` (`granted`, `not_yet`, `closed`, `refused`: decisions taken without Redis) |
//! | `gateway_quota_share` | gauge | `tencent_action` (with Redis: calls per second this replica may forward on its own while cut off) |
//! | `gateway_fleet_replicas` | gauge | – (with Redis: live replicas at this replica's last heartbeat) |
//! | `gateway_upstream_retries_total` | counter | `tencent_action`, `reason` |
//! | `gateway_idempotency_requests_total` | counter | `route`, `result` (`new`, `replayed`, `in_flight`, `mismatch`, `resent`) |
//! | `gateway_credit_reconciliations_total` | counter | `result` (`applied`, `not_applied`, `pending`, `failed`) |
//! | `gateway_credit_history_scans_total` | counter | `result` (`complete`, `reused`, `busy`, `incomplete`, `failed`) |
//! | `gateway_credit_marker_mismatches_total` | counter | – (an alarm: a history entry carries a marker with another amount) |
//! | `gateway_idempotency_records` | gauge | – (memory store: live records) |
//! | `gateway_idempotency_capacity` | gauge | – (memory store: `idempotency.max_entries`) |
//! | `gateway_idempotency_evictions_total` | counter | – (completed invitation records dropped to make room) |
//! | `gateway_invitation_cooldowns_total` | counter | `source` (`gateway`: refused here, `upstream`: Tencent's SendMailLimit180) |
//! | `gateway_connections_open` | gauge | – (client connections open now) |
//! | `gateway_connections_rejected_total` | counter | – (connections over `server.max_connections`, closed at once) |
//! | `gateway_connections_timed_out_total` | counter | `limit` (`header`, `idle`, `write`): connections closed by their clock |
//! | `gateway_upstream_action_denied` | gauge | `tencent_action` (1 while Tencent refuses it: `AuthFailure.UnauthorizedOperation`, a permission missing from the CAM policy) |
//! | `gateway_jwks_refresh_failures_total` | counter | – (JWT: JWKS refreshes that failed) |
//! | `gateway_jwks_age_seconds` | gauge | – (JWT: age of the key set in use) |
//! | `gateway_build_info` | gauge (1) | `version` |

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Buckets from half a millisecond (local work) to 30 s (a slow upstream or long quota wait).
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

pub const HTTP_SERVER_DURATION: &str = "http_server_request_duration_seconds";
pub const HTTP_SERVER_ACTIVE: &str = "http_server_active_requests";
pub const HTTP_CLIENT_DURATION: &str = "http_client_request_duration_seconds";
pub const QUOTA_WAIT: &str = "gateway_quota_wait_seconds";
pub const QUOTA_REJECTIONS: &str = "gateway_quota_rejections_total";
pub const UPSTREAM_RETRIES: &str = "gateway_upstream_retries_total";
pub const BUILD_INFO: &str = "gateway_build_info";
pub const IDEMPOTENCY: &str = "gateway_idempotency_requests_total";
pub const RECONCILIATIONS: &str = "gateway_credit_reconciliations_total";
pub const COOLDOWNS: &str = "gateway_invitation_cooldowns_total";
pub const HISTORY_SCANS: &str = "gateway_credit_history_scans_total";
pub const MARKER_MISMATCHES: &str = "gateway_credit_marker_mismatches_total";
pub const STORE_RECORDS: &str = "gateway_idempotency_records";
pub const STORE_CAPACITY: &str = "gateway_idempotency_capacity";
pub const STORE_EVICTIONS: &str = "gateway_idempotency_evictions_total";
pub const STORE_UP: &str = "gateway_store_up";
pub const STORE_ERRORS: &str = "gateway_store_errors_total";
pub const QUOTA_FALLBACK: &str = "gateway_quota_fallback_total";
pub const QUOTA_CONFIGURED: &str = "gateway_quota_configured";
pub const QUOTA_EFFECTIVE: &str = "gateway_quota_effective";
pub const QUOTA_GUARD: &str = "gateway_quota_guard_seconds";
pub const QUOTA_LATE: &str = "gateway_quota_late_departures_total";
pub const QUOTA_SHARE: &str = "gateway_quota_share";
pub const FLEET_REPLICAS: &str = "gateway_fleet_replicas";
pub const ACTION_DENIED: &str = "gateway_upstream_action_denied";
pub const JWKS_FAILURES: &str = "gateway_jwks_refresh_failures_total";
pub const JWKS_AGE: &str = "gateway_jwks_age_seconds";
pub const CONNECTIONS_OPEN: &str = "gateway_connections_open";
pub const CONNECTIONS_REJECTED: &str = "gateway_connections_rejected_total";
pub const CONNECTIONS_TIMED_OUT: &str = "gateway_connections_timed_out_total";

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&'static str, String)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::new(*k, v.clone()))
        .collect()
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("buckets are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self { recorder, handle };
        metrics.describe();
        metrics
            .recorder
            .register_gauge(
                &Key::from_parts(
                    BUILD_INFO,
                    labels(&[("version", env!("CARGO_PKG_VERSION").into())]),
                ),
                &METADATA,
            )
            .set(1.0);
        metrics
    }

    fn describe(&self) {
        let r = &self.recorder;
        let text = |s: &'static str| SharedString::const_str(s);
        r.describe_histogram(
            HTTP_SERVER_DURATION.into(),
            Some(Unit::Seconds),
            text("Duration of HTTP requests served by the gateway."),
        );
        r.describe_gauge(
            HTTP_SERVER_ACTIVE.into(),
            None,
            text("HTTP requests being served right now."),
        );
        r.describe_histogram(
            HTTP_CLIENT_DURATION.into(),
            Some(Unit::Seconds),
            text("Duration of each call attempt to Tencent Cloud."),
        );
        r.describe_histogram(
            QUOTA_WAIT.into(),
            Some(Unit::Seconds),
            text("Time admitted calls waited for a quota slot."),
        );
        r.describe_counter(
            QUOTA_REJECTIONS.into(),
            None,
            text("Calls refused because the next quota slot was beyond the wait budget."),
        );
        r.describe_counter(
            UPSTREAM_RETRIES.into(),
            None,
            text("Upstream calls sent again after a failure known not to have executed."),
        );
        r.describe_gauge(
            STORE_UP.into(),
            None,
            text("1 while the shared store answers (always 1 with the memory store), 0 otherwise."),
        );
        r.describe_counter(
            STORE_ERRORS.into(),
            None,
            text("Redis commands that failed or timed out, by operation."),
        );
        r.describe_counter(
            QUOTA_FALLBACK.into(),
            None,
            text(
                "Quota decisions taken by the local fallback limiter while Redis was unreachable.",
            ),
        );
        r.describe_gauge(
            QUOTA_CONFIGURED.into(),
            None,
            text("Each action's quota as configured, in calls per second."),
        );
        r.describe_gauge(
            QUOTA_EFFECTIVE.into(),
            None,
            text("Each action's quota as the gateway uses it: lower than configured after Tencent's refusals showed a lower one."),
        );
        r.describe_gauge(
            QUOTA_GUARD.into(),
            Some(Unit::Seconds),
            text("How much longer than one second each action's quota window is: departure slack plus the path's learned variation."),
        );
        r.describe_gauge(
            QUOTA_SHARE.into(),
            None,
            text("With Redis: calls per second this replica may forward on its own while cut off from Redis."),
        );
        r.describe_gauge(
            FLEET_REPLICAS.into(),
            None,
            text("With Redis: live replicas at this replica's last heartbeat."),
        );
        r.describe_counter(
            QUOTA_LATE.into(),
            None,
            text("Slots given up because the call could not leave within the departure slack."),
        );
        r.describe_gauge(
            CONNECTIONS_OPEN.into(),
            None,
            text("Client connections open now."),
        );
        r.describe_counter(
            CONNECTIONS_REJECTED.into(),
            None,
            text("Client connections over server.max_connections, closed at once."),
        );
        r.describe_counter(
            CONNECTIONS_TIMED_OUT.into(),
            None,
            text("Client connections closed because the request head or the idle time took too long."),
        );
        r.describe_gauge(
            BUILD_INFO.into(),
            None,
            text("Always 1; the version label says which build runs."),
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; call periodically so memory stays flat
    /// even when nobody scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn observe(&self, name: &'static str, pairs: &[(&'static str, String)], duration: Duration) {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels(pairs)), &METADATA)
            .record(duration.as_secs_f64());
    }

    fn count(&self, name: &'static str, pairs: &[(&'static str, String)]) {
        self.recorder
            .register_counter(&Key::from_parts(name, labels(pairs)), &METADATA)
            .increment(1);
    }

    pub fn http_request(&self, route: &str, method: &str, status: u16, duration: Duration) {
        let pairs = [
            ("http_route", route.to_owned()),
            ("http_request_method", method_label(method).to_owned()),
            ("http_response_status_code", status.to_string()),
        ];
        self.observe(HTTP_SERVER_DURATION, &pairs, duration);
    }

    /// 1 while Tencent refuses `action` for want of a permission (the action is degraded).
    pub fn action_denied(&self, action: &'static str, denied: bool) {
        self.recorder
            .register_gauge(
                &Key::from_parts(
                    ACTION_DENIED,
                    labels(&[("tencent_action", action.to_owned())]),
                ),
                &METADATA,
            )
            .set(if denied { 1.0 } else { 0.0 });
    }

    /// The JWKS in use: its age in seconds (`None`: never fetched) and the refreshes that failed.
    pub fn jwks(&self, age_s: Option<f64>, failures: u64) {
        self.recorder
            .register_counter(&Key::from_name(JWKS_FAILURES), &METADATA)
            .absolute(failures);
        if let Some(age) = age_s {
            self.recorder
                .register_gauge(&Key::from_name(JWKS_AGE), &METADATA)
                .set(age);
        }
    }

    /// Counts an open client connection until the returned guard drops.
    pub fn connection_opened(&self) -> GaugeGuard {
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(CONNECTIONS_OPEN), &METADATA);
        gauge.increment(1.0);
        GaugeGuard(gauge)
    }

    /// A connection over `server.max_connections`, closed at once.
    pub fn connection_rejected(&self) {
        self.count(CONNECTIONS_REJECTED, &[]);
    }

    /// A connection closed because its `limit` (`header`, `idle`, `write`) ran out.
    pub fn connection_timed_out(&self, limit: &'static str) {
        self.count(CONNECTIONS_TIMED_OUT, &[("limit", limit.to_owned())]);
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn active_request(&self) -> GaugeGuard {
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(HTTP_SERVER_ACTIVE), &METADATA);
        gauge.increment(1.0);
        GaugeGuard(gauge)
    }

    /// `code` comes from a closed set ([`crate::tencent::error::code_label`]).
    pub fn upstream_call(
        &self,
        action: &'static str,
        outcome: &'static str,
        code: &'static str,
        duration: Duration,
    ) {
        let pairs = [
            ("tencent_action", action.to_owned()),
            ("outcome", outcome.to_owned()),
            ("tencent_code", code.to_owned()),
        ];
        self.observe(HTTP_CLIENT_DURATION, &pairs, duration);
    }

    pub fn quota_wait(&self, action: &'static str, waited: Duration) {
        self.observe(QUOTA_WAIT, &[("tencent_action", action.to_owned())], waited);
    }

    pub fn quota_rejected(&self, action: &'static str) {
        self.count(QUOTA_REJECTIONS, &[("tencent_action", action.to_owned())]);
    }

    pub fn upstream_retry(&self, action: &'static str, reason: &'static str) {
        self.count(
            UPSTREAM_RETRIES,
            &[
                ("tencent_action", action.to_owned()),
                ("reason", reason.to_owned()),
            ],
        );
    }

    pub fn idempotency(&self, route: &'static str, result: &'static str) {
        self.count(
            IDEMPOTENCY,
            &[("route", route.into()), ("result", result.into())],
        );
    }

    pub fn reconciliation(&self, result: &'static str) {
        self.count(RECONCILIATIONS, &[("result", result.into())]);
    }

    /// 1 while the shared store (Redis) answers, 0 otherwise; always 1 with the memory store.
    pub fn store_up(&self, up: bool) {
        self.recorder
            .register_gauge(&Key::from_name(STORE_UP), &METADATA)
            .set(if up { 1.0 } else { 0.0 });
    }

    pub fn store_error(&self, operation: &'static str) {
        self.count(STORE_ERRORS, &[("operation", operation.into())]);
    }

    /// A quota decision taken without Redis: `result` is `granted` (a slot of this replica's
    /// share), `not_yet` (the fleet may still count on the share: 429), `closed` (no share: 503)
    /// or `refused` (the share is used up: 429).
    pub fn quota_fallback(&self, action: &'static str, result: &'static str) {
        self.count(
            QUOTA_FALLBACK,
            &[
                ("tencent_action", action.to_owned()),
                ("result", result.to_owned()),
            ],
        );
    }

    /// Each action's configured and effective quota and its current guard.
    pub fn quota_state(
        &self,
        action: &'static str,
        configured: u32,
        effective: u32,
        guard: Duration,
    ) {
        let labels = labels(&[("tencent_action", action.to_owned())]);
        for (name, value) in [
            (QUOTA_CONFIGURED, configured as f64),
            (QUOTA_EFFECTIVE, effective as f64),
            (QUOTA_GUARD, guard.as_secs_f64()),
        ] {
            self.recorder
                .register_gauge(&Key::from_parts(name, labels.clone()), &METADATA)
                .set(value);
        }
    }

    /// This replica's share of `action`'s quota while cut off from Redis.
    pub fn quota_share(&self, action: &'static str, share: u32) {
        self.recorder
            .register_gauge(
                &Key::from_parts(
                    QUOTA_SHARE,
                    labels(&[("tencent_action", action.to_owned())]),
                ),
                &METADATA,
            )
            .set(share as f64);
    }

    /// Live replicas seen at the last heartbeat.
    pub fn fleet_replicas(&self, live: u32) {
        self.recorder
            .register_gauge(&Key::from_name(FLEET_REPLICAS), &METADATA)
            .set(live as f64);
    }

    /// A call could not leave within the slack after its slot and reserved again: `reason` is
    /// `connect` (its connection was not ready by the slot), `wake` (the host woke it late) or
    /// `redis` (the reservation's Redis round trip exceeded its allowance).
    pub fn quota_late(&self, action: &'static str, reason: &'static str) {
        self.count(
            QUOTA_LATE,
            &[
                ("tencent_action", action.to_owned()),
                ("reason", reason.to_owned()),
            ],
        );
    }

    pub fn history_scan(&self, result: &'static str) {
        self.count(HISTORY_SCANS, &[("result", result.into())]);
    }

    pub fn marker_mismatch(&self) {
        self.count(MARKER_MISMATCHES, &[]);
    }

    /// How full the memory store is: live records and the most it holds.
    pub fn store_fill(&self, records: usize, capacity: usize) {
        self.recorder
            .register_gauge(&Key::from_name(STORE_RECORDS), &METADATA)
            .set(records as f64);
        self.recorder
            .register_gauge(&Key::from_name(STORE_CAPACITY), &METADATA)
            .set(capacity as f64);
    }

    pub fn store_evictions(&self, evicted: usize) {
        if evicted > 0 {
            self.recorder
                .register_counter(&Key::from_name(STORE_EVICTIONS), &METADATA)
                .increment(evicted as u64);
        }
    }

    pub fn cooldown(&self, source: &'static str) {
        self.count(COOLDOWNS, &[("source", source.into())]);
    }
}

/// The HTTP methods a label may name, as the OpenTelemetry HTTP conventions list them; any
/// other method is `_OTHER`.
const METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// `method` as a metric label: itself when standard, `_OTHER` otherwise.
pub fn method_label(method: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("_OTHER")
}

/// Decrements its gauge (open connections, active requests) when dropped.
pub struct GaugeGuard(metrics::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

#[cfg(test)]
mod tests;
