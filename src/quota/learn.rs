//! The effective quota: what Tencent really admits, learned from its refusals.
//!
//! The configured quota is what Tencent's documentation said when the gateway was set up; the
//! page for `CreateAndSendClientInvitationMail` went from 20 to 1 request/s in one revision. A
//! gateway that trusts the number retries into the wall forever. So each action has an
//! effective quota `n ≤ configured`, changed by AIMD, as TCP does with its window.
//!
//! Not every `RequestLimitExceeded` means the quota is lower: a call may arrive a little early in
//! a second (jitter: the guard must widen), or someone else may use the same account now and
//! then. What tells them apart is the *shape* of a second ([`Outcomes`]): a per-second quota
//! admits the first R arrivals of the second and refuses every later one, so its refusals form a
//! **suffix** of the second's calls. A refusal followed, in the same second, by an admitted call
//! cannot come from a lower quota: it is jitter or noise, and widens the guard instead.
//!
//! - A suffix of at least two refusals is evidence enough; a suffix of one refusal counts when
//!   another suffix was seen less than [`PERSISTENCE_US`] before, or while `n` was raised less
//!   than a probe interval ago (a failed probe). Then `n` at least halves: it becomes the number
//!   of calls that second admitted, if that is smaller (a quota of 1 is found from the first
//!   burst), and never less than 1; at most once per second, since one burst shows many refusals.
//!   (In a fleet each replica only sees its own calls, so its count undershoots the fleet's:
//!   the conservative direction, which the probes then climb back from.)
//! - A suffix in a second that had already admitted the whole effective quota of this replica's
//!   own calls is not evidence: more than `n` calls arrived in that second, so they were too close
//!   together (jitter beyond the guard); the guard widens instead. In a fleet a replica sees only
//!   its own calls, so it can rarely tell: there, two single refusals within [`PERSISTENCE_US`]
//!   caused by jitter do lower the fleet's quota, which climbs back one call per probe interval;
//!   a single refusal also widens the guard, so the jitter behind it stops. Only plain
//!   `RequestLimitExceeded` is judged: its sub-codes (`UinLimitExceeded`, `IPLimitExceeded`,
//!   `GlobalRegionUinLimitExceeded`) are limits of the account, the address or the region across
//!   actions, not this action's quota; they are retried but teach nothing.
//! - After a probe interval without evidence, `n` grows by one (additive increase), back toward
//!   the configured value.
//!
//! The same rules run in Redis for a fleet ([`super::shared::EVIDENCE`]); each replica judges the
//! seconds of its own calls (a fleet-wide suffix is a suffix of each replica's calls too).

use std::collections::VecDeque;

/// Two suffixes closer than this are one pattern, not chance.
pub const PERSISTENCE_US: u64 = 3_000_000;
/// At most one decrease per this long.
pub const DECREASE_EVERY_US: u64 = 1_000_000;
/// A second is judged once this long after its end, when its calls have been answered.
pub const JUDGE_AFTER_MS: u64 = 250;
/// Outcomes kept per action (older ones are dropped unjudged).
const KEPT: usize = 4_096;

/// How the refusals of one wall-clock second were arranged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Every refused call arrived after every admitted one: what a lower quota looks like.
    Suffix { admitted: u32, refused: u32 },
    /// An admitted call arrived after a refused one: jitter, or someone else on the account.
    Interleaved,
}

/// The answered calls of one action, by estimated arrival (Unix ms), until their second is judged.
#[derive(Debug, Clone, Default)]
pub struct Outcomes {
    calls: VecDeque<(u64, bool)>,
}

impl Outcomes {
    /// A call that arrived at about `arrival_ms` was refused (`RequestLimitExceeded`) or not.
    pub fn record(&mut self, arrival_ms: u64, refused: bool) {
        if self.calls.len() == KEPT {
            self.calls.pop_front();
        }
        self.calls.push_back((arrival_ms, refused));
    }

    /// Judges every second that ended at least [`JUDGE_AFTER_MS`] before `now_ms` and had a
    /// refusal; forgets their calls.
    pub fn judge(&mut self, now_ms: u64) -> Vec<Shape> {
        let mut done: Vec<(u64, bool)> = Vec::new();
        self.calls.retain(|&(at, refused)| {
            let ended = (at / 1000 + 1) * 1000;
            if ended + JUDGE_AFTER_MS <= now_ms {
                done.push((at, refused));
                false
            } else {
                true
            }
        });
        done.sort_unstable();
        let mut shapes = Vec::new();
        for second in done.chunk_by(|a, b| a.0 / 1000 == b.0 / 1000) {
            let refused = second.iter().filter(|(_, r)| *r).count() as u32;
            if refused == 0 {
                continue;
            }
            let first_refused = second.iter().position(|(_, r)| *r).unwrap_or(0);
            let admitted_after = second[first_refused..].iter().any(|(_, r)| !r);
            shapes.push(if admitted_after {
                Shape::Interleaved
            } else {
                Shape::Suffix {
                    admitted: second.len() as u32 - refused,
                    refused,
                }
            });
        }
        shapes
    }
}

/// What a suffix meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough yet: remembered, `n` stays.
    Noted,
    /// The effective quota went from `from` to `to`.
    Lowered { from: u32, to: u32 },
    /// Already answered by a decrease less than a second ago.
    AlreadyLowered,
    /// Not a lower quota but calls too close together (jitter, or another user of the account):
    /// the guard widened.
    Jitter,
}

