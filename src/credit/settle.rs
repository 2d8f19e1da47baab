//! Settling allocations of unknown outcome from Tencent's allocation history: on a retry, and in
//! the background by one replica at a time.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::IntoResponse;
use redis::Script;
use tracing::Instrument;

use super::history::{Lookup, Wanted};
use crate::audit::Outcome;
use crate::domain::CreditAmount;
use crate::idempotency::{self};
use crate::store::{KeyState, PendingCredit};

use super::{Allocator, CreditResponse, RETRY_BUSY, RETRY_LOOKUP, Settled};

/// KEYS[1] lease. ARGV: token, ttl ms. Takes or renews the lease; 1 if ours.
const LEASE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"#;

impl Allocator {
    /// Settles the `unknown` record of `scoped` from the customer's history.
    pub async fn settle(&self, scoped: &str, record: KeyState) -> Settled {
        // A span for traces: reconciliation, whether a retry or the resolver asked for it.
        let span = tracing::debug_span!(target: "partner_gateway::spans", "reconcile", outcome = tracing::field::Empty);
        let settled = self
            .settle_inner(scoped, record)
            .instrument(span.clone())
            .await;
        span.record(
            "outcome",
            match &settled {
                Settled::Applied(_) => "applied",
                Settled::Pending(_) => "pending",
                Settled::NotApplied(_) => "not_applied",
            },
        );
        settled
    }

    async fn settle_inner(&self, scoped: &str, record: KeyState) -> Settled {
        let KeyState::Unknown {
            fingerprint,
            pending,
        } = &record
        else {
            return Settled::Pending(Duration::ZERO);
        };
        let conclusive_from_ms = pending.sent_ms + self.config.settle_ms;
        let wanted = Wanted {
            uin: pending.uin,
            marker: &pending.marker,
            cents: pending.amount_cents,
            cutoff_s: (pending
                .sent_ms
                .saturating_sub(self.config.history_margin_ms)
                / 1000) as i64,
            conclusive_from_ms,
        };
        match self.history.lookup(&wanted).await {
            Lookup::Found(entry) => {
                let body = CreditResponse {
                    uin: pending.uin.to_string(),
                    amount: pending.amount_cents as f64 / 100.0,
                    total_credit: entry.total_credit,
                    remaining_credit: entry.remaining_credit,
                    request_id: entry.request_id.clone(),
                };
                let (stored, _) = idempotency::capture(Json(body).into_response()).await;
                let completed = KeyState::Completed {
                    fingerprint: fingerprint.clone(),
                    response: stored.clone(),
                };
                match self
                    .keys
                    .replace(&self.store, scoped, &record, completed)
                    .await
                {
                    Ok(true) => {
                        self.services
                            .metrics
                            .reconciliation(Outcome::Applied.as_str());
                        audit_settled(pending, scoped, "applied", &entry.request_id);
                        Settled::Applied(stored)
                    }
                    // Settled meanwhile by someone else: go by what is there now.
                    _ => self.current(scoped).await,
                }
            }
            Lookup::Absent { as_of_ms } if as_of_ms >= conclusive_from_ms => {
                let retryable = KeyState::Retryable {
                    fingerprint: fingerprint.clone(),
                };
                match self
                    .keys
                    .replace(&self.store, scoped, &record, retryable.clone())
                    .await
                {
                    Ok(true) => {
                        self.services.metrics.reconciliation("not_applied");
                        audit_settled(pending, scoped, "not_applied", "");
                        Settled::NotApplied(retryable)
                    }
                    _ => self.current(scoped).await,
                }
            }
            Lookup::Absent { .. } => {
                self.services.metrics.reconciliation("pending");
                let wait = conclusive_from_ms.saturating_sub(self.now_ms()).max(1_000);
                Settled::Pending(Duration::from_millis(wait))
            }
            Lookup::Busy => {
                self.services.metrics.reconciliation("pending");
                Settled::Pending(RETRY_BUSY)
            }
            // The history search logged why.
            Lookup::Unreadable(_) => {
                self.services.metrics.reconciliation("failed");
                Settled::Pending(RETRY_LOOKUP)
            }
        }
    }

