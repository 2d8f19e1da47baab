//! When a replica cut off from Redis may forward on its own, and how much.
//!
//! Every replica announces itself in Redis with a heartbeat (`store.heartbeat_ms`) and is given a
//! *share* of each action's quota: `⌊n ÷ replicas⌋` (never more than what the other replicas'
//! shares leave of `n`, so the shares never add up to more than `n`). A replica whose heartbeat
//! has not arrived for `stale` (three heartbeats) may be cut off and forwarding on its own share,
//! so the shared limiter in Redis gives the rest of the fleet only `n − Σ shares of such replicas`.
//!
//! The arithmetic that keeps the fleet within `n` when a replica R is cut off at time C:
//!
//! 1. Redis counts R stale from `beat + stale`, where `beat` is when it processed R's last
//!    heartbeat and `stale` is what R announced (so replicas configured differently still agree).
//!    From then on every new shared grant leaves room for R's share.
//! 2. Shared grants made before that can hold slots up to `quotas.max_wait_ms` later, and one
//!    window (1 s + the guard ceiling) later they no longer count: the *reach* of a grant. So R may
//!    use its share only from `processed + stale + reach`, where `reach` is the largest any live
//!    replica announced and `processed` bounds when Redis last processed one of R's heartbeats:
//!    the answer's arrival for an answered heartbeat; for one that got no answer (lost on the way
//!    back, or timed out), its sending plus `store.redis_timeout_ms`, because every heartbeat
//!    carries a *not-after* on Redis's clock (from the last answer: Redis's time then, plus the
//!    time since, plus the timeout) past which Redis refuses it unprocessed. A heartbeat delayed in
//!    the network can therefore never make R look present after R gave up on it. Until then R
//!    answers 429. While the link is down R sends no heartbeat at all (the prober brings it back).
//! 3. R forwards on its share only until `sent + lease` (`sent`: when it sent its last answered
//!    heartbeat, earlier than `beat`); Redis keeps R's share reserved until `beat + lease + reach`
//!    and then gives it back (a replica that died returns its share after the lease).
//! 4. When R reaches Redis again, its heartbeat says how long ago it last forwarded on its share,
//!    if within `reach`; Redis then keeps the share reserved until `reach` after that grant (and
//!    keeps it if R then leaves). A fallback grant and the start of a heartbeat take the same lock, and R's fallback
//!    grants stop while a heartbeat is in flight, so no grant slips past that report.
//!
//! So at any moment the calls in any window are at most the shared limiter's `n − Σ reserved`
//! plus each cut-off replica's share. Replicas joining or leaving change the shares at the next
//! heartbeats; `store.expected_replicas` is only a floor on the divisor (room kept for replicas
//! about to start), no longer required. Clocks: each replica measures durations on its own
//! monotonic clock and Redis on `TIME`; the arithmetic needs their *rates* to agree (they do, to
//! parts per million), not their readings. A Redis clock that *steps* forward (an NTP step, a
//! failover to a host whose clock differs) makes its recent slots look older and is not detected.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

/// The durations the arithmetic above needs.
#[derive(Debug, Clone, Copy)]
pub struct FleetTiming {
    pub heartbeat: Duration,
    /// Three heartbeats.
    pub stale: Duration,
    pub lease: Duration,
    /// `quotas.max_wait_ms`: how far ahead a granted slot can be.
    pub max_wait: Duration,
    /// One second plus the largest guard any replica may use.
    pub max_window: Duration,
    /// `store.redis_timeout_ms`: the longest a heartbeat can take to be processed and still count.
    pub answer_within: Duration,
}

impl FleetTiming {
    pub fn new(
        heartbeat: Duration,
        lease: Duration,
        max_wait: Duration,
        max_guard: Duration,
        answer_within: Duration,
    ) -> Self {
        Self {
            heartbeat,
            stale: heartbeat * 3,
            lease,
            max_wait,
            max_window: Duration::from_secs(1) + max_guard,
            answer_within,
        }
    }

    /// How long a grant of this replica can count: its slot is at most `max_wait` ahead, and it
    /// counts for one window after.
    pub fn reach(&self) -> Duration {
        self.max_wait + self.max_window
    }

    /// After a loss of Redis's data, how long the new epoch grants nothing (see
    /// [`super::shared`]): until a replica cut off at the loss has reached the end of its lease and
    /// its last grants no longer count.
    pub fn blackout(&self) -> Duration {
        self.lease + self.reach()
    }

