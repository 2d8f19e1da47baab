use std::sync::mpsc as std_mpsc;
use std::time::SystemTime;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};

use super::*;
use crate::telemetry::vars;

/// An exporter that tells when an export starts and finishes it only when let go: a collector
/// that stalls.
#[derive(Debug)]
struct Stalled {
    started: std_mpsc::SyncSender<usize>,
    go: Arc<tokio::sync::Semaphore>,
    fail: bool,
}

impl SpanExporter for Stalled {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let _ = self.started.try_send(batch.len());
        self.go.acquire().await.expect("open").forget();
        if self.fail {
            Err(OTelSdkError::InternalFailure(
                "HTTP export failed: network error".into(),
            ))
        } else {
            Ok(())
        }
    }
}

fn span(n: u64, sampled: bool) -> SpanData {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(u128::from(n) + 1),
            SpanId::from(n + 1),
            flags,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Internal,
        name: "test".into(),
        start_time: SystemTime::UNIX_EPOCH,
        end_time: SystemTime::UNIX_EPOCH,
        attributes: Vec::new(),
        dropped_attributes_count: 0,
        events: Default::default(),
        links: Default::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("test").build(),
    }
}

fn stalled(
    fail: bool,
) -> (
    Stalled,
    std_mpsc::Receiver<usize>,
    Arc<tokio::sync::Semaphore>,
) {
    let (started, starts) = std_mpsc::sync_channel(64);
    let go = Arc::new(tokio::sync::Semaphore::new(0));
    let exporter = Stalled {
        started,
        go: go.clone(),
        fail,
    };
    (exporter, starts, go)
}

const WAIT: Duration = Duration::from_secs(30);

fn settings(capacity: usize) -> QueueSettings {
    QueueSettings {
        capacity,
        batch: 1,
        // Never by time: each span is its own batch.
        delay: Duration::from_secs(3600),
        export_timeout: Duration::from_secs(3600),
    }
}

#[test]
fn a_stalled_collector_fills_the_queue_and_every_span_after_is_dropped_and_counted_at_once() {
    let (exporter, starts, go) = stalled(false);
    let counts = Arc::new(SpanCounts::default());
    let queue = SpanQueue::start(exporter, settings(4), counts.clone()).expect("started");
    // The first span is taken and its export stalls; four more fill the queue.
    queue.on_end(span(0, true));
    assert_eq!(starts.recv_timeout(WAIT), Ok(1), "the first export starts");
    let queue = Arc::new(queue);
    // Handing over never waits for the collector (stalled for good, here): a hand-over that
    // blocked would never send `done`.
    let (done, handed) = std_mpsc::channel();
    let handing = queue.clone();
    std::thread::spawn(move || {
        for n in 1..=10 {
            handing.on_end(span(n, true));
        }
        let _ = done.send(());
    });
    assert_eq!(handed.recv_timeout(WAIT), Ok(()), "a hand-over blocked");
    assert_eq!(
        counts.dropped.load(Ordering::Relaxed),
        6,
        "10 offered, 4 queued"
    );
    // The collector comes back: what was queued is exported, nothing else.
    go.add_permits(100);
    queue.force_flush().expect("flushed");
    assert_eq!(counts.exported.load(Ordering::Relaxed), 5);
    assert_eq!(counts.failed.load(Ordering::Relaxed), 0);
    queue.shutdown().expect("shut down");
}

#[test]
fn unsampled_spans_are_not_queued() {
    let (exporter, starts, go) = stalled(false);
    go.add_permits(100);
    let counts = Arc::new(SpanCounts::default());
    let queue = SpanQueue::start(exporter, settings(4), counts.clone()).expect("started");
    for n in 0..10 {
        queue.on_end(span(n, false));
    }
    queue.force_flush().expect("flushed");
    assert!(starts.try_recv().is_err(), "nothing was exported");
    assert_eq!(counts.dropped.load(Ordering::Relaxed), 0);
    queue.shutdown().expect("shut down");
}

#[test]
fn a_failed_export_is_counted_by_its_spans_and_shutdown_sends_what_is_queued() {
    let (exporter, starts, go) = stalled(true);
    go.add_permits(100);
    let counts = Arc::new(SpanCounts::default());
    let queue = SpanQueue::start(
        exporter,
        QueueSettings {
            batch: 3,
            ..settings(16)
        },
        counts.clone(),
    )
    .expect("started");
    for n in 0..7 {
        queue.on_end(span(n, true));
    }
    queue.shutdown().expect("shut down");
    let batches: Vec<usize> = starts.try_iter().collect();
    assert_eq!(
        batches,
        [3, 3, 1],
        "batches of at most 3, the rest at shutdown"
    );
    assert_eq!(counts.failed.load(Ordering::Relaxed), 7);
    assert_eq!(counts.exported.load(Ordering::Relaxed), 0);
    // After shutdown, spans are refused and counted, never queued for nobody.
    queue.on_end(span(99, true));
    assert_eq!(counts.dropped.load(Ordering::Relaxed), 1);
    assert!(queue.force_flush().is_err());
}

#[test]
fn an_export_that_outlives_its_timeout_is_given_up_and_counted() {
    let (exporter, starts, _go) = stalled(false);
    let counts = Arc::new(SpanCounts::default());
    let queue = SpanQueue::start(
        exporter,
        QueueSettings {
            export_timeout: Duration::from_millis(50),
            ..settings(4)
        },
        counts.clone(),
    )
    .expect("started");
    queue.on_end(span(0, true));
    assert_eq!(starts.recv_timeout(WAIT), Ok(1));
    // Answered once the stalled export is given up (its 50 ms), however loaded the machine.
    queue.ask(Control::Flush, WAIT).expect("flushed");
    assert_eq!(counts.failed.load(Ordering::Relaxed), 1);
    queue.shutdown_with_timeout(WAIT).expect("shut down");
}

#[test]
fn the_queue_settings_come_from_the_otel_bsp_variables_and_bad_ones_are_named() {
    assert_eq!(
        QueueSettings::from_lookup(&vars(&[])),
        Ok(QueueSettings::default())
    );
    assert_eq!(
        QueueSettings::from_lookup(&vars(&[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
            ("OTEL_BSP_SCHEDULE_DELAY", "250"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "1000"),
        ])),
        Ok(QueueSettings {
            capacity: 100,
            batch: 100,
            delay: Duration::from_millis(250),
            export_timeout: Duration::from_millis(1000),
        })
    );
    let error = QueueSettings::from_lookup(&vars(&[("OTEL_BSP_MAX_QUEUE_SIZE", "-1")]))
        .expect_err("refused");
    assert!(error.contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{error}");
    let huge = QueueSettings::from_lookup(&vars(&[("OTEL_BSP_MAX_QUEUE_SIZE", "99999999")]));
    assert_eq!(huge.map(|s| s.capacity), Ok(1 << 16));
}
