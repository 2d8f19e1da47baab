//! What each attempt leaves behind: its log line, its metrics, its span's end, and readiness
//! kept in step with whether Tencent accepts the credentials.

use std::time::Duration;

use super::super::error::{CallError, ErrorClass};
use super::TencentClient;

impl TencentClient {
    /// Logs an attempt, records it in metrics, and keeps readiness
    /// in step with whether Tencent accepts the credentials.
    pub(super) fn observe(
        &self,
        action: &'static str,
        result: Result<&str, &CallError>,
        elapsed: Duration,
        retries: u32,
    ) {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let (outcome, code, request_id) = match result {
            Ok(request_id) => ("success", "", Some(request_id)),
            Err(CallError::Upstream(e)) => ("error", e.code.as_str(), e.request_id.as_deref()),
            Err(other) => (other.outcome(), other.label(), None),
        };
        let code_label = match result {
            Ok(_) => "",
            Err(error) => error.metric_label(),
        };
        self.metrics
            .upstream_call(action, outcome, code_label, elapsed);
        let request_id = request_id.unwrap_or("");
        match result {
            Ok(_) => {
                self.readiness.report_auth_ok(action);
                self.metrics.action_denied(action, false);
                tracing::info!(
                    action,
                    tencent_request_id = request_id,
                    latency_ms,
                    retries,
                    "upstream call succeeded"
                );
            }
            Err(CallError::Upstream(e)) if e.class() == ErrorClass::AuthFailure => {
                if self.readiness.report_auth_failure(action, &e.code) {
                    self.metrics.action_denied(action, true);
                    tracing::error!(
                        action,
                        code,
                        tencent_request_id = request_id,
                        permission = format!("intlpartnersmgt:{action}"),
                        "Tencent refuses this action: the CAM policy of the gateway's credentials lacks the permission; the action is degraded, the others work"
                    );
                } else {
                    tracing::error!(
                        action,
                        code,
                        tencent_request_id = request_id,
                        latency_ms,
                        "Tencent rejected the gateway's credentials; readiness is now failing"
                    );
                }
            }
            Err(CallError::Upstream(_)) => {
                self.readiness.report_auth_ok(action);
                self.metrics.action_denied(action, false);
                tracing::info!(
                    action,
                    code,
                    tencent_request_id = request_id,
                    latency_ms,
                    retries,
                    "upstream answered an error"
                );
            }
            Err(other) => {
                tracing::warn!(action, code, error = %other, latency_ms, retries, "upstream call failed");
            }
        }
    }
}

/// What an attempt's span records of its end: Tencent's code and RequestId, or what went wrong.
pub(super) fn record_attempt<T>(span: &tracing::Span, result: &Result<(T, String), CallError>) {
    match result {
        Ok((_, request_id)) => {
            span.record("tencent.request_id", request_id.as_str());
        }
        Err(error) => {
            span.record("tencent.code", error.label());
            if let CallError::Upstream(e) = error
                && let Some(request_id) = &e.request_id
            {
                span.record("tencent.request_id", request_id.as_str());
            }
            span.record("otel.status_code", "error");
        }
    }
}

/// The span of a call's wait for its quota slot and connection (at `debug`: for traces).
pub(super) fn quota_wait_span(action: &'static str) -> tracing::Span {
    tracing::debug_span!(
        target: "partner_gateway::spans",
        "quota_wait",
        tencent.action = action,
        wait_ms = tracing::field::Empty
    )
}

/// The span of one attempt: a client span for traces (at `debug`), ended by [`record_attempt`].
pub(super) fn attempt_span(action: &'static str, retry: u32) -> tracing::Span {
    tracing::debug_span!(
        target: "partner_gateway::spans",
        "tencent.attempt",
        otel.kind = "client",
        tencent.action = action,
        retry,
        tencent.code = tracing::field::Empty,
        tencent.request_id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    )
}