    /// How long Redis keeps a silent replica's entry: its lease, then the reach of its grants.
    pub fn expire(&self) -> Duration {
        self.lease + self.reach() + Duration::from_secs(1)
    }
}

/// What a replica cut off from Redis may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Not yet (the fleet may still be using this replica's share): ask again after this.
    NotYet(Duration),
    /// Forward within this share of the action's quota (0: nothing).
    Share(u32),
    /// The lease is over, or this replica never joined: nothing until Redis is back.
    Closed,
}

/// This replica's standing in the fleet, on its own clock.
#[derive(Debug)]
pub struct Membership {
    timing: FleetTiming,
    /// Send and answer times of the last heartbeat Redis answered.
    last: Option<(Instant, Instant)>,
    /// When the latest heartbeat after that one was sent, if it got no answer: Redis may have
    /// processed it up to `answer_within` later.
    unanswered: Option<Instant>,
    in_flight: bool,
    last_fallback: Option<Instant>,
    shares: HashMap<&'static str, u32>,
    /// Redis's clock (µs) in the last answer and when that answer arrived: the next heartbeat's
    /// not-after is computed from it.
    redis_clock: Option<(u64, Instant)>,
    /// The largest reach any live replica announced.
    fleet_reach: Duration,
}

impl Membership {
    pub fn new(timing: FleetTiming) -> Self {
        Self {
            timing,
            last: None,
            unanswered: None,
            in_flight: false,
            last_fallback: None,
            shares: HashMap::new(),
            redis_clock: None,
            fleet_reach: Duration::ZERO,
        }
    }

    pub fn timing(&self) -> FleetTiming {
        self.timing
    }

    /// Whether this replica may forward `action` on its own share at `now`.
    pub fn gate(&self, action: &str, now: Instant) -> Gate {
        let Some((sent, reply)) = self.last else {
            return Gate::Closed;
        };
        if now >= sent + self.timing.lease {
            return Gate::Closed;
        }
        if self.in_flight {
            return Gate::NotYet(self.timing.heartbeat);
        }
        let processed = match self.unanswered {
            Some(at) => reply.max(at + self.timing.answer_within),
            None => reply,
        };
        let open = processed + self.timing.stale + self.timing.reach().max(self.fleet_reach);
        if now < open {
            return Gate::NotYet(open - now);
        }
        Gate::Share(self.shares.get(action).copied().unwrap_or(0))
    }

    /// [`Membership::gate`], and if it grants a share, the grant about to be made is recorded
    /// under the same lock, so a heartbeat starting at the same moment reports it.
    pub fn try_fallback(&mut self, action: &str, now: Instant) -> Gate {
        let gate = self.gate(action, now);
        if matches!(gate, Gate::Share(share) if share > 0) {
            self.last_fallback = Some(now);
        }
        gate
    }

    /// A heartbeat leaves now. Returns how long ago this replica last forwarded on its share, if
    /// that grant may still count, and the not-after (Redis µs) to give the heartbeat.
    pub fn beat_started(&mut self, now: Instant) -> (Option<Duration>, Option<u64>) {
        self.in_flight = true;
        let recent = self
            .last_fallback
            .map(|t| now.saturating_duration_since(t))
            .filter(|age| *age < self.timing.reach());
        let not_after = self.redis_clock.map(|(redis_us, at)| {
            redis_us
                + (now.saturating_duration_since(at) + self.timing.answer_within).as_micros() as u64
        });
        (recent, not_after)
    }

