//! Keeping the credentials current: the source the chain chose is asked again in the background,
//! files every `credentials.watch_ms`, temporary credentials ahead of their expiry (with jitter,
//! so replicas do not all ask at once). A failed read keeps the credentials in use; once they
//! have expired the replica is unready, naming the reason, until a read works again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rand::Rng;

use super::{CredentialCell, Issued, Origin};
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::readiness::ReadinessChecks;

/// A function reading one variable of an environment.
pub type ReadVar = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Reads a variable of the environment (the process's, or a test's).
#[derive(Clone)]
pub struct Lookup(pub Arc<ReadVar>);

impl Lookup {
    /// The process's environment.
    pub fn process() -> Self {
        Self(Arc::new(|name| std::env::var(name).ok()))
    }
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

/// The shortest pause between two reads of a source.
const MIN_PAUSE: Duration = Duration::from_millis(100);
/// The shortest pause after a source of temporary credentials gave the same ones again.
const SAME_AGAIN_PAUSE: Duration = Duration::from_secs(1);
/// The first retry after a failure; each further failure doubles it, up to `RETRY_CAP`.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(60);
/// Once the credentials have expired the replica is unready: the source is asked this often.
const EXPIRED_RETRY_CAP: Duration = Duration::from_secs(2);
/// The longest a read of the source may take (a file on a stuck mount, a service that never
/// answers): then it counts as a failure, so expiry is always noticed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15);

pub struct Refresher {
    pub origin: Origin,
    pub cell: Arc<CredentialCell>,
    pub lookup: Lookup,
    /// How often a source without an expiry is read again (`credentials.watch_ms`).
    pub watch: Duration,
    /// How long before their expiry temporary credentials are replaced
    /// (`credentials.refresh_before_s`; at most half their remaining life).
    pub refresh_before: Duration,
    pub clock: SharedClock,
    pub readiness: Arc<ReadinessChecks>,
    pub metrics: Arc<Metrics>,
    /// Failed reads since the last one that worked.
    pub failures: AtomicU32,
}

impl Refresher {
    /// Seconds until `issued` expires (negative: expired), if it does.
    fn left(&self, issued: &Issued) -> Option<f64> {
        let now_ms = self.clock.now_unix_ms() as f64;
        issued.expires.map(|e| e as f64 - now_ms / 1000.0)
    }

    /// How long to wait before the next read of the source.
    fn pause(&self, issued: &Issued) -> Duration {
        let Some(left) = self.left(issued) else {
            return self.watch;
        };
        let left = Duration::from_secs_f64(left.max(0.0));
        // Replace them `refresh_before` ahead, or halfway through a shorter life; then up to
        // 10% earlier, at random.
        let ahead = self.refresh_before.min(left / 2);
        let wait = (left - ahead).mul_f64(rand::rng().random_range(0.9..=1.0));
        wait.clamp(MIN_PAUSE, self.watch.max(MIN_PAUSE) * 720)
    }

    /// After the `failures`-th failed read in a row: again soon, then less and less often (but
    /// at least four times in what is left of the current credentials' life).
    fn retry(&self, issued: &Issued, failures: u32) -> Duration {
        let backoff = FIRST_RETRY
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(RETRY_CAP.max(self.watch));
        match self.left(issued) {
            Some(left) if left > 0.0 => backoff.min(Duration::from_secs_f64(left / 4.0)),
            Some(_) => backoff.min(EXPIRED_RETRY_CAP),
            None => backoff,
        }
        .max(FIRST_RETRY)
    }

    /// Reads the source once; the pause until the next read.
    pub async fn refresh_once(&self) -> Duration {
        let current = self.cell.current();
        let source = self.origin.source().label();
        let fetched =
            tokio::time::timeout(FETCH_TIMEOUT, self.origin.fetch(self.lookup.0.as_ref()))
                .await
                .unwrap_or_else(|_| Err(format!("no answer in {} s", FETCH_TIMEOUT.as_secs())))
                .and_then(|issued| {
                    super::sources::unexpired(&self.origin, issued, self.clock.now_unix_secs())
                });
        match fetched {
            Ok(issued) => {
                let failed_before = self.failures.swap(0, Ordering::Relaxed);
                if failed_before > 0 {
                    tracing::info!(source, failed_before, "the credentials can be read again");
                }
                self.readiness.report_credentials(None);
                self.metrics
                    .credentials(issued.source.label(), issued.expires);
                let pause = self.pause(&issued);
                let id = crate::config::redact_id(&issued.credentials.secret_id);
                let expiring = issued.expires.is_some();
                if self.cell.replace(issued) {
                    tracing::info!(source, secret_id = %id, "the credentials changed; requests from now on sign with the new ones");
                    // Tencent's refusal of the old ones says nothing of these.
                    self.readiness.credentials_replaced();
                    pause
                } else if expiring {
                    // A metadata service gives the same ones until shortly before they expire.
                    pause.max(SAME_AGAIN_PAUSE)
                } else {
                    pause
                }
            }
            Err(why) => {
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                self.metrics.credential_refresh_failure(source);
                let expired = self.left(&current).is_some_and(|left| left <= 0.0);
                if expired {
                    self.readiness.report_credentials(Some(format!(
                        "the {source} credentials expired and cannot be refreshed: {why}"
                    )));
                }
                // The 1st, 2nd, 4th, 8th… failure in a row is logged: a source down for an hour
                // writes a dozen lines, not thousands.
                if failures.is_power_of_two() {
                    if expired {
                        tracing::error!(source, failures, %why, "the credentials expired and cannot be refreshed; readiness is failing");
                    } else {
                        tracing::warn!(source, failures, %why, "cannot refresh the credentials; the current ones stay in use");
                    }
                }
                self.retry(&current, failures)
            }
        }
    }

    /// Reads the source again and again, forever.
    pub async fn run(self) {
        self.metrics.credentials(
            self.cell.current().source.label(),
            self.cell.current().expires,
        );
        let mut pause = self.pause(&self.cell.current());
        loop {
            tokio::time::sleep(pause).await;
            pause = self.refresh_once().await;
        }
    }
}
