//! One function per event the gateway records: what it counts, under which closed-set labels.

use std::time::Duration;

use metrics::{Key, Recorder};

use super::catalog::*;
use super::{GaugeGuard, METADATA, Metrics, labels, method_label};

impl Metrics {
    /// Counts one more of `name` (a gauge) until the returned guard drops.
    fn in_flight(&self, name: &'static str) -> GaugeGuard {
        let gauge = self
            .recorder
            .register_gauge(&Key::from_name(name), &METADATA);
        gauge.increment(1.0);
        GaugeGuard(gauge)
    }

    /// Counts one event of `action` for `reason` (a closed set per metric).
    fn count_reason(&self, name: &'static str, action: &'static str, reason: &'static str) {
        let pairs = [("tencent_action", action.into()), ("reason", reason.into())];
        self.count(name, &pairs);
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
        self.in_flight(CONNECTIONS_OPEN)
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
        self.in_flight(HTTP_SERVER_ACTIVE)
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
        self.count_reason(UPSTREAM_RETRIES, action, reason);
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

    /// What the resolver's last pass found unsettled: how many allocations of unknown outcome,
    /// and when the oldest was sent (Unix ms; a time rather than an age, so an alert on
    /// `time() - it` keeps counting while no pass runs). A replica that does not run the passes
    /// reports 0 for both, so the fleet's `max` is the truth.
    pub fn unsettled(&self, count: usize, oldest_sent_ms: Option<u64>) {
        self.recorder
            .register_gauge(&Key::from_name(CREDIT_UNSETTLED), &METADATA)
            .set(count as f64);
        self.recorder
            .register_gauge(&Key::from_name(CREDIT_UNSETTLED_OLDEST), &METADATA)
            .set(oldest_sent_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
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
        self.count_reason(QUOTA_LATE, action, reason);
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

    /// The credentials in use: their source (one of [`CREDENTIAL_SOURCES`]), and when they
    /// expire (`None`: never).
    pub fn credentials(&self, source: &'static str, expires: Option<i64>) {
        for other in CREDENTIAL_SOURCES {
            self.recorder
                .register_gauge(
                    &Key::from_parts(CREDENTIAL_SOURCE, labels(&[("source", other.into())])),
                    &METADATA,
                )
                .set(if other == source { 1.0 } else { 0.0 });
        }
        self.recorder
            .register_gauge(&Key::from_name(CREDENTIAL_EXPIRY), &METADATA)
            .set(expires.unwrap_or_default() as f64);
    }

    pub fn credential_refresh_failure(&self, source: &'static str) {
        self.count(CREDENTIAL_FAILURES, &[("source", source.into())]);
    }

    pub fn cooldown(&self, source: &'static str) {
        self.count(COOLDOWNS, &[("source", source.into())]);
    }
}
