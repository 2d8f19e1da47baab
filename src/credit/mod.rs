//! Credit allocations, applied exactly once: the one place that decides what an allocation's
//! idempotency record says, when it is sent, and how a lost answer is settled.
//!
//! # States of a keyed allocation
//!
//! ```text
//!                 begin (create-if-absent)
//!   new ───────────────────────────────▶ sent (in_flight) ──answer: applied──────▶ applied (completed, replayed)
//!                                          │      └──answer: refused for good────▶ refused (completed, replayed)
//!                                          │      └──never executed (quota, 429,
//!                                          │         connection refused)──────────▶ new again (record removed)
//!                                          └──answer lost (timeout after sending,
//!                                             5xx, InternalError, replica died)──▶ unknown
//!   unknown ──history shows its marker with its amount─────────────────────────▶ applied (completed)
//!   unknown ──history read in full after credit.settle_ms, marker absent───────▶ not-applied (retryable)
//!   unknown ──history not readable / not yet conclusive────────────────────────▶ unknown (502 credit-outcome-unknown, Retry-After)
//!   not-applied ──next request with the key (compare-and-set)──────────────────▶ sent
//! ```
//!
//! # Why it holds
//! - One key, one sender: `sent` is created only if no record exists and every later change is
//!   a compare-and-set, in memory and in Redis alike ([`crate::idempotency::Keys`]).
//! - A record money depends on is never evicted before its TTL (a full store refuses new keys
//!   with 503 and sends nothing), and `unknown` never becomes `new` without proof: only a complete
//!   read of the history made at least `credit.settle_ms` after the last send turns it into
//!   `not-applied` ([`history`]).
//! - Only this gateway can write a marker, and a match needs the marker as the remark's last
//!   word *and* the amount ([`marker`]); a copied marker is an alarm, never "applied".
//! - Callers are namespaced by credential kind, so two callers never share a key.
//!
//! The background resolver settles `unknown` records nobody retries; with Redis one replica at a
//! time does so (a lease, `PREFIX credit-resolver`).

pub mod history;
pub mod marker;

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use redis::Script;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::audit::{self, CreditRecord, Outcome};
use crate::auth::Caller;
use crate::clock::SharedClock;
use crate::domain::{ClientUin, CreditAmount, FieldError, REMARK_MAX_CHARS, Remark};
use crate::idempotency::{self, Begin, IdempotencyKey, Keys};
use crate::metrics::Metrics;
use crate::problem::{ApiError, ProblemType};
use crate::redis_link::RedisLink;
use crate::store::{PendingCredit, Record, Retention, Store, StoredResponse};
use crate::tencent::actions::{Action, AllocateCustomerCredit};
use crate::tencent::{CallContext, CallError, Effect, TencentClient};
use history::{HistorySearch, Lookup, Wanted};
use marker::MarkerKey;

/// The route's name in idempotency scopes and metrics.
pub const ROUTE: &str = "credit";
/// How long to wait before looking again after the history could not be read.
const RETRY_LOOKUP: Duration = Duration::from_secs(5);
/// How long to wait while another replica reads the same customer's history.
const RETRY_BUSY: Duration = Duration::from_secs(1);

/// A change to a customer's credit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"amount": 100.5, "remark": "Q3 top-up"}))]
pub struct CreditRequest {
    /// The increment: non-zero, at most 2 decimal places, |amount| ≤ `credit.max_amount`.
    /// Negative takes credit back (available credit never goes below 0).
    #[schema(value_type = f64, example = 100.5)]
    pub amount: Box<RawValue>,
    /// Stored with the allocation in Tencent's history, NFC-normalised: at most 256 characters,
    /// no control characters, no invisible formatting characters (bidirectional controls, line
    /// separators, zero-width spaces and the like), and not containing `[pgw:` (the gateway's own
    /// marker).
    #[serde(default)]
    #[schema(max_length = 256, example = "Q3 top-up")]
    pub remark: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"uin": "800000232018", "amount": 100.5, "totalCredit": 1100.5, "remainingCredit": 600.5, "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct CreditResponse {
    /// The customer's account id, as a string so JavaScript keeps every digit.
    #[schema(example = "800000232018")]
    pub uin: String,
    /// The increment applied.
    #[schema(example = 100.5)]
    pub amount: f64,
    /// The customer's total credit after the allocation. `null` only in an answer settled from
    /// Tencent's history when the entry lacks `AllocatedCredit`.
    pub total_credit: Option<f64>,
    /// The customer's available credit after the allocation. `null` only in an answer settled
    /// from Tencent's history when the entry lacks `ClientCreditAfter` (Tencent may omit it).
    pub remaining_credit: Option<f64>,
    /// Tencent's `RequestId` (of the allocation, or of the history query that settled it).
    pub request_id: String,
}

