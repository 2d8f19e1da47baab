//! The effective quota: what Tencent really admits, learned from its refusals.
//!
//! The configured quota is what Tencent's documentation said when the gateway was set up; the
//! page for `CreateAndSendClientInvitationMail` went from 20 to 1 request/s in one revision. A
//! gateway that trusts the number retries into the wall forever. So each action has an
//! effective quota `n ≤ configured`, changed by AIMD, as TCP does with its window:
//!
//! - A `RequestLimitExceeded` is *evidence of a lower quota* when another one came less than
//!   [`PERSISTENCE_US`] before it, or while `n` is below the configured value and was changed less
//!   than one probe interval ago (the last decrease was not enough, or a probe upward failed).
//!   Then `n` halves (at least 1), at most once per second, since one burst brings many refusals.
//! - An isolated refusal is *jitter*: the calls were counted right but arrived closer than the
//!   guard allowed. The caller widens the guard ([`super::guard`]) and `n` stays.
//! - After a probe interval with no refusal at all, `n` grows by one (additive increase), back
//!   toward the configured value.
//!
//! One refusal can never lower `n` by itself, so a path with rare jitter keeps its quota; a
//! lower real quota refuses calls every second, so `n` reaches it within a few seconds
//! (20 → 10 → 5 → 2 → 1). The same rules run in Redis for a fleet ([`super::shared`]).

/// Two refusals closer than this are one pattern, not chance.
pub const PERSISTENCE_US: u64 = 3_000_000;
/// At most one decrease per this long: one burst brings a refusal per surplus call.
pub const DECREASE_EVERY_US: u64 = 1_000_000;

/// What a refusal meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Isolated: widen the guard.
    Jitter,
    /// Part of a pattern: the effective quota went from `from` to `to`.
    Lowered { from: u32, to: u32 },
    /// Part of a pattern already answered by a decrease less than a second ago.
    AlreadyLowered,
}

/// One action's effective quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub configured: u32,
    pub effective: u32,
    /// When `effective` last changed (µs), if ever.
    pub changed_us: Option<u64>,
    /// When the last refusal came (µs), if ever.
    pub refused_us: Option<u64>,
    /// Whether the last change was a probe upward (a refusal soon after it undoes it at once).
    pub raised: bool,
}

impl Learned {
    pub fn new(configured: u32) -> Self {
        Self {
            configured,
            effective: configured,
            changed_us: None,
            refused_us: None,
            raised: false,
        }
    }

    /// Tencent refused a call of this action at `now_us`.
    pub fn refused(&mut self, now_us: u64, probe_us: u64) -> Verdict {
        let recent = |at: Option<u64>, within: u64| at.is_some_and(|t| now_us < t + within);
        let pattern = recent(self.refused_us, PERSISTENCE_US)
            || (self.effective < self.configured && recent(self.changed_us, probe_us));
        self.refused_us = Some(now_us);
        if !pattern {
            return Verdict::Jitter;
        }
        if !self.raised && recent(self.changed_us, DECREASE_EVERY_US) {
            return Verdict::AlreadyLowered;
        }
        let from = self.effective;
        let to = (from / 2).max(1);
        if to == from {
            return Verdict::AlreadyLowered;
        }
        self.effective = to;
        self.changed_us = Some(now_us);
        self.raised = false;
        Verdict::Lowered { from, to }
    }

    /// Additive increase: one more call per second after a probe interval without refusals.
    /// Returns the new value when it changed.
    pub fn tick(&mut self, now_us: u64, probe_us: u64) -> Option<u32> {
        if self.effective >= self.configured {
            return None;
        }
        let quiet = |at: Option<u64>| at.is_none_or(|t| now_us >= t + probe_us);
        if quiet(self.changed_us) && quiet(self.refused_us) {
            self.effective += 1;
            self.changed_us = Some(now_us);
            self.raised = true;
            return Some(self.effective);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000;
    const PROBE: u64 = 30 * S;

    #[test]
    fn an_isolated_refusal_is_jitter() {
        let mut l = Learned::new(20);
        assert_eq!(l.refused(10 * S, PROBE), Verdict::Jitter);
        assert_eq!(l.refused(20 * S, PROBE), Verdict::Jitter);
        assert_eq!(l.effective, 20);
    }

    #[test]
    fn a_quota_of_one_is_found_in_four_seconds() {
        let mut l = Learned::new(20);
        // Each second a burst of `effective` calls; Tencent admits one, refuses the rest.
        let mut t = 0;
        let mut seen = Vec::new();
        while l.effective > 1 {
            for k in 1..l.effective {
                let _ = l.refused(t + k as u64 * 1000, PROBE);
            }
            seen.push(l.effective);
            t += S + 50_000;
        }
        assert_eq!(seen, vec![10, 5, 2, 1]);
        assert!(t <= 5 * S, "{t}");
        // At one call per second nothing is refused; the probe comes one interval later.
        assert_eq!(l.tick(t + 10 * S, PROBE), None);
        assert_eq!(l.tick(t + PROBE, PROBE), Some(2));
        // The probe fails: its one refusal lowers at once (no jitter benefit of the doubt).
        assert_eq!(
            l.refused(t + PROBE + S, PROBE),
            Verdict::Lowered { from: 2, to: 1 }
        );
        // And the next probe waits a whole interval again.
        assert_eq!(l.tick(t + PROBE + 10 * S, PROBE), None);
    }

    #[test]
    fn one_decrease_per_second() {
        let mut l = Learned::new(20);
        assert_eq!(l.refused(0, PROBE), Verdict::Jitter);
        assert_eq!(l.refused(1, PROBE), Verdict::Lowered { from: 20, to: 10 });
        for i in 2..100 {
            assert_eq!(l.refused(i, PROBE), Verdict::AlreadyLowered);
        }
        assert_eq!(
            l.refused(S + 1, PROBE),
            Verdict::Lowered { from: 10, to: 5 }
        );
    }

    #[test]
    fn recovers_to_the_configured_quota_and_no_further() {
        let mut l = Learned::new(3);
        l.refused(0, PROBE);
        l.refused(0, PROBE);
        assert_eq!(l.effective, 1);
        let mut t = 0;
        while l.effective < 3 {
            t += S;
            l.tick(t, PROBE);
        }
        assert_eq!(t, 2 * PROBE);
        assert_eq!(l.tick(t + 10 * PROBE, PROBE), None);
        assert_eq!(l.effective, 3);
    }
}
