//! The reservation log: the pure arithmetic of the quota limiter.
//!
//! Tencent admits the first N calls of each wall-clock second per action and account. A token
//! bucket with burst N lets up to 2N−1 calls into one such second; this log instead guarantees
//! that no rolling window of `window` (one second plus a guard against jitter) holds more than N
//! reservations, whatever the alignment, and so no wall-clock second does either.
//!
//! Each call reserves the earliest instant `t ≥ now` at which `(t − window, t]` holds fewer than N
//! reservations. Because `now` and the N-th latest reservation only grow, slots are handed out in
//! arrival order: waiting is FIFO. Times are plain microseconds on the caller's clock, so the
//! in-process limiter (tokio's clock) and the Redis script (Redis's `TIME`) share this code's logic.

use std::collections::VecDeque;

/// A granted slot: the caller may send at `slot`, `wait` from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub slot_us: u64,
    pub wait_us: u64,
}

/// A refused call: nothing was reserved. A call made `retry_after_us` from now would be admitted
/// if nobody else reserved in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub retry_after_us: u64,
}

/// The limit and window a reservation is made under: the effective quota (which may have been
/// learned lower than configured) and one second plus the guard in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub limit: u32,
    pub window_us: u64,
}

/// The last reservations of one action (as many as the configured quota), oldest first.
///
/// Each reservation is checked against the rule in force when it is made. Keeping as many
/// entries as the *configured* quota, not the effective one, means a rule that changes (a lower
/// learned quota, a wider guard) never loses an entry it needs.
#[derive(Debug, Clone)]
pub struct ReservationLog {
    capacity: usize,
    slots: VecDeque<u64>,
}

impl ReservationLog {
    /// Keeps the last `capacity` reservations; `capacity` is the configured quota (at least 1).
    pub fn new(capacity: u32) -> Self {
        assert!(capacity >= 1, "a quota admits at least one call per window");
        Self {
            capacity: capacity as usize,
            slots: VecDeque::with_capacity(capacity as usize),
        }
    }

    pub fn capacity(&self) -> u32 {
        self.capacity as u32
    }

    /// The earliest slot a call arriving at `now_us` would get under `rule`.
    pub fn next_slot(&self, now_us: u64, rule: Rule) -> u64 {
        let limit = (rule.limit.max(1) as usize).min(self.capacity);
        let latest = self.slots.back().copied().unwrap_or(0);
        let mut slot = now_us.max(latest);
        if self.slots.len() >= limit {
            slot = slot.max(self.slots[self.slots.len() - limit] + rule.window_us);
        }
        slot
    }

    /// Reserves the next slot if it is at most `max_wait_us` away; otherwise reserves nothing.
    pub fn reserve(
        &mut self,
        now_us: u64,
        max_wait_us: u64,
        rule: Rule,
    ) -> Result<Reservation, Refusal> {
        self.reserve_from(now_us, now_us, max_wait_us, rule)
    }