/// The allocation, parsed: only valid allocations exist past this point.
#[derive(Debug)]
pub struct Allocation {
    pub uin: ClientUin,
    pub amount: CreditAmount,
    pub remark: Option<Remark>,
}

impl Allocation {
    /// The path's `uin` and the body, checked together so every invalid field is reported.
    pub fn parse(uin: &str, req: &CreditRequest, max_cents: i64) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let uin = ClientUin::parse(uin).map_err(|m| errors.push(FieldError::new("uin", m)));
        let amount = CreditAmount::parse_json(req.amount.get(), max_cents)
            .map_err(|e| errors.push(FieldError::new("amount", e.to_string())));
        let remark = match req.remark.as_deref() {
            None | Some("") => Ok(None),
            Some(raw) if marker::has_marker_syntax(raw) => {
                errors.push(FieldError::new(
                    "remark",
                    "must not contain `[pgw:`: that marker is written by the gateway only",
                ));
                Err(())
            }
            Some(raw) => Remark::parse(raw)
                .map(Some)
                .map_err(|m| errors.push(FieldError::new("remark", m))),
        };
        match (uin, amount, remark) {
            (Ok(uin), Ok(amount), Ok(remark)) => Ok(Self {
                uin,
                amount,
                remark,
            }),
            _ => Err(errors),
        }
    }

    fn fingerprint(&self) -> String {
        idempotency::fingerprint(&[
            ROUTE,
            &self.uin.to_string(),
            &self.amount.cents().to_string(),
            self.remark.as_ref().map(Remark::as_str).unwrap_or(""),
        ])
    }
}

/// What the allocator needs from the settings.
#[derive(Debug, Clone)]
pub struct CreditConfig {
    pub settle_ms: u64,
    pub resolve_interval_ms: u64,
    pub history_margin_ms: u64,
    /// Tag the Tencent remark with ` [by CALLER]` (`auth.remark_caller`).
    pub remark_caller: bool,
    /// `credit.marker_secret`, when set.
    pub marker_secret: Option<SecretString>,
}

/// What settling an `unknown` record found.
#[derive(Debug)]
pub enum Settled {
    /// Applied: the answer to replay (already stored).
    Applied(StoredResponse),
    /// Not settled yet: look again after this long.
    Pending(Duration),
    /// Not applied: the record is now this `Retryable` one.
    NotApplied(Record),
}

/// Allocates credit and settles allocations of unknown outcome. Holds only what that takes.
#[derive(Debug)]
pub struct Allocator {
    tencent: Arc<TencentClient>,
    keys: Arc<Keys>,
    store: Store,
    redis: Option<Arc<RedisLink>>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    config: CreditConfig,
    history: HistorySearch,
    marker_key: tokio::sync::OnceCell<MarkerKey>,
}

/// KEYS[1] secret. ARGV: a new random secret. Returns the fleet's secret, creating it if absent.
const FLEET_SECRET: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"#;

/// KEYS[1] lease. ARGV: token, ttl ms. Takes or renews the lease; 1 if ours.
const LEASE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not current then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"#;

