//! Keeps every forwarded call within Tencent's per-action quota.
//!
//! [`log`] holds the pure reservation arithmetic; [`LocalLimiter`] runs it in-process on tokio's
//! clock (so tests can pause time); [`shared::SharedLimiter`] runs the same algorithm in Redis for
//! the whole fleet. [`Quotas`] holds each action's limiters and picks one per call: the shared one
//! while Redis answers, otherwise this replica's local share (quota ÷ `store.expected_replicas`).

pub mod log;
pub mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metrics::Metrics;
use crate::redis_link::RedisLink;
use shared::{Decision, SharedLimiter};

use tokio::time::Instant;

pub use log::{Refusal, Reservation, ReservationLog};

/// The quota of one action: how many calls per second, and the limiter that enforces it.
#[derive(Debug)]
pub struct LocalLimiter {
    epoch: Instant,
    log: Mutex<ReservationLog>,
}

/// What a caller learns when the limiter admits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// How long the call waited for its slot.
    pub waited: Duration,
}

/// Which limiter took a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimiterKind {
    /// In-process, the whole quota (memory store: one replica).
    Local,
    /// Redis, shared by the fleet.
    Shared,
    /// In-process at this replica's share, while Redis is unreachable.
    Fallback,
}

/// Why a call was not admitted, with what the `Retry-After` and `RateLimit` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub limit: u32,
    pub retry_after: Duration,
}

impl QuotaExceeded {
    /// Whole seconds for `Retry-After`, rounded up so a caller that obeys it is admitted.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_micros().div_ceil(1_000_000).max(1) as u64
    }
}

impl LocalLimiter {
    /// `limit` calls per rolling `1 s + guard`.
    pub fn new(limit: u32, guard: Duration) -> Self {
        let window = Duration::from_secs(1) + guard;
        Self {
            epoch: Instant::now(),
            log: Mutex::new(ReservationLog::new(limit, window.as_micros() as u64)),
        }
    }

    fn now_us(&self) -> u64 {
        Instant::now().duration_since(self.epoch).as_micros() as u64
    }

    /// Reserves a slot at most `max_wait` away and sleeps until it; refuses at once otherwise.
    /// Dropping the returned future after the reservation keeps the slot used (conservative).
    pub async fn acquire(&self, max_wait: Duration) -> Result<Admission, QuotaExceeded> {
        let reservation = {
            let mut log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            let limit = log.limit();
            log.reserve(self.now_us(), max_wait.as_micros() as u64)
                .map_err(|r| QuotaExceeded {
                    limit,
                    retry_after: Duration::from_micros(r.retry_after_us),
                })?
        };
        if reservation.wait_us > 0 {
            tokio::time::sleep_until(self.epoch + Duration::from_micros(reservation.slot_us)).await;
        }
        Ok(Admission {
            waited: Duration::from_micros(reservation.wait_us),
        })
    }
}

/// The limiters of one action.
#[derive(Debug)]
struct ActionQuota {
    limit: u32,
    /// The whole quota (memory store) or this replica's share (Redis fallback).
    local: LocalLimiter,
    shared: Option<SharedLimiter>,
}

/// Each upstream action's quota.
#[derive(Debug)]
pub struct Quotas {
    actions: HashMap<&'static str, ActionQuota>,
    metrics: Arc<Metrics>,
}

