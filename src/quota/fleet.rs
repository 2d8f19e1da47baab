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
//!    heartbeat. From then on every new shared grant leaves room for R's share.
//! 2. Shared grants made before that can hold slots up to `quotas.max_wait_ms` later, and one
//!    window (1 s + the largest guard) later they no longer count. So R may use its share only from
//!    `reply + stale + max_wait + window`, where `reply` is when R *received* the answer to that
//!    heartbeat (later than `beat`, whatever the network did): until then it answers 429.
//! 3. R forwards on its share only until `sent + lease` (`sent`: when it sent that heartbeat,
//!    earlier than `beat`); Redis keeps R's share reserved until `beat + lease + max_wait + window`
//!    and then gives it back (a replica that died returns its share after the lease).
//! 4. When R reaches Redis again, its heartbeat says whether it forwarded on its share within the
//!    last `max_wait + window`; if so Redis keeps the share reserved that much longer. R's
//!    fallback grants stop while a heartbeat is in flight, so no grant slips past that report.
//!
//! So at any moment the calls in any window are at most the shared limiter's `n − Σ reserved`
//! plus each cut-off replica's share. Replicas joining or leaving change the shares at the next
//! heartbeats; `store.expected_replicas` is only a floor on the divisor (room kept for replicas
//! about to start), no longer required.

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
}

impl FleetTiming {
    pub fn new(
        heartbeat: Duration,
        lease: Duration,
        max_wait: Duration,
        max_guard: Duration,
    ) -> Self {
        Self {
            heartbeat,
            stale: heartbeat * 3,
            lease,
            max_wait,
            max_window: Duration::from_secs(1) + max_guard,
        }
    }

    /// How long after a heartbeat's answer a cut-off replica must wait before using its share.
    pub fn fallback_delay(&self) -> Duration {
        self.stale + self.max_wait + self.max_window
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
    in_flight: bool,
    last_fallback: Option<Instant>,
    shares: HashMap<&'static str, u32>,
}

impl Membership {
    pub fn new(timing: FleetTiming) -> Self {
        Self {
            timing,
            last: None,
            in_flight: false,
            last_fallback: None,
            shares: HashMap::new(),
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
        let open = reply + self.timing.fallback_delay();
        if now < open {
            return Gate::NotYet(open - now);
        }
        Gate::Share(self.shares.get(action).copied().unwrap_or(0))
    }

    /// A fallback grant was made at `now`.
    pub fn fallback_used(&mut self, now: Instant) {
        self.last_fallback = Some(now);
    }

    /// A heartbeat leaves now. Returns whether it must report recent fallback use.
    pub fn beat_started(&mut self, now: Instant) -> bool {
        self.in_flight = true;
        self.last_fallback
            .is_some_and(|t| now < t + self.timing.max_wait + self.timing.max_window)
    }

    /// Redis answered the heartbeat sent at `sent` with these shares.
    pub fn beat_answered(
        &mut self,
        sent: Instant,
        reply: Instant,
        shares: impl IntoIterator<Item = (&'static str, u32)>,
    ) {
        self.in_flight = false;
        self.last = Some((sent, reply));
        self.shares.extend(shares);
    }

    /// The heartbeat got no answer.
    pub fn beat_failed(&mut self) {
        self.in_flight = false;
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
        )
    }

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
        m.beat_answered(t0, reply, [("A", 10)]);
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

    #[tokio::test(start_paused = true)]
    async fn no_fallback_while_a_heartbeat_is_in_flight_and_its_use_is_reported() {
        let mut m = Membership::new(timing());
        let t0 = Instant::now();
        m.beat_started(t0);
        m.beat_answered(t0, t0, [("A", 4)]);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(m.gate("A", later), Gate::Share(4));
        m.fallback_used(later);
        assert!(m.beat_started(later + Duration::from_secs(1)));
        assert!(matches!(
            m.gate("A", later + Duration::from_secs(1)),
            Gate::NotYet(_)
        ));
        m.beat_failed();
        assert_eq!(m.gate("A", later + Duration::from_secs(1)), Gate::Share(4));
        // Long after the last fallback grant there is nothing to report.
        assert!(!m.beat_started(later + Duration::from_secs(4)));
    }
}
