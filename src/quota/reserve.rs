//! Reserving a slot: in-process, in Redis, or on this replica's share; and the departure check.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;

use super::fleet::Gate;
use super::reservations::{ReservationLog, Rule};
use super::shared::{Decision, ReserveArgs};
use super::{LimiterKind, QuotaError, QuotaExceeded, Quotas, Ticket};

impl Quotas {
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
        self.reserve_leaving(action, max_wait, lead, 0).await
    }

    /// Like [`Quotas::reserve`], for a call that may fill each window only up to `headroom`
    /// slots short of the quota: those stay for calls of a higher priority (with a horizon
    /// shorter than theirs, see [`crate::tencent::Priority`]), which then find a slot in the
    /// nearest window however many of these come. At least one slot is always usable.
    pub async fn reserve_leaving(
        &self,
        action: &'static str,
        max_wait: Duration,
        lead: Duration,
        headroom: u32,
    ) -> Result<Ticket, QuotaError> {
        let below = |limit: u32| limit.saturating_sub(headroom).max(1);
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
                limit: below(limit),
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
            configured: below(quota.configured),
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
}
