//! Logging: JSON lines (or a human format), filtered by `RUST_LOG` or `log.level`; and, when the
//! `OTEL_*` variables ask for them, OpenTelemetry traces ([`traces`]).
//!
//! Nothing logs a secret: credentials are `SecretString`s with redacted `Debug`, e-mail addresses
//! are logged through [`crate::domain::Email`]'s masking `Display`, and request headers are never
//! logged.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};
use crate::env;

mod client;
mod queue;
pub mod traces;
mod wanted;

pub use traces::Traces;
pub use wanted::{Wanted, process_env, wanted};

/// The log on stdout, and what else is written there in order with it; and the trace exporter,
/// which sends what it holds when this is dropped (before the log's last lines are flushed).
pub struct StdoutLog {
    traces: Option<Traces>,
    writer: tracing_appender::non_blocking::NonBlocking,
    /// Flushes when dropped: keep it until exit.
    _guard: tracing_appender::non_blocking::WorkerGuard,
}

impl StdoutLog {
    /// Writes `text` (a banner) to stdout after every log line written before it and before any
    /// written after: the two never interleave, as they do on two streams.
    pub fn print(&self, text: &str) {
        let mut writer = self.writer.clone();
        // Only a closed stdout fails: nobody is reading, so there is no one to tell.
        let _ = std::io::Write::write_all(&mut writer, text.as_bytes());
    }

    /// The trace exporter, when traces are exported.
    pub fn traces(&self) -> Option<&Traces> {
        self.traces.as_ref()
    }
}

impl Drop for StdoutLog {
    fn drop(&mut self) {
        if let Some(traces) = &self.traces {
            traces.shutdown();
        }
    }
}

/// Installs the global subscriber writing to stdout through a background thread, so a request
/// never waits for a write to stdout. Nothing is dropped when the writer falls behind (audit
/// records are in this stream): callers then wait. `format` is the settings' format resolved
/// (`LogSettings::format_for`). `traces`, when given, gets the gateway's spans too.
pub fn init_stdout(settings: &LogSettings, format: LogFormat, traces: Option<Traces>) -> StdoutLog {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .thread_name("log-writer")
        .finish(std::io::stdout());
    let settings = LogSettings {
        format,
        ..settings.clone()
    };
    init(&settings, writer.clone(), traces.as_ref());
    StdoutLog {
        traces,
        writer,
        _guard: guard,
    }
}

/// Installs the global subscriber writing to `writer`, with `traces`' layer when given. Returns
/// false when one is already set.
pub fn init<W>(settings: &LogSettings, writer: W, traces: Option<&Traces>) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // Audit records are kept whatever the level: they are the trail of who moved money.
    let filter = EnvFilter::try_from_env(env::LOG_FILTER)
        .unwrap_or_else(|_| EnvFilter::new(&settings.level))
        .add_directive("audit=info".parse().expect("a valid directive"));
    match traces {
        // The log's filter is the subscriber's: a call site below it is off for everything, as
        // before traces existed.
        None => tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(settings.format, writer))
            .try_init()
            .is_ok(),
        // Each layer filters for itself: the log's level never hides a span from the traces.
        Some(traces) => {
            let installed = tracing_subscriber::registry()
                .with(log_layer(settings.format, writer).with_filter(filter))
                .with(traces.layer())
                .try_init()
                .is_ok();
            if installed {
                traces.activate();
            }
            installed
        }
    }
}

/// The log's layer: JSON lines, or the pretty format (colours only for a terminal).
fn log_layer<S, W>(format: LogFormat, writer: W) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let log = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Json | LogFormat::Auto => log
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .boxed(),
        LogFormat::Pretty => log
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    }
}

/// The variables `pairs` name, as a lookup (the tests' environment).
#[cfg(test)]
fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}
