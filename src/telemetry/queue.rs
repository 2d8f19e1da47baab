//! The span processor between the request path and the OTLP exporter: a bounded queue drained by
//! a thread of its own, so exporting never blocks a request.
//!
//! A finished span is handed over with `try_send`: when the queue is full (the collector is slow
//! or away), the span is dropped and counted, and the request goes on. The thread batches spans
//! (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, or every `OTEL_BSP_SCHEDULE_DELAY`) and exports each batch
//! within `OTEL_BSP_EXPORT_TIMEOUT`; a batch that fails or times out is counted and not retried.
//! Its own current-thread runtime runs the exporter's HTTP client, away from the request workers.
//! The SDK's batch processor does the same but keeps its drop count to itself; ours is a metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use tokio::sync::mpsc;

use super::wanted::positive;
use crate::env;

/// The queue's limits, from the `OTEL_BSP_*` variables (the SDK's defaults otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    /// Spans waiting at most (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub capacity: usize,
    /// Spans per export at most (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512; never above capacity).
    pub batch: usize,
    /// The longest a span waits for its batch (`OTEL_BSP_SCHEDULE_DELAY`, 5000 ms).
    pub delay: Duration,
    /// The longest one export may take (`OTEL_BSP_EXPORT_TIMEOUT`, 30000 ms).
    pub export_timeout: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            capacity: 2048,
            batch: 512,
            delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

impl QueueSettings {
    /// The settings `lookup` gives (the `OTEL_BSP_*` variables); a value that is not a whole
    /// number above zero is an error naming its variable.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: u64| match lookup(name) {
            None => Ok(default),
            Some(v) => positive(name, v.trim()),
        };
        let ms = |d: Duration| d.as_millis() as u64;
        let defaults = Self::default();
        // A queue of a million spans would be a gigabyte held for a collector that is away.
        let capacity =
            number(env::OTEL_BSP_MAX_QUEUE_SIZE, defaults.capacity as u64)?.min(1 << 16) as usize;
        let batch = number(env::OTEL_BSP_MAX_EXPORT_BATCH_SIZE, defaults.batch as u64)?;
        Ok(Self {
            capacity,
            batch: (batch as usize).min(capacity),
            delay: Duration::from_millis(number(env::OTEL_BSP_SCHEDULE_DELAY, ms(defaults.delay))?),
            export_timeout: Duration::from_millis(number(
                env::OTEL_BSP_EXPORT_TIMEOUT,
                ms(defaults.export_timeout),
            )?),
        })
    }
}

/// What became of the spans handed to the queue, since start.
#[derive(Debug, Default)]
pub struct SpanCounts {
    /// Refused because the queue was full (or, after shutdown, closed).
    pub dropped: AtomicU64,
    /// Accepted by the collector.
    pub exported: AtomicU64,
    /// In a batch whose export failed or timed out.
    pub failed: AtomicU64,
}

impl SpanCounts {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Asked of the export thread, which answers on the channel when done.
enum Control {
    Flush(std::sync::mpsc::Sender<()>),
    Shutdown(std::sync::mpsc::Sender<()>),
}

/// The processor: hands finished, sampled spans to the export thread.
#[derive(Debug)]
pub struct SpanQueue {
    spans: mpsc::Sender<SpanData>,
    control: mpsc::UnboundedSender<Control>,
    counts: Arc<SpanCounts>,
    settings: QueueSettings,
}

impl SpanQueue {
    /// Starts the export thread with `exporter`.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        settings: QueueSettings,
        counts: Arc<SpanCounts>,
    ) -> std::io::Result<Self> {
        let (spans, spans_rx) = mpsc::channel(settings.capacity);
        let (control, control_rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let worker = Worker {
            exporter,
            settings,
            counts: counts.clone(),
            failing: false,
        };
        // Not joined: after shutdown the thread only ends its runtime, without waiting for a
        // lookup or a connection a timed-out export left behind.
        std::thread::Builder::new()
            .name("trace-export".into())
            .spawn(move || {
                runtime.block_on(worker.run(spans_rx, control_rx));
                runtime.shutdown_timeout(Duration::ZERO);
            })?;
        Ok(Self {
            spans,
            control,
            counts,
            settings,
        })
    }

    /// Asks the export thread for `control` and waits at most `timeout` for it to be done. Only
    /// shutdown and tests ask; the thread runs on its own runtime, so waiting here cannot stall it.
    fn ask(
        &self,
        control: impl FnOnce(std::sync::mpsc::Sender<()>) -> Control,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (done, answered) = std::sync::mpsc::channel();
        if self.control.send(control(done)).is_err() {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        match answered.recv_timeout(timeout) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(timeout)),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(OTelSdkError::AlreadyShutdown)
            }
        }
    }
}

