//! [`Keys`]: beginning and finishing the work of one idempotency key in the store.

use std::collections::HashMap;
use std::sync::Arc;

use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::problem::{ApiError, ProblemType};
use crate::store::{KeyState, NewKey, Retention, Store, StoreError, StoredResponse, Swap};

/// How long after its start an `InFlight` record is presumed abandoned, beyond the request
/// timeout: the outer timeout's grace and a margin for clock differences between replicas.
const ABANDON_MARGIN_MS: u64 = 5_000;
/// Claims whose create answer was lost are remembered at most this many at once.
const MAX_UNSENT: usize = 10_000;

/// What a key's record says to do.
#[derive(Debug)]
pub enum Begin {
    /// The key is ours (this is our `InFlight` record): send, then [`Keys::finish`].
    Send(KeyState),
    /// Answered before: replay this.
    Replay(StoredResponse),
    /// An allocation whose outcome is unknown: settle it first.
    Settle(KeyState),
    /// An `InFlight` record older than any request can live: its replica died mid-request.
    Abandoned { record: KeyState, started_ms: u64 },
}

/// The idempotency keys of one gateway: the store and the rules of a key's life.
#[derive(Debug)]
pub struct Keys {
    clock: SharedClock,
    metrics: Arc<Metrics>,
    ttl: Duration,
    abandoned_after_ms: u64,
    /// Our claims whose create may or may not have happened (the answer was lost) and that
    /// were never sent: a later request with the key may take them over at once.
    unsent: Mutex<HashMap<String, (KeyState, u64)>>,
}

pub fn store_problem(error: StoreError) -> ApiError {
    tracing::error!(%error, "idempotency store failed");
    let detail = match error {
        StoreError::Full => {
            "the idempotency store is full (idempotency.max_entries); nothing was sent"
        }
        StoreError::Unavailable(_) => "the idempotency store is unavailable; nothing was sent",
    };
    ApiError::new(ProblemType::StoreUnavailable, detail).retry_after(1)
}

impl Keys {
    pub fn new(
        clock: SharedClock,
        metrics: Arc<Metrics>,
        ttl: Duration,
        request_timeout_ms: u64,
    ) -> Self {
        Self {
            clock,
            metrics,
            ttl,
            abandoned_after_ms: request_timeout_ms + ABANDON_MARGIN_MS,
            unsent: Mutex::new(HashMap::new()),
        }
    }