    /// Like [`ReservationLog::reserve`], for a caller that cannot leave before `earliest_us`
    /// (its connection is still being made): the slot is the first free one from then on.
    pub fn reserve_from(
        &mut self,
        earliest_us: u64,
        now_us: u64,
        max_wait_us: u64,
        rule: Rule,
    ) -> Result<Reservation, Refusal> {
        let slot = self.next_slot(earliest_us.max(now_us), rule);
        let wait_us = slot - now_us;
        if wait_us > max_wait_us {
            return Err(Refusal {
                retry_after_us: wait_us - max_wait_us,
            });
        }
        if self.slots.len() == self.capacity {
            self.slots.pop_front();
        }
        self.slots.push_back(slot);
        Ok(Reservation {
            slot_us: slot,
            wait_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000;

    fn rule(limit: u32) -> Rule {
        Rule {
            limit,
            window_us: SEC,
        }
    }

    #[test]
    fn a_burst_of_n_goes_at_once_and_the_next_waits_a_window() {
        let mut log = ReservationLog::new(5);
        for _ in 0..5 {
            assert_eq!(log.reserve(100, 10 * SEC, rule(5)).unwrap().wait_us, 0);
        }
        let sixth = log.reserve(100, 10 * SEC, rule(5)).unwrap();
        assert_eq!(sixth.slot_us, 100 + SEC);
        assert_eq!(sixth.wait_us, SEC);
    }

    #[test]
    fn waiting_is_fifo_and_slots_never_decrease() {
        let mut log = ReservationLog::new(3);
        let mut last = 0;
        for i in 0..30 {
            let r = log.reserve(i * 1000, 100 * SEC, rule(3)).unwrap();
            assert!(r.slot_us >= last, "call {i} overtook an earlier one");
            last = r.slot_us;
        }
    }

    #[test]
    fn refusal_reserves_nothing_and_says_when_to_come_back() {
        let mut log = ReservationLog::new(2);
        log.reserve(0, 0, rule(2)).unwrap();
        log.reserve(0, 0, rule(2)).unwrap();
        // Next slot is at 1 s; with a 300 ms budget the caller is 700 ms too early.
        let refusal = log.reserve(0, 300_000, rule(2)).unwrap_err();
        assert_eq!(refusal.retry_after_us, 700_000);
        assert_eq!(
            log.next_slot(0, rule(2)),
            SEC,
            "a refusal must not take a slot"
        );
        // Coming back exactly then is admitted.
        assert_eq!(log.reserve(700_000, 300_000, rule(2)).unwrap().slot_us, SEC);
    }

    /// Counts the most reservations in any half-open window `(t − w, t]`.
    fn max_in_any_window(slots: &[u64], w: u64) -> usize {
        slots
            .iter()
            .map(|&end| slots.iter().filter(|&&s| s + w > end && s <= end).count())
            .max()
            .unwrap_or(0)
    }

    proptest! {
        /// Whatever the arrival pattern and wait budget, no rolling window holds more than N slots,
        /// slots are handed out in arrival order, and no slot is further away than the budget.
        #[test]
        fn never_more_than_n_in_any_window(
            limit in 1u32..8,
            gaps in proptest::collection::vec(0u64..400_000, 1..120),
            max_wait in 0u64..3_000_000,
        ) {
            let mut log = ReservationLog::new(limit);
            let mut now = 0;
            let mut slots = Vec::new();
            for gap in gaps {
                now += gap;
                match log.reserve(now, max_wait, rule(limit)) {
                    Ok(r) => {
                        prop_assert!(r.wait_us <= max_wait);
                        prop_assert_eq!(r.slot_us, now + r.wait_us);
                        if let Some(&last) = slots.last() { prop_assert!(r.slot_us >= last); }
                        slots.push(r.slot_us);
                    }
                    Err(refusal) => {
                        prop_assert!(refusal.retry_after_us > 0);
                        prop_assert_eq!(log.next_slot(now, rule(limit)) - now - max_wait, refusal.retry_after_us);
                    }
                }
            }
            prop_assert!(max_in_any_window(&slots, SEC) <= limit as usize);
            // And so no wall-clock second holds more than N either.
            let mut per_second = std::collections::HashMap::new();
            for s in &slots { *per_second.entry(s / SEC).or_insert(0usize) += 1; }
            prop_assert!(per_second.values().all(|&c| c <= limit as usize));
        }

        /// Whatever rule each call is made under (a learned quota between 1 and the configured
        /// one, a guard between 0 and 250 ms), each granted slot ends a window of its own rule
        /// that holds at most its own limit: a rule that changes never lets earlier grants crowd it.
        #[test]
        fn each_grant_respects_the_rule_it_was_made_under(
            capacity in 1u32..8,
            calls in proptest::collection::vec((0u64..300_000, 1u32..8, 0u64..250_000), 1..150),
        ) {
            let mut log = ReservationLog::new(capacity);
            let mut now = 0;
            let mut slots: Vec<u64> = Vec::new();
            for (gap, limit, guard) in calls {
                now += gap;
                let r = Rule { limit: limit.min(capacity), window_us: SEC + guard };
                if let Ok(grant) = log.reserve(now, 2 * SEC, r) {
                    let inside = slots.iter().filter(|&&s| s + r.window_us > grant.slot_us).count();
                    prop_assert!(inside < r.limit as usize, "{inside} earlier slots in the window of a limit {}", r.limit);
                    slots.push(grant.slot_us);
                }
            }
        }

        /// With everyone willing to wait, the log admits exactly N per window: it does not waste quota.
        #[test]
        fn saturated_log_is_fully_used(limit in 1u32..10, calls in 1usize..200) {
            let mut log = ReservationLog::new(limit);
            let mut last = 0;
            for _ in 0..calls { last = log.reserve(0, u64::MAX, rule(limit)).unwrap().slot_us; }
            let expected_windows = (calls as u64 - 1) / limit as u64;
            prop_assert_eq!(last, expected_windows * SEC);
        }
    }
}