impl Quotas {
    /// In-process limiters only: `limits` maps an action name to its calls per second.
    pub fn local(limits: &[(&'static str, u32)], guard: Duration, metrics: Arc<Metrics>) -> Self {
        let actions = limits
            .iter()
            .map(|&(action, limit)| {
                let quota = ActionQuota {
                    limit,
                    local: LocalLimiter::new(limit, guard),
                    shared: None,
                };
                (action, quota)
            })
            .collect();
        Self { actions, metrics }
    }

    /// Limiters in Redis, each with a local fallback at `limit / replicas` (at least 1).
    pub fn shared(
        limits: &[(&'static str, u32)],
        guard: Duration,
        link: Arc<RedisLink>,
        replicas: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        let window = Duration::from_secs(1) + guard;
        let actions = limits
            .iter()
            .map(|&(action, limit)| {
                let quota = ActionQuota {
                    limit,
                    local: LocalLimiter::new(fallback_share(limit, replicas), guard),
                    shared: Some(SharedLimiter::new(link.clone(), action, limit, window)),
                };
                (action, quota)
            })
            .collect();
        Self { actions, metrics }
    }

    /// Reserves a slot for `action` at most `max_wait` away and waits for it, or refuses at once.
    ///
    /// # Panics
    /// When `action` has no configured quota: every action the client sends is registered at start.
    pub async fn acquire(
        &self,
        action: &'static str,
        max_wait: Duration,
    ) -> Result<(Admission, LimiterKind), QuotaExceeded> {
        let quota = self
            .actions
            .get(action)
            .unwrap_or_else(|| panic!("no quota configured for {action}"));
        let Some(shared) = &quota.shared else {
            return quota
                .local
                .acquire(max_wait)
                .await
                .map(|a| (a, LimiterKind::Local));
        };
        match shared.decide(max_wait, None).await {
            Ok(Decision::Admitted { wait_us, .. }) => {
                let waited = Duration::from_micros(wait_us);
                if !waited.is_zero() {
                    tokio::time::sleep(waited).await;
                }
                Ok((Admission { waited }, LimiterKind::Shared))
            }
            Ok(Decision::Refused { retry_after_us }) => Err(QuotaExceeded {
                limit: quota.limit,
                retry_after: Duration::from_micros(retry_after_us),
            }),
            Err(_) => {
                self.metrics.quota_fallback(action);
                quota
                    .local
                    .acquire(max_wait)
                    .await
                    .map(|a| (a, LimiterKind::Fallback))
                    .map_err(|e| QuotaExceeded {
                        limit: quota.limit,
                        ..e
                    })
            }
        }
    }
}

/// One replica's share of `limit` among `replicas`: rounded down so the fleet stays within the
/// quota, but at least 1 so every replica can still make progress.
pub fn fallback_share(limit: u32, replicas: u32) -> u32 {
    (limit / replicas.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// 10×N concurrent callers on a paused clock: the first N are admitted without time passing,
    /// the rest in arrival order one window apart, and those beyond the budget are refused at once
    /// with a Retry-After that admits them when obeyed.
    #[tokio::test(start_paused = true)]
    async fn ten_times_n_concurrent_callers() {
        const N: u32 = 5;
        let limiter = Arc::new(LocalLimiter::new(N, Duration::ZERO));
        let start = Instant::now();
        let max_wait = Duration::from_millis(3_500);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..10 * N {
            let limiter = limiter.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let result = limiter.acquire(max_wait).await;
                tx.send((i, Instant::now() - start, result)).unwrap();
            }));
            // Let each task reserve before the next is spawned, so arrival order is i.
            tokio::task::yield_now().await;
        }
        drop(tx);
        for t in tasks {
            t.await.unwrap();
        }
        let mut admitted = Vec::new();
        let mut refused = Vec::new();
        while let Some((i, at, result)) = rx.recv().await {
            match result {
                Ok(a) => admitted.push((i, at, a.waited)),
                Err(e) => refused.push((i, at, e)),
            }
        }
        // Burst: the first N went at once.
        let burst: Vec<_> = admitted.iter().filter(|(_, at, _)| at.is_zero()).collect();
        assert_eq!(burst.len(), N as usize);
        assert!(burst.iter().all(|(i, _, w)| *i < N && w.is_zero()));
        // Budget of 3.5 s: slots at 0, 1, 2, 3 s → 4N admitted, the rest refused immediately.
        assert_eq!(admitted.len(), 4 * N as usize);
        assert_eq!(refused.len(), 6 * N as usize);
        assert!(refused.iter().all(|(_, at, _)| at.is_zero()));
        // FIFO: completion order follows arrival order.
        let order: Vec<u32> = admitted.iter().map(|(i, _, _)| *i).collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(order, sorted);
        // Each second got exactly N.
        for (k, chunk) in admitted.chunks(N as usize).enumerate() {
            assert!(
                chunk
                    .iter()
                    .all(|(_, at, _)| *at == Duration::from_secs(k as u64))
            );
        }
        // Retry-After: the next free slot is at 4 s, 0.5 s past the budget → 1 s, rounded up.
        assert!(
            refused
                .iter()
                .all(|(_, _, e)| e.retry_after_secs() == 1 && e.limit == N)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn obeying_retry_after_gets_admitted() {
        let limiter = LocalLimiter::new(1, Duration::ZERO);
        limiter.acquire(Duration::ZERO).await.unwrap();
        let refused = limiter.acquire(Duration::ZERO).await.unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(refused.retry_after_secs())).await;
        assert_eq!(
            limiter.acquire(Duration::ZERO).await.unwrap().waited,
            Duration::ZERO
        );
    }

    #[test]
    fn the_fallback_share_keeps_the_fleet_within_the_quota() {
        assert_eq!(fallback_share(20, 3), 6);
        assert_eq!(fallback_share(5, 3), 1);
        assert_eq!(
            fallback_share(5, 10),
            1,
            "every replica keeps at least one call per second"
        );
        assert_eq!(fallback_share(5, 1), 5);
        assert_eq!(fallback_share(5, 0), 5);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let e = |us| QuotaExceeded {
            limit: 1,
            retry_after: Duration::from_micros(us),
        };
        assert_eq!(e(1).retry_after_secs(), 1);
        assert_eq!(e(1_000_000).retry_after_secs(), 1);
        assert_eq!(e(1_000_001).retry_after_secs(), 2);
    }
}
