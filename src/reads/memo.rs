//! Identical concurrent reads share one upstream call, and its answer is reused for
//! `reads.cache_ms`, as long as nothing it depends on changed ([`Version`]).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Fetched, ReadResult};
use crate::problem::{ApiError, ProblemType};

/// What an answer depends on, as it stood when its call began: this replica's count of
/// allocations that touched it, and the fleet's (from Redis; `None` when Redis did not answer).
/// An answer is reused, and a call joined, only by readers that see the same version.
pub type Version = (u64, Option<u64>);

/// The readers of one call in flight.
type Waiters<V> = Arc<Mutex<Vec<oneshot::Sender<ReadResult<V>>>>>;

struct Inner<K, V> {
    entries: HashMap<K, (Version, Fetched<V>)>,
    /// The call new readers of a key join, with the version it began at.
    flights: HashMap<K, (Version, Waiters<V>)>,
    /// Expired entries are swept when there are this many (amortised: twice what a sweep left),
    /// or when the last sweep is `cache_ms` old (so a burst's entries go even if no more come).
    sweep_at: usize,
    swept: Instant,
}

/// Calls in flight and recent answers, by key.
pub struct Memo<K, V> {
    cache_for: Duration,
    inner: Arc<Mutex<Inner<K, V>>>,
}

impl<K, V> std::fmt::Debug for Memo<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.inner.lock();
        f.debug_struct("Memo")
            .field("entries", &inner.entries.len())
            .field("flights", &inner.flights.len())
            .finish()
    }
}

const MIN_SWEEP: usize = 64;

impl<K, V> Inner<K, V> {
    /// Drops aged answers once there are `sweep_at` of them, or once the last sweep is
    /// `cache_for` old: each sweep costs at most as many steps as entries were added since the
    /// last, or happens once per `cache_for`.
    fn sweep(&mut self, cache_for: Duration) {
        let due = self.entries.len() >= self.sweep_at
            || (!self.entries.is_empty() && self.swept.elapsed() >= cache_for);
        if due {
            self.entries
                .retain(|_, (_, e)| e.fetched.elapsed() < cache_for);
            self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP);
            self.swept = Instant::now();
        }
    }
}

impl<K, V> Memo<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    pub fn new(cache_for: Duration) -> Self {
        Self {
            cache_for,
            inner: Arc::new(Mutex::new(Inner {
                entries: HashMap::new(),
                flights: HashMap::new(),
                sweep_at: MIN_SWEEP,
                swept: Instant::now(),
            })),
        }
    }

    /// `key`'s answer at `version`: cached, from the call in flight, or from `fetch`, which runs
    /// as its own task (a reader that hangs up does not cancel it for the others). With no
    /// version (it could not be read) the reader gets a call of its own, neither reused nor kept.
    pub async fn get<F, Fut>(&self, key: K, version: Option<Version>, fetch: F) -> ReadResult<V>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ReadResult<V>> + Send + 'static,
    {
        let Some(version) = version else {
            return fetch().await;
        };
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut inner = self.inner.lock();
            inner.sweep(self.cache_for);
            if let Some((v, entry)) = inner.entries.get(&key)
                && *v == version
                && entry.fetched.elapsed() < self.cache_for
            {
                return Ok(entry.clone());
            }
            match inner.flights.get(&key) {
                Some((v, waiters)) if *v == version => {
                    waiters.lock().push(tx);
                    None
                }
                // None, or one that began before a change: new readers get a new call.
                _ => {
                    let waiters: Waiters<V> = Arc::new(Mutex::new(vec![tx]));
                    inner
                        .flights
                        .insert(key.clone(), (version, waiters.clone()));
                    Some(waiters)
                }
            }
        };
        if let Some(waiters) = lead {
            let mut landing = Landing {
                inner: self.inner.clone(),
                key: Some(key),
                version,
                waiters,
                started: Instant::now(),
                cache_for: self.cache_for,
                result: None,
            };
            let call = fetch();
            // In the trace of the request that leads the call (see `batch`).
            tokio::spawn(
                async move {
                    landing.answered(call.await);
                }
                .instrument(crate::telemetry::traces::call_span()),
            );
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                ProblemType::Internal,
                "the shared read failed",
            ))
        })
    }
}

/// A call's end, in `Drop` so that it also happens if the call panicked: the call is no longer
/// the one readers join, its answer is cached, and its readers are answered (a panic's readers
/// get an internal error rather than waiting for ever).
struct Landing<K: Eq + Hash, V: Clone> {
    inner: Arc<Mutex<Inner<K, V>>>,
    key: Option<K>,
    version: Version,
    waiters: Waiters<V>,
    started: Instant,
    cache_for: Duration,
    result: Option<ReadResult<V>>,
}

impl<K: Eq + Hash, V: Clone> Landing<K, V> {
    /// The call's answer, given to its readers when the landing is dropped.
    fn answered(&mut self, result: ReadResult<V>) {
        self.result = Some(result);
    }
}

