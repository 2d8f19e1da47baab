//! The guard: how much longer than one second the quota window must be on this path.
//!
//! A call leaves at most `slack` after its slot (the departure check in the client enforces it)
//! and reaches Tencent after a delay that varies by J. Two calls N reservations apart are one
//! window (1 s + guard) apart in the log, so they arrive at least `1 s + guard − slack − J` apart:
//! with `guard ≥ slack + J`, never within one wall-clock second. This module learns J.
//!
//! J is estimated from the round-trip times of answered calls, all measured on connections that
//! were already open (the client connects before the slot, never after): the spread of the last
//! [`SAMPLES`] round trips from the smallest to the 95th percentile, plus an eighth. The top 5%
//! is left out on purpose: on a busy host a few round trips include the host's own stalls, not
//! the path's, and a guard sized by them would give away quota for nothing; a path whose tail
//! really is longer shows it as refusals that widen the guard.
//! The spread of a round trip bounds the spread of its first half when the server's own time and
//! the way back only add delay, which is the conservative direction. Like TCP's RTO, the estimate
//! rises at once and falls slowly ([`DECAY_US_PER_S`]); every `RequestLimitExceeded` that looks
//! like jitter (see [`super::learn`]) widens it further, and the widening decays too. Until
//! [`MIN_SAMPLES`] round trips have been seen the guard is the ceiling: ignorance is not evidence;
//! until [`SAMPLES`] have been seen the estimate is followed both ways.

use std::collections::VecDeque;

/// Round trips kept.
pub const SAMPLES: usize = 64;
/// Round trips needed before the estimate replaces the ceiling.
pub const MIN_SAMPLES: usize = 8;
/// How fast the guard may fall: 10 ms per second.
pub const DECAY_US_PER_S: u64 = 10_000;
/// The first widening after an unexpected refusal, doubled at each further one.
pub const WIDEN_STEP_US: u64 = 10_000;

/// Bounds of the guard, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardBounds {
    /// `quotas.guard_min_ms` in µs.
    pub min_us: u64,
    /// `quotas.guard_max_ms` in µs.
    pub max_us: u64,
    /// `quotas.departure_slack_ms` in µs: how late after its slot a call may still leave.
    pub slack_us: u64,
}

/// What has been learned about one path (this replica to Tencent).
#[derive(Debug, Clone)]
pub struct PathGuard {
    bounds: GuardBounds,
    rtts: VecDeque<u64>,
    /// Extra width after refusals that looked like jitter, as of `widen_at_us`.
    widen_us: u64,
    widen_at_us: u64,
    /// The guard last handed out, and when (µs on the caller's clock).
    current_us: u64,
    at_us: u64,
    learned: bool,
}

impl PathGuard {
    pub fn new(bounds: GuardBounds) -> Self {
        Self {
            bounds,
            rtts: VecDeque::with_capacity(SAMPLES),
            widen_us: 0,
            widen_at_us: 0,
            current_us: bounds.max_us,
            at_us: 0,
            learned: false,
        }
    }

    pub fn bounds(&self) -> GuardBounds {
        self.bounds
    }

    /// A round trip measured on an open connection.
    pub fn observe(&mut self, now_us: u64, rtt_us: u64) {
        if self.rtts.len() == SAMPLES {
            self.rtts.pop_front();
        }
        self.rtts.push_back(rtt_us);
        self.update(now_us);
    }

    /// A `RequestLimitExceeded` the gateway did not expect and that looks like jitter.
    pub fn widen(&mut self, now_us: u64) {
        self.widen_us = (self.widening_us(now_us) * 2)
            .max(WIDEN_STEP_US)
            .min(self.bounds.max_us);
        self.widen_at_us = now_us;
        self.update(now_us);
    }

    /// The widening left at `now_us`: it fades by a tenth of [`DECAY_US_PER_S`] per second.
    fn widening_us(&self, now_us: u64) -> u64 {
        let faded = now_us.saturating_sub(self.widen_at_us) * (DECAY_US_PER_S / 10) / 1_000_000;
        self.widen_us.saturating_sub(faded)
    }

    /// The variation of the path: from the smallest kept round trip to the 95th percentile,
    /// plus an eighth.
    pub fn jitter_us(&self) -> Option<u64> {
        if self.rtts.len() < MIN_SAMPLES {
            return None;
        }
        let mut sorted: Vec<u64> = self.rtts.iter().copied().collect();
        sorted.sort_unstable();
        let p95 = sorted[(sorted.len() * 95).div_ceil(100) - 1];
        let spread = p95 - sorted[0];
        Some(spread + spread / 8)
    }

