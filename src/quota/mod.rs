//! Keeps every forwarded call within Tencent's per-action quota, counted where Tencent counts it:
//! at arrival, per wall-clock second.
//!
//! # Why no wall-clock second can hold more than N arrivals
//!
//! Each call reserves a slot in a log ([`reservations`]) that holds at most `n` slots in any window of
//! `1 s + guard`. The client ([`crate::tencent::client`]) takes an idle kept-alive connection if
//! there is one; if not, it reserves a slot no sooner than the time a new connection takes
//! ([`crate::tencent::wire::Wire::lead`]) and connects while it waits, so connecting (0–300 ms to
//! a distant TLS endpoint) never happens between the slot and the wire; between them there is
//! only signing (about a microsecond) and the write. At the slot the call checks that it is no more than the slack late; a call
//! that is later gives its slot up (it stays used) and reserves again. So call k leaves in
//! `[S_k, S_k + slack]` and arrives `d_k` later, where `d` varies by J. For calls k and k + n,
//! `S_{k+n} ≥ S_k + 1 s + guard`, so
//!
//! `A_{k+n} − A_k ≥ 1 s + guard − slack − J`,
//!
//! which is at least one second, so the two never share a wall-clock second, as long as
//! `guard ≥ slack + J`. Both terms are learned per action ([`guard`]): the slack from how late
//! the host wakes departing calls, J from the spread of round trips measured on open connections
//! (which includes the time between the departure check and the bytes leaving, in hyper's
//! connection task), widened on a refusal that looks like jitter, bounded by
//! `quotas.guard_min_ms` and `quotas.guard_max_ms`. J is estimated from the 95th percentile of
//! round trips, not their maximum: a call delayed beyond the guard (a TCP retransmission, a stall
//! of the host) can still meet call k + n in one second; Tencent then refuses one of them with
//! `RequestLimitExceeded` (not executed), the gateway retries it through the limiter, and the
//! refusal widens the guard. A path whose variation exceeds the ceiling is throttled by Tencent:
//! that ceiling is the one thing configuration must get right.
//!
//! With Redis the slot's position on this replica's clock is known only within the Redis round
//! trip: a call departs no earlier than `answer + wait` and counts its lateness from
//! `request + wait`, so its slack (and the guard it asks for) includes an allowance for the Redis
//! round trip, learned from the last ones; a reservation whose round trip exceeded it departs late
//! and reserves again with the new allowance.
//!
//! `n` is the *effective* quota ([`learn`]): the configured one until Tencent's refusals show a
//! lower one. With Redis, `n` and the log are the fleet's, and replicas that may be cut off from
//! Redis keep a share the others do not use ([`fleet`]); a Redis that lost its data is noticed and
//! waited out ([`shared`]).
//!
//! [`Quotas`] holds each action's state and picks per call: the whole quota in-process (memory
//! store: one replica), the shared log in Redis, or, while Redis is unreachable, this replica's
//! share once the fleet has stopped counting on it.

pub mod fleet;
pub mod guard;
pub mod learn;
pub mod reservations;
pub mod shared;

mod heartbeat;
mod outcome;
mod reserve;

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use std::time::Duration;

use parking_lot::Mutex;

use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::redis_link::RedisLink;
use fleet::{FleetTiming, Membership};
use guard::{GuardBounds, HostSlack, PathGuard};
use learn::{Learned, Outcomes};
use shared::SharedQuotas;

pub use reservations::{Refusal, Reservation, ReservationLog, Rule};

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
    /// `store.redis_timeout_ms`.
    pub redis_timeout: Duration,
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
    /// What this replica has learned of its path to Tencent for this action (round trips include
    /// Tencent's processing time, which differs by action).
    path: Mutex<PathGuard>,
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
    /// The fleet's epoch as last seen (0: none yet); see [`shared`].
    epoch: AtomicU64,
    /// Round trips of the last reservations in Redis.
    round_trips: Mutex<RedisRoundTrips>,
    /// The last heartbeat's sequence number.
    beats: AtomicU64,
}

/// The allowance a shared ticket gets for not knowing where in the Redis round trip its slot
/// was taken: the longest of the last [`RedisRoundTrips::KEPT`] round trips plus a quarter.
#[derive(Debug, Default)]
struct RedisRoundTrips {
    samples: VecDeque<Duration>,
}

impl RedisRoundTrips {
    const KEPT: usize = 32;
    /// Before any round trip was measured.
    const FIRST: Duration = Duration::from_millis(10);

    fn observe(&mut self, rtt: Duration) {
        if self.samples.len() == Self::KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(rtt);
    }

    fn allowance(&self, cap: Duration) -> Duration {
        let longest = self.samples.iter().max().copied().unwrap_or(Self::FIRST);
        (longest + longest / 4 + Duration::from_micros(200)).min(cap)
    }
}

/// Each upstream action's quota.
#[derive(Debug)]
pub struct Quotas {
    actions: HashMap<&'static str, ActionQuota>,
    /// Order of `actions` for heartbeats.
    names: Vec<&'static str>,
    epoch: Instant,
    /// Every action's round trips together: the estimate an action borrows until it has enough
    /// calls of its own.
    pooled: Mutex<PathGuard>,
    /// How late this host wakes departing calls, and the slack handed out to tickets.
    slack: Mutex<HostSlack>,
    config: QuotaConfig,
    fleet: Option<FleetPart>,
    metrics: Arc<Metrics>,
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
            fleet.redis_timeout,
        );
        let part = FleetPart {
            quotas: SharedQuotas::new(link),
            id: uuid::Uuid::new_v4().simple().to_string(),
            membership: Mutex::new(Membership::new(timing)),
            expected_replicas: fleet.expected_replicas,
            epoch: AtomicU64::new(0),
            round_trips: Mutex::new(RedisRoundTrips::default()),
            beats: AtomicU64::new(0),
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
                    path: Mutex::new(PathGuard::new(config.guard)),
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
            pooled: Mutex::new(PathGuard::new(config.guard)),
            slack: Mutex::new(HostSlack::new(
                config.guard,
                config.max_wait.as_micros() as u64,
            )),
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

    /// `action`'s effective quota (calls per second).
    pub fn effective(&self, action: &str) -> u32 {
        self.action(action).effective.load(Ordering::Relaxed)
    }

    /// The guard a reservation of `action` made now uses.
    pub fn guard(&self, action: &str) -> Duration {
        let slack = self.slack.lock().current_us(self.now_us());
        Duration::from_micros(self.path_of(self.action(action), slack).0)
    }

    /// The guard for a ticket slack of `slack_us`, the slack the ticket may really use, and the
    /// shortest round trip (µs), of `quota`'s path now: its own once measured, until then those
    /// of all actions together. A guard held at its ceiling leaves the ticket only what the
    /// path's variation leaves of it (never less than `quotas.departure_slack_ms`), so that
    /// `guard ≥ slack + J` holds whenever the ceiling allows it at all.
    fn path_of(&self, quota: &ActionQuota, slack_us: u64) -> (u64, u64, Option<u64>) {
        let now = self.now_us();
        let floor = self.config.guard.slack_us.min(slack_us);
        let read = |path: &mut PathGuard| {
            let guard = path.guard_us(now, slack_us);
            let usable = match path.variation_us(now) {
                Some(variation) => slack_us.min(guard.saturating_sub(variation)).max(floor),
                None => slack_us,
            };
            (guard, usable, path.rtt_lo_us())
        };
        let mut own = quota.path.lock();
        if own.measured() {
            read(&mut own)
        } else {
            drop(own);
            read(&mut self.pooled.lock())
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
}

#[cfg(test)]
mod tests;