    /// Redis answered the heartbeat sent at `sent` at `reply`, on its clock at `redis_now_us`.
    pub fn beat_answered(
        &mut self,
        sent: Instant,
        reply: Instant,
        redis_now_us: u64,
        fleet_reach: Duration,
        shares: impl IntoIterator<Item = (&'static str, u32)>,
    ) {
        self.in_flight = false;
        self.last = Some((sent, reply));
        self.unanswered = None;
        self.redis_clock = Some((redis_now_us, reply));
        self.fleet_reach = fleet_reach;
        self.shares.extend(shares);
    }

    /// Redis refused the heartbeat unprocessed (past its not-after, or older than one processed)
    /// when its clock read `redis_now_us`; the answer came at `reply`. The clock reading renews
    /// the reference for the next not-after, so one late answer cannot make every later heartbeat
    /// too late.
    pub fn beat_refused(&mut self, redis_now_us: u64, reply: Instant) {
        self.in_flight = false;
        if redis_now_us > 0 {
            self.redis_clock = Some((redis_now_us, reply));
        }
    }

    /// The heartbeat sent at `sent` got no answer: Redis may still have processed it.
    pub fn beat_failed(&mut self, sent: Instant) {
        self.in_flight = false;
        self.unanswered = Some(sent);
    }

    /// The share this replica holds for `action` (what it reports in its next heartbeat).
    pub fn share(&self, action: &str) -> u32 {
        self.shares.get(action).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> FleetTiming {
        FleetTiming::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            Duration::from_secs(2),
            Duration::from_millis(250),
            Duration::from_millis(250),
        )
    }

    const REDIS_T0: u64 = 1_790_000_000_000_000;

    #[tokio::test(start_paused = true)]
    async fn a_replica_that_never_reached_redis_has_no_share() {
        let m = Membership::new(timing());
        assert_eq!(m.gate("A", Instant::now()), Gate::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_share_opens_after_the_fleet_stopped_using_it_and_closes_with_the_lease() {
        let mut m = Membership::new(timing());
        let t0 = Instant::now();
        m.beat_started(t0);
        let reply = t0 + Duration::from_millis(5);
        m.beat_answered(t0, reply, REDIS_T0, Duration::ZERO, [("A", 10)]);
        // stale 3 s + max wait 2 s + window 1.25 s after the answer.
        let open = reply + Duration::from_millis(6_250);
        assert_eq!(
            m.gate("A", reply),
            Gate::NotYet(Duration::from_millis(6_250))
        );
        assert!(matches!(
            m.gate("A", open - Duration::from_micros(1)),
            Gate::NotYet(_)
        ));
        assert_eq!(m.gate("A", open), Gate::Share(10));
        assert_eq!(m.gate("B", open), Gate::Share(0));
        assert_eq!(m.gate("A", t0 + Duration::from_secs(30)), Gate::Closed);
    }

    /// The scenario of a heartbeat Redis processed but whose answer was lost: the share opens
    /// counting from that heartbeat's latest possible processing (sent + timeout), not from the
    /// previous answer; and the heartbeat carried a not-after that bounds it.
    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_without_an_answer_counts_as_processed_until_its_not_after() {
        let mut m = Membership::new(timing());
        let t0 = Instant::now();
        m.beat_started(t0);
        m.beat_answered(t0, t0, REDIS_T0, Duration::ZERO, [("A", 10)]);
        let t1 = t0 + Duration::from_secs(1);
        let (_, not_after) = m.beat_started(t1);
        assert_eq!(not_after, Some(REDIS_T0 + 1_250_000));
        m.beat_failed(t1);
        let open = t1 + Duration::from_millis(250) + Duration::from_millis(6_250);
        assert!(matches!(
            m.gate("A", open - Duration::from_micros(1)),
            Gate::NotYet(_)
        ));
        assert_eq!(m.gate("A", open), Gate::Share(10));
        // Another replica announced a longer reach: the share waits for it too.
        let mut m = Membership::new(timing());
        m.beat_started(t0);
        m.beat_answered(t0, t0, REDIS_T0, Duration::from_secs(5), [("A", 10)]);
        assert!(matches!(
            m.gate("A", t0 + Duration::from_millis(6_250)),
            Gate::NotYet(_)
        ));
        assert_eq!(m.gate("A", t0 + Duration::from_secs(8)), Gate::Share(10));
    }

    #[tokio::test(start_paused = true)]
    async fn no_fallback_while_a_heartbeat_is_in_flight_and_its_use_is_reported() {
        let mut m = Membership::new(timing());
        let t0 = Instant::now();
        m.beat_started(t0);
        m.beat_answered(t0, t0, REDIS_T0, Duration::ZERO, [("A", 4)]);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(m.try_fallback("A", later), Gate::Share(4));
        assert_eq!(
            m.beat_started(later + Duration::from_secs(1)).0,
            Some(Duration::from_secs(1))
        );
        assert!(matches!(
            m.try_fallback("A", later + Duration::from_secs(1)),
            Gate::NotYet(_)
        ));
        m.beat_refused(REDIS_T0 + 11_000_000, later + Duration::from_secs(1));
        assert_eq!(m.gate("A", later + Duration::from_secs(1)), Gate::Share(4));
        // Long after the last fallback grant there is nothing to report.
        assert_eq!(m.beat_started(later + Duration::from_secs(5)).0, None);
    }
}
