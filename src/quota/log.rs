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

/// The last N reservations of one action, oldest first.
#[derive(Debug, Clone)]
pub struct ReservationLog {
    limit: usize,
    window_us: u64,
    slots: VecDeque<u64>,
}

impl ReservationLog {
    /// `limit` calls per `window_us`; `limit` must be at least 1.
    pub fn new(limit: u32, window_us: u64) -> Self {
        assert!(limit >= 1, "a quota admits at least one call per window");
        Self {
            limit: limit as usize,
            window_us,
            slots: VecDeque::with_capacity(limit as usize),
        }
    }

    pub fn limit(&self) -> u32 {
        self.limit as u32
    }

    /// The earliest slot a call arriving at `now_us` would get.
    pub fn next_slot(&self, now_us: u64) -> u64 {
        let latest = self.slots.back().copied().unwrap_or(0);
        let mut slot = now_us.max(latest);
        if self.slots.len() == self.limit {
            slot = slot.max(self.slots[0] + self.window_us);
        }
        slot
    }

    /// Reserves the next slot if it is at most `max_wait_us` away; otherwise reserves nothing.
    pub fn reserve(&mut self, now_us: u64, max_wait_us: u64) -> Result<Reservation, Refusal> {
        let slot = self.next_slot(now_us);
        let wait_us = slot - now_us;
        if wait_us > max_wait_us {
            return Err(Refusal {
                retry_after_us: wait_us - max_wait_us,
            });
        }
        if self.slots.len() == self.limit {
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

    #[test]
    fn a_burst_of_n_goes_at_once_and_the_next_waits_a_window() {
        let mut log = ReservationLog::new(5, SEC);
        for _ in 0..5 {
            assert_eq!(log.reserve(100, 10 * SEC).unwrap().wait_us, 0);
        }
        let sixth = log.reserve(100, 10 * SEC).unwrap();
        assert_eq!(sixth.slot_us, 100 + SEC);
        assert_eq!(sixth.wait_us, SEC);
    }

    #[test]
    fn waiting_is_fifo_and_slots_never_decrease() {
        let mut log = ReservationLog::new(3, SEC);
        let mut last = 0;
        for i in 0..30 {
            let r = log.reserve(i * 1000, 100 * SEC).unwrap();
            assert!(r.slot_us >= last, "call {i} overtook an earlier one");
            last = r.slot_us;
        }
    }

    #[test]
    fn refusal_reserves_nothing_and_says_when_to_come_back() {
        let mut log = ReservationLog::new(2, SEC);
        log.reserve(0, 0).unwrap();
        log.reserve(0, 0).unwrap();
        // Next slot is at 1 s; with a 300 ms budget the caller is 700 ms too early.
        let refusal = log.reserve(0, 300_000).unwrap_err();
        assert_eq!(refusal.retry_after_us, 700_000);
        assert_eq!(log.next_slot(0), SEC, "a refusal must not take a slot");
        // Coming back exactly then is admitted.
        assert_eq!(log.reserve(700_000, 300_000).unwrap().slot_us, SEC);
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
            let mut log = ReservationLog::new(limit, SEC);
            let mut now = 0;
            let mut slots = Vec::new();
            for gap in gaps {
                now += gap;
                match log.reserve(now, max_wait) {
                    Ok(r) => {
                        prop_assert!(r.wait_us <= max_wait);
                        prop_assert_eq!(r.slot_us, now + r.wait_us);
                        if let Some(&last) = slots.last() { prop_assert!(r.slot_us >= last); }
                        slots.push(r.slot_us);
                    }
                    Err(refusal) => {
                        prop_assert!(refusal.retry_after_us > 0);
                        prop_assert_eq!(log.next_slot(now) - now - max_wait, refusal.retry_after_us);
                    }
                }
            }
            prop_assert!(max_in_any_window(&slots, SEC) <= limit as usize);
            // And so no wall-clock second holds more than N either.
            let mut per_second = std::collections::HashMap::new();
            for s in &slots { *per_second.entry(s / SEC).or_insert(0usize) += 1; }
            prop_assert!(per_second.values().all(|&c| c <= limit as usize));
        }

        /// With everyone willing to wait, the log admits exactly N per window: it does not waste quota.
        #[test]
        fn saturated_log_is_fully_used(limit in 1u32..10, calls in 1usize..200) {
            let mut log = ReservationLog::new(limit, SEC);
            let mut last = 0;
            for _ in 0..calls { last = log.reserve(0, u64::MAX).unwrap().slot_us; }
            let expected_windows = (calls as u64 - 1) / limit as u64;
            prop_assert_eq!(last, expected_windows * SEC);
        }
    }
}