    /// How long after its start an `InFlight` record is presumed abandoned.
    pub fn abandoned_after_ms(&self) -> u64 {
        self.abandoned_after_ms
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    pub fn in_use(&self, route: &'static str) -> ApiError {
        self.metrics.idempotency(route, "in_flight");
        ApiError::new(
            ProblemType::IdempotencyKeyInUse,
            "a request with this Idempotency-Key is still being processed",
        )
        .retry_after(1)
    }

    fn in_flight(&self, fingerprint: &str) -> KeyState {
        KeyState::InFlight {
            fingerprint: fingerprint.to_owned(),
            started_ms: self.now_ms(),
            claim: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    fn unsent(&self) -> parking_lot::MutexGuard<'_, HashMap<String, (KeyState, u64)>> {
        self.unsent.lock()
    }

    /// Claims `scoped` for a request with `fingerprint`, or says what its record holds.
    pub async fn begin(
        &self,
        store: &Store,
        route: &'static str,
        scoped: &str,
        fingerprint: &str,
        retention: Retention,
    ) -> Result<Begin, ApiError> {
        let in_flight = self.in_flight(fingerprint);
        let existing = match store
            .create(NewKey {
                key: scoped,
                state: in_flight.clone(),
                ttl: self.ttl,
                retention,
            })
            .await
        {
            Ok(Ok(())) => {
                self.metrics.idempotency(route, "new");
                return Ok(Begin::Send(in_flight));
            }
            Ok(Err(existing)) => existing,
            Err(StoreError::Unavailable(cause)) => {
                // The create may have happened although its answer was lost: read it back.
                return match store.get(scoped).await {
                    Ok(Some(found)) if found == in_flight => {
                        self.metrics.idempotency(route, "new");
                        Ok(Begin::Send(in_flight))
                    }
                    Ok(_) => Err(store_problem(StoreError::Unavailable(cause))),
                    Err(error) => {
                        // Unknown: remember it, so that if it was created, a retry reaching
                        // this replica takes it over at once instead of waiting it out.
                        let mut unsent = self.unsent();
                        if unsent.len() < MAX_UNSENT {
                            unsent.insert(scoped.to_owned(), (in_flight, self.now_ms()));
                        }
                        Err(store_problem(error))
                    }
                };
            }
            Err(error) => return Err(store_problem(error)),
        };
        if existing.fingerprint() != fingerprint {
            self.metrics.idempotency(route, "mismatch");
            return Err(ApiError::new(
                ProblemType::IdempotencyKeyReused,
                "this Idempotency-Key was used for a different request; use a new key for a new intent",
            ));
        }
        match existing {
            KeyState::InFlight { .. }
                if self.unsent().get(scoped).map(|(r, _)| r) == Some(&existing) =>
            {
                // Ours, and never sent: take it.
                self.unsent().remove(scoped);
                self.take(store, route, scoped, &existing)
                    .await
                    .map(Begin::Send)
            }
            KeyState::InFlight { started_ms, .. }
                if self.now_ms() > started_ms + self.abandoned_after_ms =>
            {
                self.metrics.idempotency(route, "abandoned");
                tracing::warn!("taking over an idempotency key whose request never finished");
                Ok(Begin::Abandoned {
                    record: existing,
                    started_ms,
                })
            }
            KeyState::InFlight { .. } => Err(self.in_use(route)),
            KeyState::Completed { response, .. } => {
                self.metrics.idempotency(route, "replayed");
                Ok(Begin::Replay(response))
            }
            KeyState::Unknown { .. } => Ok(Begin::Settle(existing)),
            KeyState::Retryable { .. } => self
                .take(store, route, scoped, &existing)
                .await
                .map(Begin::Send),
        }
    }

    /// Turns `existing` (known not to have been applied, or ours and never sent) into a new
    /// `InFlight` record of ours, if nobody else did first.
    pub async fn take(
        &self,
        store: &Store,
        route: &'static str,
        scoped: &str,
        existing: &KeyState,
    ) -> Result<KeyState, ApiError> {
        let in_flight = self.in_flight(existing.fingerprint());
        if store
            .replace(self.swap(scoped, existing, in_flight.clone()))
            .await
            .map_err(store_problem)?
        {
            self.metrics.idempotency(route, "resent");
            Ok(in_flight)
        } else {
            Err(self.in_use(route))
        }
    }

    /// The compare-and-set of `key` from `expected` to `new`, kept for the key's lifetime.
    fn swap<'a>(&self, key: &'a str, expected: &'a KeyState, new: KeyState) -> Swap<'a> {
        Swap {
            key,
            expected,
            new,
            ttl: self.ttl,
        }
    }

    /// Replaces `expected` by `new` (compare-and-set); false when the record changed meanwhile.
    pub async fn replace(
        &self,
        store: &Store,
        scoped: &str,
        expected: &KeyState,
        new: KeyState,
    ) -> Result<bool, StoreError> {
        store.replace(self.swap(scoped, expected, new)).await
    }

    /// Settles our `InFlight` record: `Some(record)` replaces it, `None` forgets the key.
    pub async fn finish(
        &self,
        store: &Store,
        scoped: &str,
        in_flight: &KeyState,
        outcome: Option<KeyState>,
    ) {
        let result = match outcome {
            Some(record) => store.replace(self.swap(scoped, in_flight, record)).await,
            None => store.remove(scoped, in_flight).await,
        };
        match result {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("an idempotency record changed under its own request; left as it is")
            }
            Err(error) => {
                tracing::error!(%error, "cannot settle an idempotency record; it stays in flight until taken over")
            }
        }
    }

    /// Forgets remembered unsent claims old enough to count as abandoned anyway (called by the
    /// upkeep task).
    pub fn prune(&self) {
        let now = self.now_ms();
        let after = self.abandoned_after_ms;
        self.unsent()
            .retain(|_, (_, since)| now.saturating_sub(*since) < after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::MemoryStore;
    use std::sync::atomic::Ordering;

    fn keys() -> (Keys, Store, Arc<MemoryStore>) {
        let clock = ManualClock::at(1_000_000);
        let memory = Arc::new(MemoryStore::new(clock.clone(), 100));
        let keys = Keys::new(
            clock,
            Arc::new(Metrics::new()),
            Duration::from_secs(60),
            30_000,
        );
        (keys, Store::Memory(memory.clone()), memory)
    }

    #[tokio::test]
    async fn a_create_whose_answer_was_lost_is_read_back_not_assumed() {
        let (keys, store, memory) = keys();
        memory.faults.lose_answers.store(1, Ordering::SeqCst);
        // The record was written, the answer lost: reading it back shows it is ours.
        let begun = keys
            .begin(&store, "credit", "k1", "fp", Retention::Keep)
            .await
            .unwrap();
        assert!(matches!(begun, Begin::Send(_)), "{begun:?}");
    }

    #[tokio::test]
    async fn a_lost_create_that_cannot_be_read_back_does_not_stall_the_retry() {
        let (keys, store, memory) = keys();
        memory.faults.lose_answers.store(1, Ordering::SeqCst);
        memory.faults.fail_reads.store(1, Ordering::SeqCst);
        let first = keys
            .begin(&store, "credit", "k1", "fp", Retention::Keep)
            .await
            .unwrap_err();
        assert_eq!(first.kind, ProblemType::StoreUnavailable);
        // The phantom in-flight record exists, but it is known never to have been sent: the
        // retry takes it over at once instead of getting 409 until it is abandoned.
        let retry = keys
            .begin(&store, "credit", "k1", "fp", Retention::Keep)
            .await
            .unwrap();
        assert!(matches!(retry, Begin::Send(_)), "{retry:?}");
        // Someone else's in-flight record is still respected.
        let other = keys
            .begin(&store, "credit", "k1", "fp", Retention::Keep)
            .await
            .unwrap_err();
        assert_eq!(other.kind, ProblemType::IdempotencyKeyInUse);
    }
}
