//! Keeps every forwarded call within Tencent's per-action quota, counted where Tencent counts it:
//! at arrival, per wall-clock second.
//!
//! # Why no wall-clock second can hold more than N arrivals
//!
//! Each call reserves a slot in a log ([`log`]) that holds at most `n` slots in any window of
//! `1 s + guard`. The client ([`crate::tencent::client`]) first gets a connection that is open
//! and ready (connecting takes 0–300 ms to a distant TLS endpoint and must not happen between
//! the slot and the wire), then waits for its slot, then checks at departure that it is no more
//! than `quotas.departure_slack_ms` late; a call that is later gives its slot up (it stays used)
//! and reserves again. So call k leaves in `[S_k, S_k + slack]` and arrives `d_k` later, where
//! `d` varies by J. For calls k and k + n, `S_{k+n} ≥ S_k + 1 s + guard`, so
//!
//! `A_{k+n} − A_k ≥ 1 s + guard − slack − J`,
//!
//! which is at least one second, so the two never share a wall-clock second, as long as
//! `guard ≥ slack + J`. The guard is learned ([`guard`]): slack plus the measured variation of
//! the path, widened on a refusal that looks like jitter, bounded by `quotas.guard_min_ms` and
//! `quotas.guard_max_ms` (a path whose variation exceeds the ceiling is throttled by Tencent:
//! that ceiling is the one thing configuration must get right). With Redis the slot's position
//! on this replica's clock is known only within the Redis round trip, so a call departs no
//! earlier than `answer + wait` and counts its lateness from `request + wait`.
//!
//! `n` is the *effective* quota ([`learn`]): the configured one until Tencent's refusals show a
//! lower one. With Redis, `n` and the log are the fleet's, and replicas that may be cut off from
//! Redis keep a share the others do not use ([`fleet`]).
//!
//! [`Quotas`] holds each action's state and picks per call: the whole quota in-process (memory
//! store: one replica), the shared log in Redis, or, while Redis is unreachable, this replica's
//! share once the fleet has stopped counting on it.

pub mod fleet;
pub mod guard;
pub mod learn;
pub mod log;
pub mod shared;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::redis_link::RedisLink;
use fleet::{FleetTiming, Gate, Membership};
use guard::{GuardBounds, PathGuard};
use learn::{Learned, Outcomes, Shape, Verdict};
use shared::{Beat, Decision, ReserveArgs, SharedQuotas};

pub use log::{Refusal, Reservation, ReservationLog, Rule};

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

/// A granted slot, on this replica's clock.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    /// The call must not leave before this.
    pub not_before: Instant,
    /// The earliest instant the slot can be at; lateness is counted from here.
    pub origin: Instant,
    /// How late after `origin` the call may still leave.
    pub slack: Duration,
    /// How long the call waits for its slot.
    pub waited: Duration,
    pub kind: LimiterKind,
}

