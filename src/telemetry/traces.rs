//! OpenTelemetry traces, exported over OTLP/HTTP when the standard variables ask for it.
//!
//! Off unless `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and
//! `OTEL_SDK_DISABLED` is not `true`, `OTEL_TRACES_EXPORTER` not `none`). When off, no layer is
//! installed: the spans only traces use are at `debug`, below the default log level, so their
//! call sites stay disabled and a request costs what it did before.
//!
//! When on: an incoming W3C `traceparent` continues its trace; the gateway's spans go through
//! [`SpanQueue`] (bounded, never blocking a request) to the exporter, which sends with the
//! gateway's own HTTP client; the trace id is what Tencent gets as `X-TC-TraceId`, and the request
//! span's `trace_id` field puts it on every log line the request writes. Only the gateway's own
//! spans are exported, and of events only warnings and errors (as span events): audit records and
//! access-log lines stay in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider};
use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use tracing::{Level, Metadata};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use super::client::Exporting;
use super::queue::{SpanCounts, SpanQueue};
use super::wanted::Wanted;

/// Whether spans are being exported (set once the layer is installed).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The export's counts, for `/metrics` (zero while nothing exports).
static COUNTS: OnceLock<Arc<SpanCounts>> = OnceLock::new();

/// The longest the exit waits for queued spans to go (within `OTEL_BSP_EXPORT_TIMEOUT`): a
/// collector that is away must not eat the pod's termination grace period.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// The longest `traceparent` read (version 00 is 55 characters) and `tracestate` kept (the W3C
/// minimum to propagate is 512): a caller's kilobytes are not copied into every span.
const MAX_TRACEPARENT: usize = 128;
const MAX_TRACESTATE: usize = 512;

/// True while spans are exported: only then is a `traceparent` read.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// (dropped, failed): spans dropped because the queue was full, and spans whose export failed.
pub fn counts() -> (u64, u64) {
    COUNTS.get().map_or((0, 0), |c| {
        (
            c.dropped.load(Ordering::Relaxed),
            c.failed.load(Ordering::Relaxed),
        )
    })
}

/// The exporter, started: keep it until exit, then [`Traces::shutdown`] sends what is queued.
pub struct Traces {
    provider: SdkTracerProvider,
    wanted: Wanted,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces")
            .field("endpoint", &self.wanted.shown)
            .finish_non_exhaustive()
    }
}