impl<K: Eq + Hash, V: Clone> Drop for Landing<K, V> {
    fn drop(&mut self) {
        let key = self.key.take().expect("dropped once");
        let result = self.result.take().unwrap_or_else(|| {
            Err(ApiError::new(
                ProblemType::Internal,
                "the shared read failed",
            ))
        });
        {
            let mut inner = self.inner.lock();
            let current = inner
                .flights
                .get(&key)
                .is_some_and(|(_, w)| Arc::ptr_eq(w, &self.waiters));
            if current {
                inner.flights.remove(&key);
            }
            if let Ok(fetched) = &result
                && !self.cache_for.is_zero()
            {
                inner.sweep(self.cache_for);
                // Keep the newer answer: one fetched after this call began is at least as new.
                let newer_kept = inner
                    .entries
                    .get(&key)
                    .is_some_and(|(_, e)| e.fetched > self.started);
                if !newer_kept {
                    inner.entries.insert(key, (self.version, fetched.clone()));
                }
            }
        }
        for waiter in std::mem::take(&mut *self.waiters.lock()) {
            let _ = waiter.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn answer(value: u32) -> ReadResult<u32> {
        Ok(Fetched {
            value,
            fetched: Instant::now(),
            request_id: format!("call-{value}"),
        })
    }

    /// A fetch that counts its calls and answers after `delay`.
    fn counted(
        calls: &Arc<AtomicU32>,
        delay: Duration,
    ) -> impl Future<Output = ReadResult<u32>> + Send + 'static {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            tokio::time::sleep(delay).await;
            answer(n)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_readers_share_a_call_and_its_answer_is_reused_until_it_ages() {
        let memo = Memo::new(Duration::from_secs(1));
        let calls = Arc::new(AtomicU32::new(0));
        let delay = Duration::from_millis(100);
        let readers = (0..20).map(|_| memo.get("k", Some((0, None)), || counted(&calls, delay)));
        for read in futures_util::future::join_all(readers).await {
            assert_eq!(read.unwrap().value, 1);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_millis(800)).await;
        let cached = memo
            .get("k", Some((0, None)), || counted(&calls, delay))
            .await;
        assert_eq!(cached.unwrap().value, 1, "reused within cache_ms");
        tokio::time::advance(Duration::from_millis(300)).await;
        let aged = memo
            .get("k", Some((0, None)), || counted(&calls, delay))
            .await;
        assert_eq!(aged.unwrap().value, 2, "aged out: a new call");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_at_a_newer_version_neither_joins_an_older_call_nor_gets_its_answer() {
        let memo = Arc::new(Memo::new(Duration::from_secs(60)));
        let calls = Arc::new(AtomicU32::new(0));
        // A call at version 0 is under way when an allocation bumps the version.
        let old = {
            let (memo, calls) = (memo.clone(), calls.clone());
            tokio::spawn(async move {
                memo.get("k", Some((0, Some(0))), || {
                    counted(&calls, Duration::from_secs(2))
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let new = memo
            .get("k", Some((0, Some(1))), || {
                counted(&calls, Duration::from_millis(10))
            })
            .await;
        assert_eq!(new.unwrap().value, 2, "a call of its own");
        assert_eq!(
            old.await.unwrap().unwrap().value,
            1,
            "the old readers keep theirs"
        );
        // The older answer landed last but does not replace the newer one.
        let cached = memo
            .get("k", Some((0, Some(1))), || counted(&calls, Duration::ZERO))
            .await;
        assert_eq!(cached.unwrap().value, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Only a reader at the old version could use the old answer, and it was not kept.
        let stale = memo
            .get("k", Some((0, Some(0))), || counted(&calls, Duration::ZERO))
            .await;
        assert_eq!(stale.unwrap().value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_that_panics_fails_its_readers_and_the_next_reader_starts_anew() {
        let memo = Memo::<&str, u32>::new(Duration::from_secs(60));
        let panicking = || async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("a bug in a fetch");
        };
        let readers = (0..3).map(|_| memo.get("k", Some((0, None)), panicking));
        for read in futures_util::future::join_all(readers).await {
            let problem = read.unwrap_err();
            assert_eq!(problem.status, http::StatusCode::INTERNAL_SERVER_ERROR);
        }
        let calls = Arc::new(AtomicU32::new(0));
        let next = memo
            .get("k", Some((0, None)), || counted(&calls, Duration::ZERO))
            .await;
        assert_eq!(next.unwrap().value, 1, "not stuck behind the dead call");
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_without_a_version_neither_reuses_nor_joins_nor_leaves_its_answer() {
        let memo = Memo::new(Duration::from_secs(60));
        let calls = Arc::new(AtomicU32::new(0));
        let delay = Duration::from_millis(50);
        let first = memo.get("k", Some((0, None)), || counted(&calls, delay));
        assert_eq!(first.await.unwrap().value, 1);
        let unversioned = (0..2).map(|_| memo.get("k", None, || counted(&calls, delay)));
        let mut values: Vec<u32> = futures_util::future::join_all(unversioned)
            .await
            .into_iter()
            .map(|r| r.unwrap().value)
            .collect();
        values.sort();
        assert_eq!(values, [2, 3], "each its own call");
        let cached = memo.get("k", Some((0, None)), || counted(&calls, delay));
        assert_eq!(
            cached.await.unwrap().value,
            1,
            "their answers were not kept"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_answers_is_dropped_once_aged_even_if_no_more_come() {
        let memo = Memo::new(Duration::from_secs(1));
        let calls = Arc::new(AtomicU32::new(0));
        let burst =
            (0..100u32).map(|k| memo.get(k, Some((0, None)), || counted(&calls, Duration::ZERO)));
        futures_util::future::join_all(burst).await;
        assert_eq!(memo.inner.lock().entries.len(), 100);
        tokio::time::advance(Duration::from_secs(2)).await;
        // Only reads of what is already there; no new answer lands.
        memo.get(0, Some((0, None)), || counted(&calls, Duration::ZERO))
            .await
            .unwrap();
        assert!(
            memo.inner.lock().entries.len() <= 1,
            "the aged burst is gone"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_the_cache_off_answers_are_shared_but_never_reused() {
        let memo = Memo::new(Duration::ZERO);
        let calls = Arc::new(AtomicU32::new(0));
        let delay = Duration::from_millis(50);
        let readers = (0..5).map(|_| memo.get(1u64, Some((0, None)), || counted(&calls, delay)));
        futures_util::future::join_all(readers).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        memo.get(1, Some((0, None)), || counted(&calls, delay))
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