    /// The smallest kept round trip: replicas publish it so the fleet's window also covers the
    /// difference between their paths.
    pub fn rtt_lo_us(&self) -> u64 {
        self.rtts.iter().min().copied().unwrap_or(0)
    }

    /// The guard to use for a reservation made now.
    pub fn guard_us(&mut self, now_us: u64) -> u64 {
        self.update(now_us);
        self.current_us
    }

    fn update(&mut self, now_us: u64) {
        let Some(jitter) = self.jitter_us() else {
            self.current_us = self.bounds.max_us;
            self.at_us = now_us;
            return;
        };
        let target = (self.bounds.slack_us + jitter + self.widening_us(now_us))
            .clamp(self.bounds.min_us, self.bounds.max_us);
        // Until the window has filled once, the estimate is still being formed and is followed
        // both ways; after that it rises at once and falls slowly.
        if !self.learned || target >= self.current_us {
            self.learned = self.rtts.len() == SAMPLES;
            self.current_us = target;
            self.at_us = now_us;
            return;
        }
        let elapsed = now_us.saturating_sub(self.at_us);
        let may_fall = elapsed * DECAY_US_PER_S / 1_000_000;
        if may_fall > 0 {
            self.current_us = target.max(self.current_us.saturating_sub(may_fall));
            self.at_us = now_us;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;
    const S: u64 = 1_000_000;

    fn bounds() -> GuardBounds {
        GuardBounds {
            min_us: 10 * MS,
            max_us: 250 * MS,
            slack_us: 20 * MS,
        }
    }

    #[test]
    fn the_ceiling_until_enough_round_trips_are_seen() {
        let mut g = PathGuard::new(bounds());
        for i in 0..MIN_SAMPLES as u64 - 1 {
            g.observe(i, 5 * MS);
            assert_eq!(g.guard_us(i), 250 * MS);
        }
        g.observe(10, 5 * MS);
        // No variation at all: slack only, above the floor.
        assert_eq!(g.guard_us(10), 20 * MS);
    }

    #[test]
    fn covers_the_spread_of_the_path_with_a_margin() {
        let mut g = PathGuard::new(bounds());
        // 0–50 ms of jitter on a 5 ms path.
        for i in 0..SAMPLES as u64 {
            g.observe(i, 5 * MS + (i * 797) % (50 * MS + 1));
        }
        let jitter = g.jitter_us().unwrap();
        assert!(jitter >= 50 * MS * 9 / 10, "{jitter}");
        assert_eq!(g.guard_us(SAMPLES as u64), 20 * MS + jitter);
    }

    #[test]
    fn rises_at_once_and_falls_slowly() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(i, if i % 16 == 5 { 85 * MS } else { 5 * MS });
        }
        let high = g.guard_us(SAMPLES as u64);
        assert_eq!(high, 20 * MS + 90 * MS);
        // The slow samples leave the window: the target drops to the slack, the guard follows at
        // 10 ms per second.
        for i in 0..SAMPLES as u64 {
            g.observe(S + i, 5 * MS);
        }
        let after_1s = g.guard_us(2 * S);
        assert!(after_1s >= high - 11 * MS && after_1s < high, "{after_1s}");
        assert_eq!(g.guard_us(20 * S), 20 * MS);
    }

    #[test]
    fn a_few_stalls_of_the_host_do_not_size_it() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(
                i,
                if i % 32 == 7 {
                    400 * MS
                } else {
                    5 * MS + i % 3 * MS
                },
            );
        }
        assert!(g.guard_us(30 * S) < 30 * MS, "{}", g.guard_us(30 * S));
    }

    #[test]
    fn refusals_widen_it_and_the_widening_decays() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(i, 5 * MS);
        }
        g.widen(S);
        assert_eq!(g.guard_us(S), 30 * MS);
        g.widen(S);
        assert_eq!(g.guard_us(S), 40 * MS);
        assert!(g.guard_us(100 * S) < 40 * MS);
    }

    #[test]
    fn never_beyond_the_bounds() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(i, if i % 2 == 0 { 0 } else { 900 * MS });
        }
        assert_eq!(g.guard_us(S), 250 * MS);
        for _ in 0..20 {
            g.widen(S);
        }
        assert_eq!(g.guard_us(S), 250 * MS);
    }
}
