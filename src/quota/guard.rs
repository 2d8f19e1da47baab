//! The guard: how much longer than one second the quota window must be on this path.
//!
//! A call leaves at most `slack` after its slot (the departure check in the client enforces it)
//! and reaches Tencent after a delay that varies by J. Two calls N reservations apart are one
//! window (1 s + guard) apart in the log, so they arrive at least `1 s + guard − slack − J` apart:
//! with `guard ≥ slack + J`, never within one wall-clock second. This module learns both terms,
//! per action (round trips include Tencent's own processing time, which differs by action).
//!
//! The slack is how late a call may leave after its slot. On an idle host a woken task runs
//! within a millisecond; on a busy one (a build on the same two cores) tens of milliseconds
//! later, and a call later than the slack gives its slot up and reserves again, wasting the slot.
//! So the slack is learned too ([`HostSlack`], one for the host, whatever the action): the 95th
//! percentile of how late the last [`SAMPLES`] departures woke after their slots, plus a quarter,
//! never below `quotas.departure_slack_ms` and never above half the ceiling; until [`MIN_SAMPLES`]
//! departures have been seen, a fifth of the ceiling (room for a busy host's first wake-ups; the
//! guard is then at its ceiling anyway). A busy host
//! thus widens the window (it *is* part of J) instead of burning slots.
//!
//! The slack a ticket was given is what its call may use, and the window of every later
//! reservation that can be spaced from that ticket must cover it: call k may leave `slack_k` late,
//! so call k + n must be reserved with `guard ≥ slack_k + J`, not the smaller slack learned since.
//! So the slack handed out never falls until `max_wait + 1 s + ceiling` (the horizon within which
//! a later reservation can still be spaced from an earlier ticket) has passed since a larger one
//! was handed out.
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
//! until [`SAMPLES`] have been seen the estimate is followed both ways. (An action with few calls
//! of its own borrows the estimate of all actions together meanwhile: the same path, and a spread
//! of processing times that only makes it wider; see [`super::Quotas`].)

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
    /// `quotas.departure_slack_ms` in µs: the least slack; how late after its slot a call may
    /// still leave before the host's own delays have been measured.
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

    /// Whether enough round trips have been seen for the estimate to replace the ceiling.
    pub fn measured(&self) -> bool {
        self.rtts.len() >= MIN_SAMPLES
    }

    /// A round trip measured on an open connection; `slack_us` is the slack in force.
    pub fn observe(&mut self, now_us: u64, rtt_us: u64, slack_us: u64) {
        if self.rtts.len() == SAMPLES {
            self.rtts.pop_front();
        }
        self.rtts.push_back(rtt_us);
        self.update(now_us, slack_us);
    }

    /// A `RequestLimitExceeded` the gateway did not expect and that looks like jitter.
    pub fn widen(&mut self, now_us: u64, slack_us: u64) {
        self.widen_us = (self.widening_us(now_us) * 2)
            .max(WIDEN_STEP_US)
            .min(self.bounds.max_us);
        self.widen_at_us = now_us;
        self.update(now_us, slack_us);
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
        let lo = self.rtts.iter().min().copied().unwrap_or(0);
        let spread = percentile95(&self.rtts) - lo;
        Some(spread + spread / 8)
    }

    /// What the guard must cover beyond the slack: the path's variation plus any widening after
    /// refusals. `None` until the path has been measured.
    pub fn variation_us(&self, now_us: u64) -> Option<u64> {
        Some(self.jitter_us()? + self.widening_us(now_us))
    }

    /// The smallest kept round trip once the path has been measured: replicas publish it so the
    /// fleet's window also covers the difference between their paths. `None` before.
    pub fn rtt_lo_us(&self) -> Option<u64> {
        if self.rtts.len() < MIN_SAMPLES {
            return None;
        }
        self.rtts.iter().min().copied()
    }

    /// The guard to use for a reservation made now with a ticket slack of `slack_us`.
    pub fn guard_us(&mut self, now_us: u64, slack_us: u64) -> u64 {
        self.update(now_us, slack_us);
        self.current_us
    }

    fn update(&mut self, now_us: u64, slack_us: u64) {
        let Some(jitter) = self.jitter_us() else {
            self.current_us = self.bounds.max_us;
            self.at_us = now_us;
            return;
        };
        let target = (slack_us + jitter + self.widening_us(now_us))
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

/// How late the host wakes departing calls, and the slack handed out to tickets (see the module
/// docs).
#[derive(Debug, Clone)]
pub struct HostSlack {
    bounds: GuardBounds,
    /// How late after their slots the last departures woke (µs).
    lates: VecDeque<u64>,
    /// The largest slack handed out within the horizon, and until when it holds (µs).
    held_us: u64,
    held_until_us: u64,
    /// `max_wait + 1 s + ceiling`.
    horizon_us: u64,
}

impl HostSlack {
    pub fn new(bounds: GuardBounds, max_wait_us: u64) -> Self {
        Self {
            bounds,
            lates: VecDeque::with_capacity(SAMPLES),
            held_us: 0,
            held_until_us: 0,
            horizon_us: max_wait_us + 1_000_000 + bounds.max_us,
        }
    }

    /// A call woke `late_us` after its slot to leave (its connection was ready before).
    pub fn observe(&mut self, late_us: u64) {
        if self.lates.len() == SAMPLES {
            self.lates.pop_front();
        }
        self.lates.push_back(late_us);
    }

    /// What the host's wake-ups call for: between `quotas.departure_slack_ms` and half the
    /// ceiling; a fifth of the ceiling until they have been measured.
    pub fn learned_us(&self) -> u64 {
        let floor = self.bounds.slack_us;
        let ceiling = (self.bounds.max_us / 2).max(floor);
        if self.lates.len() < MIN_SAMPLES {
            return (self.bounds.max_us / 5).clamp(floor, ceiling);
        }
        let p95 = percentile95(&self.lates);
        (p95 + p95 / 4).clamp(floor, ceiling)
    }

    /// The slack in force at `now_us`, without handing one out.
    pub fn current_us(&self, now_us: u64) -> u64 {
        if now_us < self.held_until_us {
            self.learned_us().max(self.held_us)
        } else {
            self.learned_us()
        }
    }

    /// The slack of a ticket handed out at `now_us`: what the host calls for plus `extra_us` (the
    /// Redis round-trip allowance), and never less than a slack handed out within the horizon.
    pub fn issue(&mut self, now_us: u64, extra_us: u64) -> u64 {
        let wanted = self.learned_us() + extra_us;
        if now_us >= self.held_until_us || wanted >= self.held_us {
            self.held_us = wanted;
            self.held_until_us = now_us + self.horizon_us;
        }
        self.held_us
    }
}

/// The 95th percentile of a non-empty sample.
fn percentile95(samples: &VecDeque<u64>) -> u64 {
    let mut sorted: Vec<u64> = samples.iter().copied().collect();
    sorted.sort_unstable();
    sorted[(sorted.len() * 95).div_ceil(100) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;
    const S: u64 = 1_000_000;
    /// The slack of an idle host (the configured floor).
    const SLACK: u64 = 20 * MS;

    fn bounds() -> GuardBounds {
        GuardBounds {
            min_us: 10 * MS,
            max_us: 250 * MS,
            slack_us: SLACK,
        }
    }

    #[test]
    fn the_ceiling_until_enough_round_trips_are_seen() {
        let mut g = PathGuard::new(bounds());
        for i in 0..MIN_SAMPLES as u64 - 1 {
            g.observe(i, 5 * MS, SLACK);
            assert_eq!(g.guard_us(i, SLACK), 250 * MS);
        }
        g.observe(10, 5 * MS, SLACK);
        // No variation at all: slack only, above the floor.
        assert_eq!(g.guard_us(10, SLACK), 20 * MS);
    }

    #[test]
    fn covers_the_spread_of_the_path_with_a_margin() {
        let mut g = PathGuard::new(bounds());
        // 0–50 ms of jitter on a 5 ms path.
        for i in 0..SAMPLES as u64 {
            g.observe(i, 5 * MS + (i * 797) % (50 * MS + 1), SLACK);
        }
        let jitter = g.jitter_us().unwrap();
        assert!(jitter >= 50 * MS * 9 / 10, "{jitter}");
        assert_eq!(g.guard_us(SAMPLES as u64, SLACK), 20 * MS + jitter);
    }

    #[test]
    fn rises_at_once_and_falls_slowly() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(i, if i % 16 == 5 { 85 * MS } else { 5 * MS }, SLACK);
        }
        let high = g.guard_us(SAMPLES as u64, SLACK);
        assert_eq!(high, 20 * MS + 90 * MS);
        // The slow samples leave the window: the target drops to the slack, the guard follows at
        // 10 ms per second.
        for i in 0..SAMPLES as u64 {
            g.observe(S + i, 5 * MS, SLACK);
        }
        let after_1s = g.guard_us(2 * S, SLACK);
        assert!(after_1s >= high - 11 * MS && after_1s < high, "{after_1s}");
        assert_eq!(g.guard_us(20 * S, SLACK), 20 * MS);
    }

    #[test]
    fn a_few_stalls_of_the_host_do_not_size_it() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            let rtt = if i % 32 == 7 {
                400 * MS
            } else {
                5 * MS + i % 3 * MS
            };
            g.observe(i, rtt, SLACK);
        }
        let guard = g.guard_us(30 * S, SLACK);
        assert!(guard < 30 * MS, "{guard}");
    }

    #[test]
    fn refusals_widen_it_and_the_widening_decays() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(i, 5 * MS, SLACK);
        }
        g.widen(S, SLACK);
        assert_eq!(g.guard_us(S, SLACK), 30 * MS);
        g.widen(S, SLACK);
        assert_eq!(g.guard_us(S, SLACK), 40 * MS);
        assert!(g.guard_us(100 * S, SLACK) < 40 * MS);
    }

    #[test]
    fn never_beyond_the_bounds() {
        let mut g = PathGuard::new(bounds());
        for i in 0..SAMPLES as u64 {
            g.observe(i, if i % 2 == 0 { 0 } else { 900 * MS }, SLACK);
        }
        assert_eq!(g.guard_us(S, SLACK), 250 * MS);
        for _ in 0..20 {
            g.widen(S, SLACK);
        }
        assert_eq!(g.guard_us(S, SLACK), 250 * MS);
    }

    #[test]
    fn a_busy_host_widens_the_slack() {
        let mut h = HostSlack::new(bounds(), 2 * S);
        assert_eq!(
            h.learned_us(),
            50 * MS,
            "a fifth of the ceiling until departures are measured"
        );
        // An idle host: woken within a millisecond; the configured slack stays.
        for i in 0..SAMPLES as u64 {
            h.observe(i % 2 * MS);
        }
        assert_eq!(h.learned_us(), 20 * MS);
        // A busy host: departures wake up to 40 ms late; the slack covers them.
        for i in 0..SAMPLES as u64 {
            h.observe((i % 41) * MS);
        }
        assert!(h.learned_us() >= 40 * MS, "{}", h.learned_us());
        // Never above half the ceiling, however stalled the host.
        for _ in 0..SAMPLES {
            h.observe(900 * MS);
        }
        assert_eq!(h.learned_us(), 125 * MS);
    }

    /// The scenario that would break the quota: a ticket handed out with a large slack (before
    /// the host was measured), then a smaller slack learned. Reservations within the horizon must
    /// still be spaced for the large one; after it, the small one applies.
    #[test]
    fn a_slack_handed_out_holds_for_the_horizon() {
        let mut h = HostSlack::new(bounds(), 2 * S);
        assert_eq!(h.issue(0, 0), 50 * MS);
        for _ in 0..SAMPLES {
            h.observe(0);
        }
        assert_eq!(h.learned_us(), 20 * MS);
        // The horizon: max wait 2 s + 1 s + ceiling 0.25 s.
        assert_eq!(h.issue(3_249_999, 0), 50 * MS);
        assert_eq!(h.current_us(3_249_999), 50 * MS);
        assert_eq!(h.issue(3_250_000, 0), 20 * MS);
        // A larger one (here a Redis allowance on top) takes over at once.
        assert_eq!(h.issue(3_300_000, 40 * MS), 60 * MS);
        assert_eq!(h.issue(3_400_000, 0), 60 * MS);
    }
}