impl Allocator {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tencent: Arc<TencentClient>,
        keys: Arc<Keys>,
        store: Store,
        redis: Option<Arc<RedisLink>>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        config: CreditConfig,
        history_timeout: Duration,
        history_max_pages: u32,
    ) -> Self {
        let history = HistorySearch::new(
            tencent.clone(),
            redis.clone(),
            metrics.clone(),
            clock.clone(),
            history_timeout,
            history_max_pages,
        );
        Self {
            tencent,
            keys,
            store,
            redis,
            metrics,
            clock,
            config,
            history,
            marker_key: tokio::sync::OnceCell::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    /// The marker secret: configured, else the fleet's one in Redis (created once, read on
    /// every keyed allocation, so a Redis that restarted and made a new one is followed at
    /// once by every replica), else this process's own.
    async fn marker_key(&self) -> Result<MarkerKey, ApiError> {
        let Some(link) = self
            .redis
            .as_ref()
            .filter(|_| self.config.marker_secret.is_none())
        else {
            return Ok(self
                .marker_key
                .get_or_init(|| async {
                    match &self.config.marker_secret {
                        Some(secret) => MarkerKey::new(secret.expose_secret().as_bytes()),
                        None => MarkerKey::random(),
                    }
                })
                .await
                .clone());
        };
        let key = link.key("credit-marker-secret");
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        let secret: String = link
            .run("marker_secret", |mut conn| async move {
                Script::new(FLEET_SECRET)
                    .key(&key)
                    .arg(&candidate)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| idempotency::store_problem(e.into()))?;
        Ok(MarkerKey::new(secret.as_bytes()))
    }

    /// Allocates, with or without an idempotency key.
    pub async fn allocate(
        &self,
        caller: &Caller,
        allocation: &Allocation,
        key: Option<&IdempotencyKey>,
        ctx: &CallContext,
    ) -> Result<Response, ApiError> {
        match key {
            None => Ok(self.attempt(caller, allocation, None, ctx).await.0),
            Some(key) => self.keyed(caller, allocation, key, ctx).await,
        }
    }

    /// A keyed allocation: begin the key, replay or settle what it holds, or send and record.
    async fn keyed(
        &self,
        caller: &Caller,
        allocation: &Allocation,
        key: &IdempotencyKey,
        ctx: &CallContext,
    ) -> Result<Response, ApiError> {
        let scoped = key.scoped(&caller.id, ROUTE);
        let fingerprint = allocation.fingerprint();
        let marker = self.marker_key().await?.marker(
            &scoped,
            allocation.uin.get(),
            allocation.amount.cents(),
        );
        let pending = |sent_ms: u64, request_id: &str| PendingCredit {
            marker: marker.clone(),
            uin: allocation.uin.get(),
            amount_cents: allocation.amount.cents(),
            sent_ms,
            caller: caller.id.clone(),
            request_id: request_id.to_owned(),
        };
        let unknown = match self
            .keys
            .begin(&self.store, ROUTE, &scoped, &fingerprint, Retention::Keep)
            .await?
        {
            Begin::Send(in_flight) => Ok(in_flight),
            Begin::Replay(stored) => return Ok(idempotency::replay(&stored)),
            Begin::Settle(record) => Err(record),
            Begin::Abandoned { record, started_ms } => {
                // Its replica died while the allocation may have been on the wire: from now on
                // it is an allocation of unknown outcome, sent at the latest when that request's
                // deadline passed, and settled through the history like any other.
                let sent_ms = started_ms + self.keys.abandoned_after_ms();
                let unknown = Record::Unknown {
                    fingerprint: fingerprint.clone(),
                    pending: pending(sent_ms, ""),
                };
                let adopted = self
                    .keys
                    .replace(&self.store, &scoped, &record, unknown.clone())
                    .await
                    .map_err(idempotency::store_problem)?;
                if !adopted {
                    return Err(self.keys.in_use(ROUTE));
                }
                Err(unknown)
            }
        };
        let in_flight = match unknown {
            Ok(in_flight) => in_flight,
            Err(record) => match self.settle(&scoped, record).await {
                Settled::Applied(stored) => {
                    self.metrics.idempotency(ROUTE, "replayed");
                    return Ok(idempotency::replay(&stored));
                }
                Settled::Pending(wait) => return Err(outcome_unknown(key, wait)),
                Settled::NotApplied(retryable) => {
                    self.keys
                        .take(&self.store, ROUTE, &scoped, &retryable)
                        .await?
                }
            },
        };
        let (response, effect) = self
            .attempt(caller, allocation, Some((key, &marker)), ctx)
            .await;
        let (stored, response) = idempotency::capture(response).await;
        let record = match effect {
            // Applied, or refused for good by Tencent: stored for replay.
            None | Some(Effect::Refused) => Some(Record::Completed {
                fingerprint,
                response: stored,
            }),
            // Known not to have executed: the key is forgotten, so a retry simply tries again.
            Some(Effect::NotExecuted) => None,
            Some(Effect::Unknown) => Some(Record::Unknown {
                fingerprint,
                pending: pending(self.now_ms(), &ctx.request_id),
            }),
        };
        self.keys
            .finish(&self.store, &scoped, &in_flight, record)
            .await;
        Ok(response)
    }

    /// Sends one allocation to Tencent, audits it, and answers.
    async fn attempt(
        &self,
        caller: &Caller,
        allocation: &Allocation,
        keyed: Option<(&IdempotencyKey, &str)>,
        ctx: &CallContext,
    ) -> (Response, Option<Effect>) {
        tracing::info!(uin = %allocation.uin, amount = %allocation.amount, "allocating credit");
        let remark = tencent_remark(
            allocation.remark.as_ref(),
            caller,
            self.config.remark_caller,
            keyed.map(|(_, marker)| marker),
        );
        let action = AllocateCustomerCredit {
            client_uin: allocation.uin.get(),
            added_credit: allocation.amount.as_f64(),
            remark: remark.clone(),
        };
        let started = tokio::time::Instant::now();
        let result = self.tencent.call(&action, ctx).await;
        // The call's effect: `None` when it succeeded.
        let effect = result.as_ref().err().map(CallError::effect);
        let summary = crate::tencent::summary(AllocateCustomerCredit::NAME, &result);
        let outcome = match effect {
            None => Outcome::Applied,
            Some(Effect::Unknown) => Outcome::Unknown,
            Some(Effect::NotExecuted | Effect::Refused) => Outcome::Rejected,
        };
        let (code, tencent_request_id) = match &result {
            Ok(answer) => ("", answer.request_id.as_str()),
            Err(CallError::Upstream(e)) => {
                (e.code.as_str(), e.request_id.as_deref().unwrap_or_default())
            }
            Err(_) => ("", ""),
        };
        audit::credit_allocation(&CreditRecord {
            caller: &caller.id,
            caller_kind: caller.method,
            uin: allocation.uin.get(),
            amount: &allocation.amount.to_string(),
            remark: remark.as_deref().unwrap_or(""),
            request_id: &ctx.request_id,
            idempotency_key: keyed.map(|(k, _)| k.as_str()),
            outcome,
            tencent_code: code,
            tencent_request_id,
            latency: started.elapsed(),
        });
        let mut response = match result {
            Ok(answer) => Json(CreditResponse {
                uin: allocation.uin.to_string(),
                amount: allocation.amount.as_f64(),
                total_credit: Some(answer.data.total_credit),
                remaining_credit: Some(answer.data.remaining_credit),
                request_id: answer.request_id,
            })
            .into_response(),
            Err(error) => {
                let mut problem = ApiError::from_credit_call(error);
                if outcome == Outcome::Unknown {
                    tracing::error!(uin = %allocation.uin, amount = %allocation.amount, "credit allocation outcome unknown");
                    problem.detail = match keyed {
                        Some((key, _)) => format!(
                            "{}. Retry with the same Idempotency-Key `{}`: the gateway settles it through Tencent's allocation history and never applies it twice",
                            problem.detail,
                            key.as_str()
                        ),
                        None => format!(
                            "{}. Check the customer's allocation history before allocating again",
                            problem.detail
                        ),
                    };
                }
                problem.into_response()
            }
        };
        response.extensions_mut().insert(summary);
        (response, effect)
    }

    /// Settles the `unknown` record of `scoped` from the customer's history.
    pub async fn settle(&self, scoped: &str, record: Record) -> Settled {
        let Record::Unknown {
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
                let completed = Record::Completed {
                    fingerprint: fingerprint.clone(),
                    response: stored.clone(),
                };
                match self
                    .keys
                    .replace(&self.store, scoped, &record, completed)
                    .await
                {
                    Ok(true) => {
                        self.metrics.reconciliation(Outcome::Applied.as_str());
                        audit_settled(pending, scoped, "applied", &entry.request_id);
                        Settled::Applied(stored)
                    }
                    // Settled meanwhile by someone else: go by what is there now.
                    _ => self.current(scoped).await,
                }
            }
            Lookup::Absent { as_of_ms } if as_of_ms >= conclusive_from_ms => {
                let retryable = Record::Retryable {
                    fingerprint: fingerprint.clone(),
                };
                match self
                    .keys
                    .replace(&self.store, scoped, &record, retryable.clone())
                    .await
                {
                    Ok(true) => {
                        self.metrics.reconciliation("not_applied");
                        audit_settled(pending, scoped, "not_applied", "");
                        Settled::NotApplied(retryable)
                    }
                    _ => self.current(scoped).await,
                }
            }
            Lookup::Absent { .. } => {
                self.metrics.reconciliation("pending");
                let wait = conclusive_from_ms.saturating_sub(self.now_ms()).max(1_000);
                Settled::Pending(Duration::from_millis(wait))
            }
            Lookup::Busy => {
                self.metrics.reconciliation("pending");
                Settled::Pending(RETRY_BUSY)
            }
            Lookup::Unreadable(why) => {
                self.metrics.reconciliation("failed");
                tracing::warn!(
                    uin = pending.uin,
                    why,
                    "cannot read the allocation history; the outcome stays unknown"
                );
                Settled::Pending(RETRY_LOOKUP)
            }
        }
    }

    /// What the record of `scoped` says now, after a lost race.
    async fn current(&self, scoped: &str) -> Settled {
        match self.store.get(scoped).await {
            Ok(Some(Record::Completed { response, .. })) => Settled::Applied(response),
            Ok(Some(retryable @ Record::Retryable { .. })) => Settled::NotApplied(retryable),
            _ => Settled::Pending(Duration::from_secs(1)),
        }
    }

    /// Whether this replica runs the resolver's next pass: always with the memory store; with
    /// Redis, while it holds the fleet's resolver lease.
    async fn resolver_turn(&self, token: &str) -> bool {
        let Some(link) = &self.redis else {
            return true;
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
        held == Ok(1)
    }

    /// Settles records left unknown, every `credit.resolve_interval_ms`, oldest first (so one
    /// history read can serve the newer ones of the same customer).
    pub async fn run_resolver(self: Arc<Self>) {
        let every = Duration::from_millis(self.config.resolve_interval_ms);
        let token = uuid::Uuid::new_v4().to_string();
        loop {
            tokio::time::sleep(every).await;
            self.history.prune();
            if !self.resolver_turn(&token).await {
                continue;
            }
            let mut unknown = match self.store.unknown().await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(%error, "cannot list unsettled allocations");
                    continue;
                }
            };
            unknown.sort_by_key(|(_, r)| match r {
                Record::Unknown { pending, .. } => pending.sent_ms,
                _ => 0,
            });
            for (key, record) in unknown {
                self.settle(&key, record).await;
            }
        }
    }
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

/// The `credit-outcome-unknown` answer to a retry that came before the allocation could be
/// settled.
fn outcome_unknown(key: &IdempotencyKey, wait: Duration) -> ApiError {
    ApiError::new(
        ProblemType::CreditOutcomeUnknown,
        format!(
            "the allocation with Idempotency-Key `{}` is not settled yet; retry with the same key",
            key.as_str()
        ),
    )
    .retry_after(wait.as_secs_f64().ceil() as u64)
}

/// The `Remark` sent to Tencent: the caller's remark, then ` [by CALLER]` when
/// `auth.remark_caller` is on, then the marker as the last word. The marker and the caller tag
/// are kept whole; the caller's remark is cut so the whole fits Tencent's 256 characters.
pub fn tencent_remark(
    remark: Option<&Remark>,
    caller: &Caller,
    tag_caller: bool,
    marker: Option<&str>,
) -> Option<String> {
    let mut suffix: Vec<String> = Vec::new();
    if tag_caller {
        let room = REMARK_MAX_CHARS - marker::LEN - 8;
        // A caller's name can come from a token claim an end user edits: made safe like a remark.
        let name = crate::domain::sanitize_remark(&caller.name);
        suffix.push(format!(
            "[by {}]",
            name.chars().take(room).collect::<String>()
        ));
    }
    if let Some(marker) = marker {
        suffix.push(marker.to_owned());
    }
    let suffix = suffix.join(" ");
    let text = remark.map(Remark::as_str).unwrap_or("");
    if suffix.is_empty() {
        return (!text.is_empty()).then(|| text.to_owned());
    }
    let room = REMARK_MAX_CHARS.saturating_sub(suffix.chars().count() + 1);
    let kept: String = text.chars().take(room).collect();
    Some(if kept.is_empty() {
        suffix
    } else {
        format!("{kept} {suffix}")
    })
}

#[cfg(test)]
mod tests;