    /// What the record of `scoped` says now, after a lost race.
    async fn current(&self, scoped: &str) -> Settled {
        match self.store.get(scoped).await {
            Ok(Some(KeyState::Completed { response, .. })) => Settled::Applied(response),
            Ok(Some(retryable @ KeyState::Retryable { .. })) => Settled::NotApplied(retryable),
            _ => Settled::Pending(Duration::from_secs(1)),
        }
    }

    /// Whether this replica runs the resolver's next pass: always with the memory store; with
    /// Redis, while it holds the fleet's resolver lease.
    async fn resolver_turn(&self, token: &str) -> Turn {
        let Some(link) = &self.services.redis else {
            return Turn::Ours;
        };
        let key = link.key("credit-resolver");
        let ttl_ms = self.config.resolve_interval_ms.max(100) * 3;
        let held: Result<u8, crate::redis_link::LinkError> = link
            .run("resolver_lease", |mut conn| async move {
                Script::new(LEASE)
                    .key(&key)
                    .arg(token)
                    .arg(ttl_ms)
                    .invoke_async(&mut conn)
                    .await
            })
            .await;
        match held {
            Ok(1) => Turn::Ours,
            Ok(_) => Turn::Theirs,
            Err(_) => Turn::Unknown,
        }
    }

    /// Settles records left unknown, every `credit.resolve_interval_ms`, oldest first (so one
    /// history read can serve the newer ones of the same customer).
    pub async fn run_resolver(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.resolve_interval_ms);
        let token = uuid::Uuid::new_v4().to_string();
        loop {
            tokio::time::sleep(every).await;
            self.history.prune();
            match self.resolver_turn(&token).await {
                Turn::Ours => {}
                Turn::Theirs => {
                    // Another replica runs the passes and reports what it finds.
                    self.services.metrics.unsettled(0, None);
                    continue;
                }
                // Redis did not answer: what this replica reported last stands (nothing settles
                // meanwhile, so an old unsettled allocation keeps its alert).
                Turn::Unknown => continue,
            }
            let mut unknown = match self.store.unknown().await {
                Ok(records) => records,
                // What this replica reported last stands.
                Err(error) => {
                    tracing::warn!(%error, "cannot list unsettled allocations");
                    continue;
                }
            };
            unknown.sort_by_key(|(_, r)| match r {
                KeyState::Unknown { pending, .. } => pending.sent_ms,
                _ => 0,
            });
            let oldest_sent_ms = unknown.iter().find_map(|(_, r)| match r {
                KeyState::Unknown { pending, .. } => Some(pending.sent_ms),
                _ => None,
            });
            self.services
                .metrics
                .unsettled(unknown.len(), oldest_sent_ms);
            if unknown.is_empty() {
                continue;
            }
            // A pass with work to do is a trace of its own (an idle pass is none).
            let pass = tracing::debug_span!(target: "partner_gateway::spans", "reconciliation", unsettled = unknown.len());
            async {
                for (key, record) in unknown {
                    self.settle(&key, record).await;
                }
            }
            .instrument(pass)
            .await;
        }
    }
}

/// Who runs the resolver's next pass.
enum Turn {
    Ours,
    Theirs,
    /// Redis did not answer.
    Unknown,
}

fn audit_settled(pending: &PendingCredit, key: &str, outcome: &str, tencent_request_id: &str) {
    tracing::info!(
        target: "audit",
        event = "credit_reconciliation",
        caller = pending.caller.as_str(),
        uin = pending.uin,
        amount = CreditAmount::from_cents(pending.amount_cents).map(|a| a.to_string()).unwrap_or_default(),
        request_id = pending.request_id.as_str(),
        idempotency_record = key,
        marker = pending.marker.as_str(),
        outcome,
        tencent_request_id,
        "credit allocation settled"
    );
}