/// One action's effective quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub configured: u32,
    pub effective: u32,
    /// When `effective` last changed (µs), if ever.
    pub changed_us: Option<u64>,
    /// When the last suffix was seen (µs), if ever.
    pub evidence_us: Option<u64>,
    /// Whether the last change was a probe upward (a suffix soon after it undoes it at once).
    pub raised: bool,
}

impl Learned {
    pub fn new(configured: u32) -> Self {
        Self {
            configured,
            effective: configured,
            changed_us: None,
            evidence_us: None,
            raised: false,
        }
    }

    /// A second whose `admitted` calls were followed by `refused` refusals, judged at `now_us`.
    pub fn suffix(&mut self, now_us: u64, admitted: u32, refused: u32, probe_us: u64) -> Verdict {
        let recent = |at: Option<u64>, within: u64| at.is_some_and(|t| now_us < t + within);
        let strong = refused >= 2
            || recent(self.evidence_us, PERSISTENCE_US)
            || (self.raised && recent(self.changed_us, probe_us));
        self.evidence_us = Some(now_us);
        if !strong {
            return Verdict::Noted;
        }
        if !self.raised && recent(self.changed_us, DECREASE_EVERY_US) {
            return Verdict::AlreadyLowered;
        }
        let from = self.effective;
        let halved = from / 2;
        let to = if admitted >= 1 {
            halved.min(admitted)
        } else {
            halved
        }
        .max(1);
        if to >= from {
            return Verdict::AlreadyLowered;
        }
        self.effective = to;
        self.changed_us = Some(now_us);
        self.raised = false;
        Verdict::Lowered { from, to }
    }

    /// Additive increase: one more call per second after a probe interval without evidence.
    /// Returns the new value when it changed.
    pub fn tick(&mut self, now_us: u64, probe_us: u64) -> Option<u32> {
        if self.effective >= self.configured {
            return None;
        }
        let quiet = |at: Option<u64>| at.is_none_or(|t| now_us >= t + probe_us);
        if quiet(self.changed_us) && quiet(self.evidence_us) {
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
    fn a_lower_quota_refuses_a_suffix_of_each_second() {
        let mut o = Outcomes::default();
        // Tencent admits 1 per second: the first call of the second passes, the rest are refused.
        for i in 0..20 {
            o.record(10_000 + i * 3, i > 0);
        }
        assert!(o.judge(11_249).is_empty(), "not judged before it is over");
        assert_eq!(
            o.judge(11_250),
            vec![Shape::Suffix {
                admitted: 1,
                refused: 19
            }]
        );
        assert!(o.judge(20_000).is_empty(), "judged once");
    }

    #[test]
    fn a_refusal_before_an_admitted_call_is_jitter_or_noise() {
        let mut o = Outcomes::default();
        o.record(5_000, false);
        o.record(5_010, true);
        o.record(5_020, false);
        // A second without refusals needs no verdict.
        o.record(6_500, false);
        assert_eq!(o.judge(10_000), vec![Shape::Interleaved]);
    }

    #[test]
    fn a_quota_of_one_is_found_from_the_first_burst() {
        let mut l = Learned::new(20);
        // The first burst: one admitted, nineteen refused. The quota of 1 is found at once.
        let t = 2 * S;
        assert_eq!(
            l.suffix(t, 1, 19, PROBE),
            Verdict::Lowered { from: 20, to: 1 }
        );
        // At one call per second nothing is refused; the probe comes one interval later.
        assert_eq!(l.tick(t + 10 * S, PROBE), None);
        assert_eq!(l.tick(t + PROBE, PROBE), Some(2));
        // The probe fails: its one refusal lowers at once.
        assert_eq!(
            l.suffix(t + PROBE + 2 * S, 1, 1, PROBE),
            Verdict::Lowered { from: 2, to: 1 }
        );
        assert_eq!(l.tick(t + PROBE + 10 * S, PROBE), None);
    }

    #[test]
    fn one_lone_refusal_at_the_end_of_a_second_is_only_noted() {
        let mut l = Learned::new(20);
        assert_eq!(l.suffix(10 * S, 19, 1, PROBE), Verdict::Noted);
        assert_eq!(l.suffix(20 * S, 19, 1, PROBE), Verdict::Noted);
        assert_eq!(l.effective, 20);
        // Twice within 3 s is a pattern: halved (19 admitted is more than half).
        assert_eq!(
            l.suffix(22 * S, 19, 1, PROBE),
            Verdict::Lowered { from: 20, to: 10 }
        );
    }

    #[test]
    fn one_decrease_per_second() {
        let mut l = Learned::new(20);
        assert_eq!(
            l.suffix(0, 15, 5, PROBE),
            Verdict::Lowered { from: 20, to: 10 }
        );
        assert_eq!(l.suffix(S / 2, 9, 5, PROBE), Verdict::AlreadyLowered);
        assert_eq!(
            l.suffix(S, 9, 5, PROBE),
            Verdict::Lowered { from: 10, to: 5 }
        );
        // Nothing admitted at all (someone else took the second): halved.
        assert_eq!(
            l.suffix(2 * S, 0, 5, PROBE),
            Verdict::Lowered { from: 5, to: 2 }
        );
    }

    #[test]
    fn recovers_to_the_configured_quota_and_no_further() {
        let mut l = Learned::new(3);
        l.suffix(0, 1, 2, PROBE);
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
