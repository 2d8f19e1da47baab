//! Prometheus metrics, named after the OpenTelemetry semantic conventions where they exist.
//!
//! Each [`Metrics`] owns its recorder instead of installing a global one, so several gateways in
//! one process (the tests) never mix their numbers. Rendering at `GET /metrics` needs no HTTP
//! server of the exporter's own.
//!
//! Every metric is in [`CATALOG`] with its type and help text; the README's table lists the
//! same names with their labels, and a test keeps the two in step. The recording functions, one
//! per event, are in `record.rs`.

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

mod catalog;
mod record;

pub use catalog::*;

/// Buckets from half a millisecond (local work) to 30 s (a slow upstream or long quota wait).
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
    30.0,
];

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

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
        .map(|(k, v)| {
            debug_assert!(LABELS.contains(k), "label `{k}` is not in metrics::LABELS");
            Label::new(*k, v.clone())
        })
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
        for metric in CATALOG {
            let (name, unit, help) = (
                metric.name.into(),
                metric.unit,
                SharedString::const_str(metric.help),
            );
            match metric.kind {
                Kind::Counter => self.recorder.describe_counter(name, unit, help),
                Kind::Gauge => self.recorder.describe_gauge(name, unit, help),
                Kind::Histogram => self.recorder.describe_histogram(name, unit, help),
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        // The trace exporter counts on its own thread (it starts before any `Metrics`).
        let (dropped, failed) = crate::telemetry::traces::counts();
        for (name, value) in [(TRACE_SPANS_DROPPED, dropped), (TRACE_SPANS_FAILED, failed)] {
            self.recorder
                .register_counter(&Key::from_name(name), &METADATA)
                .absolute(value);
        }
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