impl Ticket {
    /// Whether a call leaving at `now` still keeps the quota's promise.
    pub fn on_time(&self, now: Instant) -> bool {
        now >= self.not_before && now.saturating_duration_since(self.origin) <= self.slack
    }
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

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaError {
    /// The next slot is beyond the wait budget (429).
    Exceeded(QuotaExceeded),
    /// Redis is unreachable and this replica holds no share it may use (503).
    Unavailable { retry_after: Duration },
}

/// The settings the quota needs.
#[derive(Debug, Clone, Copy)]
pub struct QuotaConfig {
    pub guard: GuardBounds,
    /// `quotas.max_wait_ms`: how far ahead a slot may be (the fleet arithmetic needs it).
    pub max_wait: Duration,
    /// Additive increase: one more call per second after this long without a refusal.
    pub probe: Duration,
}

/// With Redis: how this replica takes part in the fleet.
#[derive(Debug, Clone, Copy)]
pub struct FleetConfig {
    pub heartbeat: Duration,
    pub lease: Duration,
    pub expected_replicas: u32,
}

/// One action's state.
#[derive(Debug)]
struct ActionQuota {
    configured: u32,
    learned: Mutex<Learned>,
    /// Answered calls whose second has not been judged yet.
    outcomes: Mutex<Outcomes>,
    /// The whole quota in-process (memory store).
    log: Mutex<ReservationLog>,
    /// This replica's share while Redis is unreachable.
    fallback: Mutex<ReservationLog>,
    /// For `/metrics`: the effective quota and the guard of the last reservation.
    effective: AtomicU32,
    guard_us: AtomicU64,
}

#[derive(Debug)]
struct FleetPart {
    quotas: SharedQuotas,
    id: String,
    membership: Mutex<Membership>,
    expected_replicas: u32,
}

/// Each upstream action's quota.
#[derive(Debug)]
pub struct Quotas {
    actions: HashMap<&'static str, ActionQuota>,
    /// Order of `actions` for heartbeats.
    names: Vec<&'static str>,
    epoch: Instant,
    path: Mutex<PathGuard>,
    config: QuotaConfig,
    fleet: Option<FleetPart>,
    metrics: Arc<Metrics>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Quotas {
    /// In-process limiters only: `limits` maps an action name to its configured calls per second.
    pub fn local(
        limits: &[(&'static str, u32)],
        config: QuotaConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self::build(limits, config, None, metrics)
    }

    /// Limiters in Redis, with a share per replica while Redis is unreachable.
    pub fn shared(
        limits: &[(&'static str, u32)],
        config: QuotaConfig,
        link: Arc<RedisLink>,
        fleet: FleetConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let timing = FleetTiming::new(
            fleet.heartbeat,
            fleet.lease,
            config.max_wait,
            Duration::from_micros(config.guard.max_us),
        );
        let part = FleetPart {
            quotas: SharedQuotas::new(link),
            id: uuid::Uuid::new_v4().simple().to_string(),
            membership: Mutex::new(Membership::new(timing)),
            expected_replicas: fleet.expected_replicas,
        };
        Self::build(limits, config, Some(part), metrics)
    }

    fn build(
        limits: &[(&'static str, u32)],
        config: QuotaConfig,
        fleet: Option<FleetPart>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let actions = limits
            .iter()
            .map(|&(action, limit)| {
                let quota = ActionQuota {
                    configured: limit,
                    learned: Mutex::new(Learned::new(limit)),
                    outcomes: Mutex::new(Outcomes::default()),
                    log: Mutex::new(ReservationLog::new(limit)),
                    fallback: Mutex::new(ReservationLog::new(limit)),
                    effective: AtomicU32::new(limit),
                    guard_us: AtomicU64::new(config.guard.max_us),
                };
                (action, quota)
            })
            .collect();
        Self {
            actions,
            names: limits.iter().map(|&(a, _)| a).collect(),
            epoch: Instant::now(),
            path: Mutex::new(PathGuard::new(config.guard)),
            config,
            fleet,
            metrics,
        }
    }

    fn now_us(&self) -> u64 {
        Instant::now().duration_since(self.epoch).as_micros() as u64
    }

    fn action(&self, action: &str) -> &ActionQuota {
        self.actions
            .get(action)
            .unwrap_or_else(|| panic!("no quota configured for {action}"))
    }

    fn slack(&self) -> Duration {
        Duration::from_micros(self.config.guard.slack_us)
    }

    /// The guard a reservation made now uses.
    pub fn guard(&self) -> Duration {
        Duration::from_micros(lock(&self.path).guard_us(self.now_us()))
    }

    /// Reserves a slot for `action` at most `max_wait` away, or refuses at once. The caller waits
    /// for [`Ticket::not_before`] itself (after making its connection ready).
    ///
    /// # Panics
    /// When `action` has no configured quota: every action the client sends is registered at start.
    pub async fn reserve(
        &self,
        action: &'static str,
        max_wait: Duration,
    ) -> Result<Ticket, QuotaError> {
        let quota = self.action(action);
        let guard_us = lock(&self.path).guard_us(self.now_us());
        let Some(fleet) = &self.fleet else {
            let limit = {
                let mut learned = lock(&quota.learned);
                learned.tick(self.now_us(), self.config.probe.as_micros() as u64);
                learned.effective
            };
            quota.effective.store(limit, Ordering::Relaxed);
            quota.guard_us.store(guard_us, Ordering::Relaxed);
            let rule = Rule {
                limit,
                window_us: 1_000_000 + guard_us,
            };
            return self.reserve_in(&quota.log, rule, max_wait, LimiterKind::Local);
        };
        let timing = lock(&fleet.membership).timing();
        let asked = Instant::now();
        let args = ReserveArgs {
            configured: quota.configured,
            guard_us,
            max_wait,
            stale: timing.stale,
            expire: timing.lease + timing.max_wait + timing.max_window + Duration::from_secs(1),
            now_us: None,
        };
        match fleet.quotas.reserve(action, args).await {
            Ok(Decision::Admitted {
                wait_us, window_us, ..
            }) => {
                let answered = Instant::now();
                let wait = Duration::from_micros(wait_us);
                quota
                    .guard_us
                    .store(window_us.saturating_sub(1_000_000), Ordering::Relaxed);
                Ok(Ticket {
                    not_before: answered + wait,
                    origin: asked + wait,
                    slack: self.slack(),
                    waited: wait + (answered - asked),
                    kind: LimiterKind::Shared,
                })
            }
            Ok(Decision::Refused {
                retry_after_us,
                limit,
            }) => Err(QuotaError::Exceeded(QuotaExceeded {
                limit: if limit == 0 { quota.configured } else { limit },
                retry_after: Duration::from_micros(retry_after_us),
            })),
            Err(_) => {
                self.metrics.quota_fallback(action);
                let now = Instant::now();
                let gate = lock(&fleet.membership).gate(action, now);
                match gate {
                    Gate::NotYet(retry_after) => Err(QuotaError::Exceeded(QuotaExceeded {
                        limit: quota.configured,
                        retry_after,
                    })),
                    Gate::Share(0) | Gate::Closed => Err(QuotaError::Unavailable {
                        retry_after: timing.heartbeat.max(Duration::from_secs(1)),
                    }),
                    Gate::Share(share) => {
                        let rule = Rule {
                            limit: share,
                            window_us: 1_000_000 + guard_us,
                        };
                        let ticket = self.reserve_in(
                            &quota.fallback,
                            rule,
                            max_wait,
                            LimiterKind::Fallback,
                        )?;
                        lock(&fleet.membership).fallback_used(Instant::now());
                        Ok(ticket)
                    }
                }
            }
        }
    }

    fn reserve_in(
        &self,
        log: &Mutex<ReservationLog>,
        rule: Rule,
        max_wait: Duration,
        kind: LimiterKind,
    ) -> Result<Ticket, QuotaError> {
        let reservation = lock(log)
            .reserve(self.now_us(), max_wait.as_micros() as u64, rule)
            .map_err(|r| {
                QuotaError::Exceeded(QuotaExceeded {
                    limit: rule.limit,
                    retry_after: Duration::from_micros(r.retry_after_us),
                })
            })?;
        let at = self.epoch + Duration::from_micros(reservation.slot_us);
        Ok(Ticket {
            not_before: at,
            origin: at,
            slack: self.slack(),
            waited: Duration::from_micros(reservation.wait_us),
            kind,
        })
    }

    /// A round trip to Tencent measured on an open connection.
    pub fn observe_round_trip(&self, rtt: Duration) {
        let now = self.now_us();
        lock(&self.path).observe(now, rtt.as_micros() as u64);
    }

    /// Tencent answered a call of `action` that arrived at about `arrival_ms` (Unix ms, this
    /// replica's clock), refusing it with `RequestLimitExceeded` or not. Judges the seconds that
    /// are over (see [`learn`]): interleaved refusals widen the guard, suffixes may lower the
    /// effective quota. Returns what changed, for tests.
    pub async fn outcome(
        &self,
        action: &'static str,
        arrival_ms: u64,
        refused: bool,
        now_ms: u64,
    ) -> Vec<Verdict> {
        let quota = self.action(action);
        let shapes = {
            let mut outcomes = lock(&quota.outcomes);
            outcomes.record(arrival_ms, refused);
            outcomes.judge(now_ms)
        };
        let mut verdicts = Vec::new();
        for shape in shapes {
            let now = self.now_us();
            match shape {
                Shape::Interleaved => {
                    let guard = {
                        let mut path = lock(&self.path);
                        path.widen(now);
                        path.guard_us(now)
                    };
                    tracing::warn!(
                        action,
                        guard_ms = guard / 1000,
                        "Tencent refused a call although a later one in the same second passed: jitter (or another user of the account); widening the guard"
                    );
                }
                Shape::Suffix { admitted, refused } => {
                    let verdict = self.suffix(action, quota, admitted, refused, now).await;
                    if let Verdict::Lowered { from, to } = verdict {
                        tracing::warn!(
                            action,
                            configured = quota.configured,
                            admitted_in_second = admitted,
                            refused_in_second = refused,
                            previous = from,
                            observed = to,
                            "Tencent admits fewer calls per second than configured; lowering the effective quota"
                        );
                    }
                    verdicts.push(verdict);
                }
            }
        }
        verdicts
    }

    async fn suffix(
        &self,
        action: &'static str,
        quota: &ActionQuota,
        admitted: u32,
        refused: u32,
        now: u64,
    ) -> Verdict {
        let probe = self.config.probe;
        let local = || {
            let mut learned = lock(&quota.learned);
            let verdict = learned.suffix(now, admitted, refused, probe.as_micros() as u64);
            quota.effective.store(learned.effective, Ordering::Relaxed);
            verdict
        };
        match &self.fleet {
            None => local(),
            Some(fleet) => match fleet
                .quotas
                .suffix(action, quota.configured, admitted, refused, probe, None)
                .await
            {
                Ok((verdict, n)) => {
                    quota.effective.store(n, Ordering::Relaxed);
                    verdict
                }
                Err(_) => local(),
            },
        }
    }

    /// Writes each action's effective quota and guard to `/metrics`.
    pub fn export(&self) {
        for (name, quota) in &self.actions {
            self.metrics.quota_state(
                name,
                quota.configured,
                quota.effective.load(Ordering::Relaxed),
                Duration::from_micros(quota.guard_us.load(Ordering::Relaxed)),
            );
        }
    }

    /// With Redis: announces this replica every heartbeat, forever.
    pub async fn run_heartbeat(self: Arc<Self>) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        let every = lock(&fleet.membership).timing().heartbeat;
        loop {
            self.beat(fleet).await;
            tokio::time::sleep(every).await;
        }
    }

    async fn beat(&self, fleet: &FleetPart) {
        let sent = Instant::now();
        let (fallback_recent, timing, held) = {
            let mut m = lock(&fleet.membership);
            let recent = m.beat_started(sent);
            let held: Vec<_> = self
                .names
                .iter()
                .map(|a| (*a, self.actions[a].configured, m.share(a)))
                .collect();
            (recent, m.timing(), held)
        };
        let (guard_us, rtt_lo_us) = {
            let mut path = lock(&self.path);
            (path.guard_us(self.now_us()), path.rtt_lo_us())
        };
        let beat = Beat {
            id: &fleet.id,
            guard_us,
            rtt_lo_us,
            fallback_recent,
            stale: timing.stale,
            expire: timing.lease + timing.max_wait + timing.max_window + Duration::from_secs(1),
            hold: timing.max_wait + timing.max_window,
            probe: self.config.probe,
            expected_replicas: fleet.expected_replicas,
            actions: &held,
            now_us: None,
        };
        match fleet.quotas.heartbeat(&beat).await {
            Ok((live, answer)) => {
                let reply = Instant::now();
                self.metrics.fleet_replicas(live);
                let shares: Vec<_> = self
                    .names
                    .iter()
                    .zip(&answer)
                    .map(|(a, &(share, n))| {
                        self.actions[a].effective.store(n, Ordering::Relaxed);
                        self.metrics.quota_share(a, share);
                        (*a, share)
                    })
                    .collect();
                lock(&fleet.membership).beat_answered(sent, reply, shares);
            }
            Err(_) => lock(&fleet.membership).beat_failed(),
        }
    }

    /// With Redis: gives this replica's shares back (graceful shutdown).
    pub async fn leave(&self) {
        if let Some(fleet) = &self.fleet {
            let _ = fleet.quotas.leave(&fleet.id, &self.names).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn quotas(n: u32, guard_ms: u64) -> Quotas {
        let us = guard_ms * 1000;
        Quotas::local(
            &[("A", n)],
            QuotaConfig {
                guard: GuardBounds {
                    min_us: us,
                    max_us: us,
                    slack_us: 0,
                },
                max_wait: Duration::from_secs(2),
                probe: Duration::from_secs(30),
            },
            Arc::new(Metrics::new()),
        )
    }

    /// Reserves and waits for the slot, as the client does (minus the connection).
    async fn acquire(q: &Quotas, max_wait: Duration) -> Result<Duration, QuotaExceeded> {
        match q.reserve("A", max_wait).await {
            Ok(ticket) => {
                tokio::time::sleep_until(ticket.not_before).await;
                assert!(ticket.on_time(Instant::now()));
                Ok(ticket.waited)
            }
            Err(QuotaError::Exceeded(e)) => Err(e),
            Err(other) => panic!("{other:?}"),
        }
    }

    /// 10×N concurrent callers on a paused clock: the first N are admitted without time passing,
    /// the rest in arrival order one window apart, and those beyond the budget are refused at once
    /// with a Retry-After that admits them when obeyed.
    #[tokio::test(start_paused = true)]
    async fn ten_times_n_concurrent_callers() {
        const N: u32 = 5;
        let limiter = Arc::new(quotas(N, 0));
        let start = Instant::now();
        let max_wait = Duration::from_millis(3_500);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for i in 0..10 * N {
            let limiter = limiter.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let result = acquire(&limiter, max_wait).await;
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
                Ok(waited) => admitted.push((i, at, waited)),
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
        let limiter = quotas(1, 0);
        acquire(&limiter, Duration::ZERO).await.unwrap();
        let refused = acquire(&limiter, Duration::ZERO).await.unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        tokio::time::advance(Duration::from_secs(refused.retry_after_secs())).await;
        assert_eq!(
            acquire(&limiter, Duration::ZERO).await.unwrap(),
            Duration::ZERO
        );
    }

    /// A slot is good only if the call leaves within the slack after it.
    #[tokio::test(start_paused = true)]
    async fn a_late_departure_is_not_on_time() {
        let q = Quotas::local(
            &[("A", 1)],
            QuotaConfig {
                guard: GuardBounds {
                    min_us: 30_000,
                    max_us: 30_000,
                    slack_us: 20_000,
                },
                max_wait: Duration::from_secs(2),
                probe: Duration::from_secs(30),
            },
            Arc::new(Metrics::new()),
        );
        let ticket = q.reserve("A", Duration::ZERO).await.unwrap();
        assert!(ticket.on_time(Instant::now()));
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(ticket.on_time(Instant::now()));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!ticket.on_time(Instant::now()));
    }

    /// Tencent enforcing 1/s where 20 are configured: each second's refusals form a suffix, the
    /// effective quota comes down to 1, and the limiter then admits one call per window. A
    /// refusal followed by an admitted call in its second widens the guard instead.
    #[tokio::test(start_paused = true)]
    async fn suffixes_lower_the_effective_quota_and_interleaving_widens_the_guard() {
        let q = quotas(20, 0);
        let second = 1_000_000u64;
        for i in 0..20 {
            q.outcome("A", second * 1000 + i, i > 0, second * 1000 + i)
                .await;
        }
        let later = (second + 2) * 1000;
        let verdicts = q.outcome("A", later, false, later).await;
        assert_eq!(verdicts, vec![Verdict::Lowered { from: 20, to: 1 }]);
        q.export();
        let text = q.metrics.render();
        assert!(
            text.contains("gateway_quota_effective{tencent_action=\"A\"} 1"),
            "{text}"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        acquire(&q, Duration::ZERO).await.unwrap();
        assert!(acquire(&q, Duration::ZERO).await.is_err());

        let jittery = Quotas::local(
            &[("A", 20)],
            QuotaConfig {
                guard: GuardBounds {
                    min_us: 0,
                    max_us: 250_000,
                    slack_us: 0,
                },
                max_wait: Duration::from_secs(2),
                probe: Duration::from_secs(30),
            },
            Arc::new(Metrics::new()),
        );
        for i in 0..guard::MIN_SAMPLES {
            jittery.observe_round_trip(Duration::from_millis(5 + i as u64 % 2));
        }
        let before = jittery.guard();
        jittery.outcome("A", 5_000, true, 5_000).await;
        jittery.outcome("A", 5_001, false, 5_001).await;
        assert!(jittery.outcome("A", 9_000, false, 9_000).await.is_empty());
        assert!(
            jittery.guard() > before,
            "{:?} → {:?}",
            before,
            jittery.guard()
        );
        assert_eq!(jittery.actions["A"].effective.load(Ordering::Relaxed), 20);
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
