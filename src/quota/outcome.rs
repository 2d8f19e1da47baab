//! What Tencent's answers teach: refusals that look like jitter widen the guard, suffixes lower
//! the effective quota (see [`super::learn`]).

use std::sync::atomic::Ordering;

use super::learn::{Shape, Verdict};
use super::{ActionQuota, Quotas};

impl Quotas {
    /// Tencent answered a call of `action` that arrived at about `arrival_ms` (Unix ms, this
    /// replica's clock), refusing it with `RequestLimitExceeded` or not. Judges the seconds that
    /// are over (see [`super::learn`]): interleaved refusals widen the guard, suffixes may lower the
    /// effective quota. Returns what changed, for tests.
    pub async fn outcome(
        &self,
        action: &'static str,
        arrival_ms: u64,
        refused: bool,
        now_ms: u64,
    ) -> Vec<Verdict> {
        let quota = self.action(action);
        let shapes = {
            let mut outcomes = quota.outcomes.lock();
            outcomes.record(arrival_ms, refused);
            outcomes.judge(now_ms)
        };
        let mut verdicts = Vec::new();
        for shape in shapes {
            let now = self.now_us();
            let effective = quota.effective.load(Ordering::Relaxed);
            match shape {
                Shape::Interleaved => {
                    let guard = self.widen(quota, now);
                    tracing::warn!(
                        action,
                        guard_ms = guard / 1000,
                        "Tencent refused a call although a later one in the same second passed: jitter (or another user of the account); widening the guard"
                    );
                    verdicts.push(Verdict::Jitter);
                }
                // The gateway's own count: this second already held the whole quota before the
                // refusals, so they say the calls were too close (jitter), not that the quota is
                // lower.
                Shape::Suffix { admitted, .. } if admitted >= effective => {
                    let guard = self.widen(quota, now);
                    tracing::warn!(
                        action,
                        admitted_in_second = admitted,
                        effective,
                        guard_ms = guard / 1000,
                        "more calls than the quota arrived in one second: jitter beyond the guard; widening the guard"
                    );
                    verdicts.push(Verdict::Jitter);
                }
                Shape::Suffix { admitted, refused } => {
                    // One refusal at the end of a second may be jitter too (in a fleet this
                    // replica cannot see whether the second was full): the guard widens as well.
                    if refused == 1 {
                        self.widen(quota, now);
                    }
                    let verdict = self.suffix(action, quota, admitted, refused, now).await;
                    if let Verdict::Lowered { from, to } = verdict {
                        tracing::warn!(
                            action,
                            configured = quota.configured,
                            admitted_in_second = admitted,
                            refused_in_second = refused,
                            previous = from,
                            observed = to,
                            "Tencent admits fewer calls per second than configured; lowering the effective quota"
                        );
                    }
                    verdicts.push(verdict);
                }
            }
        }
        verdicts
    }

    /// Widens `quota`'s guard after a refusal that looks like jitter; returns the new guard (µs).
    fn widen(&self, quota: &ActionQuota, now: u64) -> u64 {
        let slack = self.slack.lock().current_us(now);
        self.pooled.lock().widen(now, slack);
        quota.path.lock().widen(now, slack);
        self.path_of(quota, slack).0
    }

    async fn suffix(
        &self,
        action: &'static str,
        quota: &ActionQuota,
        admitted: u32,
        refused: u32,
        now: u64,
    ) -> Verdict {
        let probe = self.config.probe;
        let local = || {
            let mut learned = quota.learned.lock();
            let verdict = learned.suffix(now, admitted, refused, probe.as_micros() as u64);
            quota.effective.store(learned.effective, Ordering::Relaxed);
            verdict
        };
        match &self.fleet {
            None => local(),
            Some(fleet) => match fleet
                .quotas
                .suffix(action, quota.configured, admitted, refused, probe, None)
                .await
            {
                Ok((verdict, n)) => {
                    quota.effective.store(n, Ordering::Relaxed);
                    verdict
                }
                Err(_) => local(),
            },
        }
    }
}
