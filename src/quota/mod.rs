//! Keeps every forwarded call within Tencent's per-action quota, counted where Tencent counts it:
//! at arrival, per wall-clock second.
//!
//! # Why no wall-clock second can hold more than N arrivals
//!
//! Each call reserves a slot in a log ([`log`]) that holds at most `n` slots in any window of
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
pub mod log;
pub mod shared;

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::redis_link::RedisLink;
use fleet::{FleetTiming, Gate, Membership};
use guard::{GuardBounds, HostSlack, PathGuard};
use learn::{Learned, Outcomes, Shape, Verdict};
use shared::{Beat, BeatAnswer, BeatOutcome, Decision, ReserveArgs, SharedQuotas};

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

    /// Reserves a slot for `action` at most `max_wait` away, or refuses at once. `lead` is how
    /// long the caller needs before it can leave (making a connection): the slot is no sooner
    /// (within the wait budget). The caller waits for [`Ticket::not_before`] itself, then reports
    /// its departure with [`Quotas::departed`].
    ///
    /// # Panics
    /// When `action` has no configured quota: every action the client sends is registered at start.
    pub async fn reserve(
        &self,
        action: &'static str,
        max_wait: Duration,
        lead: Duration,
    ) -> Result<Ticket, QuotaError> {
        let quota = self.action(action);
        let earliest = lead.min(max_wait);
        // With Redis the ticket's slack also covers the Redis round trip (see the module docs).
        let ceiling = Duration::from_micros(self.config.guard.max_us);
        let allowance = self
            .fleet
            .as_ref()
            .map(|fleet| fleet.round_trips.lock().allowance(ceiling / 4))
            .unwrap_or_default();
        let slack_us = self
            .slack
            .lock()
            .issue(self.now_us(), allowance.as_micros() as u64);
        let (guard_us, slack_us, rtt_lo_us) = self.path_of(quota, slack_us);
        let slack = Duration::from_micros(slack_us);
        let Some(fleet) = &self.fleet else {
            let limit = {
                let mut learned = quota.learned.lock();
                learned.tick(self.now_us(), self.config.probe.as_micros() as u64);
                learned.effective
            };
            quota.effective.store(limit, Ordering::Relaxed);
            quota.guard_us.store(guard_us, Ordering::Relaxed);
            let rule = Rule {
                limit,
                window_us: 1_000_000 + guard_us,
            };
            return self.reserve_in(
                &quota.log,
                rule,
                earliest,
                max_wait,
                slack,
                LimiterKind::Local,
            );
        };
        let timing = fleet.membership.lock().timing();
        let asked = Instant::now();
        let args = ReserveArgs {
            configured: quota.configured,
            guard_us,
            rtt_lo_us,
            max_wait,
            earliest,
            id: &fleet.id,
            epoch: fleet.epoch.load(Ordering::Relaxed),
            blackout: timing.blackout(),
            guard_cap: ceiling,
            now_us: None,
        };
        match fleet.quotas.reserve(action, args).await {
            Ok((decision, epoch)) => {
                let answered = Instant::now();
                fleet.epoch.store(epoch, Ordering::Relaxed);
                fleet.round_trips.lock().observe(answered - asked);
                match decision {
                    Decision::Admitted {
                        wait_us, window_us, ..
                    } => {
                        let wait = Duration::from_micros(wait_us);
                        quota
                            .guard_us
                            .store(window_us.saturating_sub(1_000_000), Ordering::Relaxed);
                        Ok(Ticket {
                            not_before: answered + wait,
                            origin: asked + wait,
                            slack,
                            waited: wait + (answered - asked),
                            kind: LimiterKind::Shared,
                        })
                    }
                    Decision::Refused {
                        retry_after_us,
                        limit,
                    } => Err(QuotaError::Exceeded(QuotaExceeded {
                        limit: if limit == 0 { quota.configured } else { limit },
                        retry_after: Duration::from_micros(retry_after_us),
                    })),
                }
            }
            Err(_) => {
                let gate = fleet.membership.lock().try_fallback(action, Instant::now());
                let (result, outcome) = match gate {
                    Gate::NotYet(retry_after) => (
                        "not_yet",
                        Err(QuotaError::Exceeded(QuotaExceeded {
                            limit: quota.configured,
                            retry_after,
                        })),
                    ),
                    Gate::Share(0) | Gate::Closed => (
                        "closed",
                        Err(QuotaError::Unavailable {
                            retry_after: timing.heartbeat.max(Duration::from_secs(1)),
                        }),
                    ),
                    Gate::Share(share) => {
                        let rule = Rule {
                            limit: share,
                            window_us: 1_000_000 + guard_us,
                        };
                        let ticket = self.reserve_in(
                            &quota.fallback,
                            rule,
                            earliest,
                            max_wait,
                            slack,
                            LimiterKind::Fallback,
                        );
                        (if ticket.is_ok() { "granted" } else { "refused" }, ticket)
                    }
                };
                self.metrics.quota_fallback(action, result);
                outcome
            }
        }
    }

    fn reserve_in(
        &self,
        log: &Mutex<ReservationLog>,
        rule: Rule,
        earliest: Duration,
        max_wait: Duration,
        slack: Duration,
        kind: LimiterKind,
    ) -> Result<Ticket, QuotaError> {
        let now = self.now_us();
        let reservation = log
            .lock()
            .reserve_from(
                now + earliest.as_micros() as u64,
                now,
                max_wait.as_micros() as u64,
                rule,
            )
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
            slack,
            waited: Duration::from_micros(reservation.wait_us),
            kind,
        })
    }

    /// A call with `ticket` is about to leave at `now`. `woke`: when the host woke it for its
    /// slot, if its connection was ready before (how late that was teaches the slack). Returns
    /// whether it is on time (otherwise it must give the slot up and reserve again).
    pub fn departed(&self, ticket: &Ticket, woke: Option<Instant>, now: Instant) -> bool {
        // How late the host wakes a call says nothing of the action: every path learns it.
        if let Some(woke) = woke {
            let late = woke.saturating_duration_since(ticket.not_before);
            self.slack.lock().observe(late.as_micros() as u64);
        }
        ticket.on_time(now)
    }

    /// A round trip to Tencent for `action` measured on an open connection.
    pub fn observe_round_trip(&self, action: &'static str, rtt: Duration) {
        let now = self.now_us();
        let slack = self.slack.lock().current_us(now);
        self.action(action)
            .path
            .lock()
            .observe(now, rtt.as_micros() as u64, slack);
        self.pooled
            .lock()
            .observe(now, rtt.as_micros() as u64, slack);
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
            let mut outcomes = quota.outcomes.lock();
            outcomes.record(arrival_ms, refused);
            outcomes.judge(now_ms)
        };
        let mut verdicts = Vec::new();
        for shape in shapes {
            let now = self.now_us();
            let effective = quota.effective.load(Ordering::Relaxed);
            match shape {
                Shape::Interleaved => {
                    let guard = self.widen(quota, now);
                    tracing::warn!(
                        action,
                        guard_ms = guard / 1000,
                        "Tencent refused a call although a later one in the same second passed: jitter (or another user of the account); widening the guard"
                    );
                    verdicts.push(Verdict::Jitter);
                }
                // The gateway's own count: this second already held the whole quota before the
                // refusals, so they say the calls were too close (jitter), not that the quota is
                // lower.
                Shape::Suffix { admitted, .. } if admitted >= effective => {
                    let guard = self.widen(quota, now);
                    tracing::warn!(
                        action,
                        admitted_in_second = admitted,
                        effective,
                        guard_ms = guard / 1000,
                        "more calls than the quota arrived in one second: jitter beyond the guard; widening the guard"
                    );
                    verdicts.push(Verdict::Jitter);
                }
                Shape::Suffix { admitted, refused } => {
                    // One refusal at the end of a second may be jitter too (in a fleet this
                    // replica cannot see whether the second was full): the guard widens as well.
                    if refused == 1 {
                        self.widen(quota, now);
                    }
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

    /// Widens `quota`'s guard after a refusal that looks like jitter; returns the new guard (µs).
    fn widen(&self, quota: &ActionQuota, now: u64) -> u64 {
        let slack = self.slack.lock().current_us(now);
        self.pooled.lock().widen(now, slack);
        quota.path.lock().widen(now, slack);
        self.path_of(quota, slack).0
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
            let mut learned = quota.learned.lock();
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
        let every = fleet.membership.lock().timing().heartbeat;
        loop {
            self.beat(fleet).await;
            tokio::time::sleep(every).await;
        }
    }

    async fn beat(&self, fleet: &FleetPart) {
        // While the link is down nothing is sent: a heartbeat that might arrive late must not
        // make this replica look present while it may be forwarding on its share. The prober
        // brings the link back.
        if !fleet.quotas.is_up() {
            return;
        }
        let sent = Instant::now();
        let (fallback_age, not_after_us, timing, held) = {
            let mut m = fleet.membership.lock();
            let (recent, not_after) = m.beat_started(sent);
            let held: Vec<_> = self
                .names
                .iter()
                .map(|a| (*a, self.actions[a].configured, m.share(a)))
                .collect();
            (recent, not_after, m.timing(), held)
        };
        let beat = Beat {
            id: &fleet.id,
            fallback_age,
            stale: timing.stale,
            expire: timing.expire(),
            hold: timing.reach(),
            probe: self.config.probe,
            expected_replicas: fleet.expected_replicas,
            not_after_us,
            epoch: fleet.epoch.load(Ordering::Relaxed),
            blackout: timing.blackout(),
            reach: timing.reach(),
            seq: fleet.beats.fetch_add(1, Ordering::Relaxed) + 1,
            actions: &held,
            now_us: None,
        };
        match fleet.quotas.heartbeat(&beat).await {
            Ok(BeatOutcome::Processed(answer)) => {
                let reply = Instant::now();
                let BeatAnswer {
                    redis_now_us,
                    epoch,
                    live,
                    fleet_reach,
                    per_action,
                } = answer;
                fleet.epoch.store(epoch, Ordering::Relaxed);
                self.metrics.fleet_replicas(live);
                let shares: Vec<_> = self
                    .names
                    .iter()
                    .zip(&per_action)
                    .map(|(a, &(share, n))| {
                        self.actions[a].effective.store(n, Ordering::Relaxed);
                        self.metrics.quota_share(a, share);
                        (*a, share)
                    })
                    .collect();
                fleet.membership.lock().beat_answered(
                    sent,
                    reply,
                    redis_now_us,
                    fleet_reach,
                    shares,
                );
            }
            Ok(BeatOutcome::Refused { redis_now_us }) => fleet
                .membership
                .lock()
                .beat_refused(redis_now_us, Instant::now()),
            Err(_) => fleet.membership.lock().beat_failed(sent),
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
mod tests;
