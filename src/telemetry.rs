//! Logging: JSON lines (or a human format), filtered by `RUST_LOG` or `log.level`.
//!
//! Nothing logs a secret: credentials are `SecretString`s with redacted `Debug`, e-mail addresses
//! are logged through [`crate::domain::Email`]'s masking `Display`, and request headers are never
//! logged.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogFormat, LogSettings};
use crate::env;

/// The log on stdout, and what else is written there in order with it.
pub struct StdoutLog {
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
}

/// Installs the global subscriber writing to stdout through a background thread, so a request
/// never waits for a write to stdout. Nothing is dropped when the writer falls behind (audit
/// records are in this stream): callers then wait. `format` is the settings' format resolved
/// (`LogSettings::format_for`).
pub fn init_stdout(settings: &LogSettings, format: LogFormat) -> StdoutLog {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(64 * 1024)
        .thread_name("log-writer")
        .finish(std::io::stdout());
    let settings = LogSettings {
        format,
        ..settings.clone()
    };
    init(&settings, writer.clone());
    StdoutLog {
        writer,
        _guard: guard,
    }
}

/// Installs the global subscriber writing to `writer`. Returns false when one is already set.
pub fn init<W>(settings: &LogSettings, writer: W) -> bool
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // Audit records are kept whatever the level: they are the trail of who moved money.
    let filter = EnvFilter::try_from_env(env::LOG_FILTER)
        .unwrap_or_else(|_| EnvFilter::new(&settings.level))
        .add_directive("audit=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match settings.format {
        LogFormat::Json | LogFormat::Auto => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
            .is_ok(),
        // Colours only for a terminal: a file or a pipe gets plain text.
        LogFormat::Pretty => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .try_init()
            .is_ok(),
    }
}