impl SpanProcessor for SpanQueue {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.spans.try_send(span).is_err() {
            SpanCounts::add(&self.counts.dropped, 1);
        }
    }

    /// Waits for the export under way, then for the queue's (each within the export timeout).
    fn force_flush(&self) -> OTelSdkResult {
        self.ask(
            Control::Flush,
            self.settings.export_timeout.saturating_mul(2),
        )
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.ask(Control::Shutdown, timeout)
    }
}

struct Worker<E> {
    exporter: E,
    settings: QueueSettings,
    counts: Arc<SpanCounts>,
    /// Whether the last export failed: only a change is logged, the rest is counted.
    failing: bool,
}

impl<E: SpanExporter> Worker<E> {
    async fn run(
        mut self,
        mut spans: mpsc::Receiver<SpanData>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) {
        let mut batch = Vec::new();
        let mut due = tokio::time::Instant::now() + self.settings.delay;
        loop {
            tokio::select! {
                biased;
                asked = control.recv() => {
                    self.drain(&mut spans, &mut batch).await;
                    match asked {
                        Some(Control::Flush(done)) => {
                            let _ = done.send(());
                        }
                        Some(Control::Shutdown(done)) => {
                            spans.close();
                            self.drain(&mut spans, &mut batch).await;
                            let _ = self.exporter.shutdown_with_timeout(self.settings.export_timeout);
                            let _ = done.send(());
                            return;
                        }
                        // The processor is gone without a shutdown: what was queued is sent.
                        None => return,
                    }
                }
                span = spans.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= self.settings.batch {
                            self.export(&mut batch).await;
                            due = tokio::time::Instant::now() + self.settings.delay;
                        }
                    }
                    None => {
                        self.export(&mut batch).await;
                        return;
                    }
                },
                () = tokio::time::sleep_until(due) => {
                    self.export(&mut batch).await;
                    due = tokio::time::Instant::now() + self.settings.delay;
                }
            }
        }
    }

    /// Exports what is queued now, in batches (not what arrives meanwhile: a flush ends).
    async fn drain(&mut self, spans: &mut mpsc::Receiver<SpanData>, batch: &mut Vec<SpanData>) {
        for _ in 0..spans.len() {
            let Ok(span) = spans.try_recv() else { break };
            batch.push(span);
            if batch.len() >= self.settings.batch {
                self.export(batch).await;
            }
        }
        self.export(batch).await;
    }

    async fn export(&mut self, batch: &mut Vec<SpanData>) {
        if batch.is_empty() {
            return;
        }
        let spans = std::mem::take(batch);
        let n = spans.len();
        let sent = tokio::time::timeout(self.settings.export_timeout, self.exporter.export(spans));
        let failure = match sent.await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(error.to_string()),
            Err(_) => Some(format!(
                "no answer within {} ms (OTEL_BSP_EXPORT_TIMEOUT)",
                self.settings.export_timeout.as_millis()
            )),
        };
        // The export's messages name a status or "network error", never the headers (which may
        // carry the collector's key). This thread has no span, so nothing here becomes a span.
        match failure {
            None => {
                SpanCounts::add(&self.counts.exported, n);
                if std::mem::take(&mut self.failing) {
                    tracing::info!("trace export works again");
                }
            }
            Some(error) => {
                SpanCounts::add(&self.counts.failed, n);
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(
                        spans = n,
                        %error,
                        "trace export failed; until it works again, lost spans are only counted \
                         (gateway_trace_spans_export_failed_total)"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
