//! Leaving on time: a slot reserved a connection's lead ahead, the wait, the departure check,
//! and what a refused reservation tells the caller.

use std::time::Duration;

use tokio::time::Instant;

use super::super::actions::Action;
use super::super::error::CallError;
use super::super::wire::Conn;
use super::{CallContext, LEAD_RECHECK, TencentClient, not_sent};
use crate::quota::QuotaError;

impl TencentClient {
    /// Reserves a slot and makes a connection ready for it. `Ok(None)`: the call could not
    /// leave within the slack after its slot (the slot is given up) and must reserve again.
    pub(super) async fn depart<A: Action>(
        &self,
        ctx: &CallContext,
        quota_wait: &mut Duration,
    ) -> Result<Option<Conn>, CallError> {
        let max_wait = ctx
            .priority
            .horizon(self.max_wait)
            .min(ctx.deadline.saturating_duration_since(Instant::now()));
        // A kept-alive connection leaves at its slot; without one, the slot is taken no sooner
        // than a new connection takes, which is made while the call waits.
        let idle = self.wire.take_idle(Duration::ZERO).await;
        let lead = if idle.is_some() {
            Duration::ZERO
        } else {
            self.wire.lead()
        };
        let reserved = self
            .quotas
            .reserve_leaving(A::NAME, max_wait, lead, ctx.priority.headroom())
            .await;
        let ticket = match reserved {
            Ok(ticket) => ticket,
            Err(error) => {
                // Refused: the connection stays pooled for the next call.
                if let Some(conn) = idle {
                    self.wire.checkin(conn);
                }
                return Err(self.quota_refused::<A>(error));
            }
        };
        *quota_wait += ticket.waited;
        self.metrics.quota_wait(A::NAME, ticket.waited);
        let hold = ticket.not_before.saturating_duration_since(Instant::now());
        // How late the host wakes a call whose connection was ready before its slot teaches the
        // slack; a connection that took longer than the lead does not (it is the path, not the
        // host). A kept-alive connection taken before reserving was ready before the slot.
        let (mut conn, ready_in_time) = match idle {
            Some(conn) if self.wire.good_for(&conn, hold) => (conn, true),
            other => {
                if let Some(conn) = other {
                    self.wire.checkin(conn);
                }
                // Connect one lead before the slot. The lead is looked at again every 100 ms:
                // setups measured meanwhile (the first ones after a start) may lengthen it.
                while let Some(start) = ticket.not_before.checked_sub(self.wire.lead()) {
                    let now = Instant::now();
                    if now >= start {
                        break;
                    }
                    tokio::time::sleep_until(start.min(now + LEAD_RECHECK)).await;
                }
                let hold = ticket.not_before.saturating_duration_since(Instant::now());
                let conn = self.wire.checkout(hold).await.map_err(not_sent)?;
                (conn, Instant::now() <= ticket.not_before)
            }
        };
        tokio::time::sleep_until(ticket.not_before).await;
        let woke = Instant::now();
        let mut connected_in_time = ready_in_time;
        if !self.wire.usable(&conn) {
            connected_in_time = false;
            conn = self.wire.checkout(Duration::ZERO).await.map_err(not_sent)?;
        }
        let now = Instant::now();
        if !self
            .quotas
            .departed(&ticket, ready_in_time.then_some(woke), now)
        {
            let reason =
                if ticket.not_before.saturating_duration_since(ticket.origin) > ticket.slack {
                    "redis"
                } else if connected_in_time {
                    "wake"
                } else {
                    "connect"
                };
            self.metrics.quota_late(A::NAME, reason);
            tracing::debug!(
                late_ms = now.saturating_duration_since(ticket.origin).as_millis() as u64,
                reason,
                "missed the quota slot; reserving again"
            );
            self.wire.checkin(conn);
            return Ok(None);
        }
        Ok(Some(conn))
    }

    /// The quota gave no slot: counted, and what the caller is told.
    fn quota_refused<A: Action>(&self, error: QuotaError) -> CallError {
        self.metrics.quota_rejected(A::NAME);
        match error {
            QuotaError::Exceeded(exceeded) => CallError::QuotaExceeded {
                action: A::NAME,
                exceeded,
            },
            QuotaError::Unavailable { retry_after } => CallError::QuotaUnavailable {
                action: A::NAME,
                retry_after,
            },
        }
    }
}