impl Traces {
    /// Starts the export thread and the SDK (sampler and span limits from `OTEL_*`).
    pub fn start(wanted: Wanted) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(wanted.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the trace exporter's HTTP client: {e}"))?;
        // The URL is the one checked in `wanted`; headers (OTEL_EXPORTER_OTLP_*HEADERS) and
        // compression are the exporter's to read from the environment.
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(Exporting::new(client))
            .with_endpoint(wanted.url.clone())
            .with_protocol(wanted.protocol)
            .with_timeout(wanted.timeout)
            .build()
            .map_err(|e| match e {
                // Its text may quote a variable's value (a header may hold a key): not shown.
                opentelemetry_otlp::ExporterBuildError::InvalidConfiguration(_) => {
                    "cannot start the trace exporter: an OTEL_EXPORTER_OTLP_* variable (headers, \
                     compression) has a value it cannot use"
                        .to_owned()
                }
                other => format!("cannot start the trace exporter: {other}"),
            })?;
        // The exporter moves to the export thread, out of the provider's reach: it gets the
        // resource (service name and version) here, not through the queue.
        let resource = resource();
        exporter.set_resource(&resource);
        let counts = COUNTS.get_or_init(Default::default).clone();
        let queue = SpanQueue::start(exporter, wanted.queue, counts)
            .map_err(|e| format!("cannot start the trace export thread: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .with_resource(resource)
            .build();
        Ok(Self { provider, wanted })
    }

    /// Marks traces as exported: called once the layer is installed (only then does reading a
    /// `traceparent` lead anywhere).
    pub(super) fn activate(&self) {
        ACTIVE.store(true, Ordering::Relaxed);
    }

    /// Where spans go, as logs may show it (the variable that said so, and the URL).
    pub fn endpoint(&self) -> &(&'static str, String) {
        &self.wanted.shown
    }

    /// The layer turning the gateway's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static + use<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        let tracer = self.provider.tracer(env!("CARGO_PKG_NAME"));
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(
                // The hint keeps the log crate's and tracing's maximum at `debug`, so other
                // crates' `trace!` call sites stay disabled.
                tracing_subscriber::filter::filter_fn(exported)
                    .with_max_level_hint(tracing::level_filters::LevelFilter::DEBUG),
            )
    }

    /// Exports what is queued and stops, waiting at most [`SHUTDOWN_WAIT`] (or the export
    /// timeout, when shorter).
    pub fn shutdown(&self) {
        ACTIVE.store(false, Ordering::Relaxed);
        let wait = SHUTDOWN_WAIT.min(self.wanted.queue.export_timeout);
        if self.provider.shutdown_with_timeout(wait).is_err() {
            tracing::warn!(
                wait_ms = wait.as_millis() as u64,
                "spans still queued at exit were not all exported in time"
            );
        }
    }
}

/// The target of the spans of requests that are logged but not traced (probes, scrapes): under
/// the crate's, so `RUST_LOG=partner_gateway=…` keeps them in the log.
pub const UNTRACED_TARGET: &str = "partner_gateway::untraced";

/// The gateway's own spans (those only traces use are at `debug`); of its events, warnings and
/// errors. Nothing of other crates, no audit record (its target is `audit`), and no probe.
fn exported(metadata: &Metadata<'_>) -> bool {
    let ours = metadata.target().starts_with(env!("CARGO_CRATE_NAME"))
        && metadata.target() != UNTRACED_TARGET;
    let level = *metadata.level();
    ours && if metadata.is_span() {
        level <= Level::DEBUG
    } else {
        level <= Level::WARN
    }
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), named `partner-gateway`
/// when neither names the service.
fn resource() -> Resource {
    let detected = Resource::builder().build();
    let given = |key: &'static str| detected.get(&Key::from_static_str(key));
    let named = given("service.name").is_some_and(|n| !n.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder();
    if !named {
        builder = builder.with_service_name(env!("CARGO_PKG_NAME"));
    }
    if given("service.version").is_none() {
        builder =
            builder.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    }
    builder.build()
}

/// Continues the trace a request's `traceparent` names (a malformed one starts a new trace), names
/// `span` after the route, and records its trace id on it for the log. Only while [`active`].
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap, method: &str, route: &str) {
    let parent = TraceContextPropagator::new().extract(&Incoming(headers));
    // Before the span starts: a started span's parent cannot change.
    span.record("otel.name", format!("{method} {route}"));
    span.record("otel.kind", "server");
    let _ = span.set_parent(parent);
    span.set_attribute("http.request.method", method.to_owned());
    span.set_attribute("http.route", route.to_owned());
    if let Some(id) = trace_id_of(span) {
        span.record("trace_id", id);
    }
}

/// A request's trace headers as the propagator reads them: a `traceparent` sent more than once
/// or longer than [`MAX_TRACEPARENT`] is none; a `tracestate` longer than [`MAX_TRACESTATE`] is
/// dropped (the trace still continues).
struct Incoming<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Incoming<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let limit = match key {
            "traceparent" => MAX_TRACEPARENT,
            "tracestate" => MAX_TRACESTATE,
            _ => return None,
        };
        let mut values = self.0.get_all(key).iter();
        let value = values.next()?;
        if values.next().is_some() || value.len() > limit {
            return None;
        }
        value.to_str().ok()
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Records how the request ended on its span: the status, and an error status for a 5xx.
pub fn end_request(span: &tracing::Span, status: u16, problem: &str) {
    span.set_attribute("http.response.status_code", i64::from(status));
    if status >= 500 {
        span.set_status(Status::error(problem.to_owned()));
    }
}

/// The span for work spawned on behalf of the current request that may outlive it (a batched or
/// coalesced read): in the request's trace, without holding the request's own span open. No span
/// while traces are off (as before they existed).
pub fn call_span() -> tracing::Span {
    if !active() {
        return tracing::Span::none();
    }
    let span = tracing::debug_span!(target: "partner_gateway::spans", parent: None, "read_call");
    let _ = span.set_parent(tracing::Span::current().context());
    span
}

/// The trace id of the current span, when a trace is active: what Tencent gets as
/// `X-TC-TraceId`.
pub fn current_trace_id() -> Option<String> {
    if !active() {
        return None;
    }
    trace_id_of(&tracing::Span::current())
}

fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

#[cfg(test)]
mod tests;
