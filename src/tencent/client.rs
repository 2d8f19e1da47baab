//! The transport to Tencent: every call goes quota → sign → send → parse, under one deadline.
//!
//! Retries are narrow on purpose: only a `RequestLimitExceeded*` answer (Tencent did not execute
//! the call) or a failure to connect (nothing was sent) is retried, with exponential backoff and
//! through the limiter again, while the caller's deadline allows. Anything that may have reached
//! Tencent is returned to the route, which knows whether the outcome matters (credit) or not.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;
use url::Url;

use super::actions::{Action, QueryPartnerCredit};
use super::error::{CallError, ErrorClass, UpstreamError};
use super::sign::{RequestToSign, SignedHeaderSet, Signer};
use super::wire::{Conn, Wire, WireError};
use super::{CONTENT_TYPE, SERVICE, VERSION};
use crate::clock::SharedClock;
use crate::config::{Credentials, Settings};
use crate::context::UpstreamCall;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::quota::{QuotaError, QuotaExceeded, Quotas};

/// Largest answer body read from Tencent; real answers are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// `X-TC-RequestClient`: names this client in Tencent's logs.
const REQUEST_CLIENT: &str = concat!("partner-gateway ", env!("CARGO_PKG_VERSION"));

/// A successful answer and Tencent's `RequestId`.
#[derive(Debug)]
pub struct Answer<T> {
    pub data: T,
    pub request_id: String,
    /// How long the call waited for quota, over all attempts.
    pub quota_wait: Duration,
    /// How many times the call was sent again after a retryable failure.
    pub retries: u32,
}

/// What a call did, for the log line of the request that made it: the caller attaches it to its
/// response.
pub fn summary<T>(action: &'static str, result: &Result<Answer<T>, CallError>) -> UpstreamCall {
    match result {
        Ok(answer) => UpstreamCall {
            action,
            code: None,
            tencent_request_id: Some(answer.request_id.clone()),
            quota_wait_ms: answer.quota_wait.as_millis() as u64,
            retries: answer.retries,
        },
        Err(error) => UpstreamCall {
            action,
            code: Some(error.label().to_owned()),
            tencent_request_id: match error {
                CallError::Upstream(e) => e.request_id.clone(),
                _ => None,
            },
            ..UpstreamCall::default()
        },
    }
}

/// Per-call inputs from the route: the id that traces it and the deadline it must meet.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: String,
    pub deadline: Instant,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Response", borrow)]
    response: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Header {
    error: Option<ErrorBody>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
}

/// Parses an answer body. Returns the typed data and `RequestId`, Tencent's error, or why the
/// body is not a valid answer. Pure, so the fuzzer and tests can feed it anything.
pub fn parse_answer<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(T, String), CallError> {
    let unparsable = |detail: String| CallError::Unparsable { detail };
    let envelope: Envelope<'_> = serde_json::from_slice(body)
        .map_err(|e| unparsable(format!("not an answer envelope: {e}")))?;
    let raw = envelope.response.get();
    let header: Header =
        serde_json::from_str(raw).map_err(|e| unparsable(format!("bad Response object: {e}")))?;
    if let Some(error) = header.error {
        return Err(CallError::Upstream(UpstreamError {
            code: error.code,
            message: error.message,
            request_id: header.request_id,
        }));
    }
    let request_id = header
        .request_id
        .ok_or_else(|| unparsable("answer without RequestId".into()))?;
    let data =
        serde_json::from_str(raw).map_err(|e| unparsable(format!("unexpected answer: {e}")))?;
    Ok((data, request_id))
}

/// Signs and sends calls to one endpoint with one credential.
/// How many slots one call may miss (and reserve again) before it is refused.
const MAX_MISSED_SLOTS: u32 = 3;

/// How often a call waiting to connect looks at the connection lead again.
const LEAD_RECHECK: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct TencentClient {
    wire: Wire,
    endpoint: http::Uri,
    host: String,
    signer: Signer,
    token: Option<SecretString>,
    region: Option<String>,
    clock: SharedClock,
    quotas: Arc<Quotas>,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    attempt_timeout: Duration,
    max_wait: Duration,
    max_retries: u32,
    backoff: Duration,
}

impl TencentClient {
    pub fn new(
        settings: &Settings,
        credentials: &Credentials,
        clock: SharedClock,
        quotas: Arc<Quotas>,
        health: Arc<Health>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        let url = Url::parse(&settings.upstream.endpoint).expect("validated endpoint");
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let wire = Wire::new(
            &url,
            settings.upstream.connect_timeout(),
            settings.upstream.pool_idle_timeout(),
            settings.upstream.ca_file.as_deref(),
        )?;
        Ok(Self {
            wire,
            endpoint: url.as_str().parse().expect("a URL is a URI"),
            host,
            signer: Signer::new(
                credentials.secret_id.clone(),
                credentials.secret_key.clone(),
                SERVICE,
                SignedHeaderSet::ContentTypeHostAction,
            ),
            token: credentials.token.clone(),
            region: settings.region().map(str::to_owned),
            clock,
            quotas,
            health,
            metrics,
            attempt_timeout: settings.upstream.timeout(),
            max_wait: settings.quotas.max_wait(),
            max_retries: settings.upstream.max_retries,
            backoff: settings.upstream.retry_backoff(),
        })
    }

    /// The quota of every action (for `/metrics`).
    pub fn quotas(&self) -> &Arc<Quotas> {
        &self.quotas
    }

    /// Sends `action`, waiting for quota and retrying only what is safe to retry.
    ///
    /// Per attempt: reserve a slot; get a connection ready (starting [`Wire::lead`] before the
    /// slot); wait for the slot; leave only if still on time, else reserve again (the missed
    /// slot stays used). See [`crate::quota`] for why this keeps every second within the quota.
    #[tracing::instrument(name = "tencent", skip_all, fields(action = A::NAME))]
    pub async fn call<A: Action>(
        &self,
        action: &A,
        ctx: &CallContext,
    ) -> Result<Answer<A::Response>, CallError> {
        let body = Bytes::from(serde_json::to_vec(action).expect("actions serialize"));
        let mut quota_wait = Duration::ZERO;
        let mut retries = 0;
        let mut missed = 0;
        loop {
            let conn = match self.depart::<A>(ctx, &mut quota_wait).await {
                Ok(Some(ready)) => ready,
                // A slot missed is used up for the whole fleet: a call that keeps missing them
                // (a Redis slower than its allowance, a host stalled) stops burning the quota.
                Ok(None) if missed < MAX_MISSED_SLOTS => {
                    missed += 1;
                    continue;
                }
                Ok(None) => {
                    self.metrics.quota_rejected(A::NAME);
                    return Err(CallError::QuotaExceeded {
                        action: A::NAME,
                        exceeded: QuotaExceeded {
                            limit: self.quotas.effective(A::NAME),
                            retry_after: Duration::from_secs(1),
                        },
                    });
                }
                Err(error) => {
                    if matches!(error, CallError::Transport { .. }) {
                        // A connection that could not be made is an attempt, as before the pool.
                        self.observe(A::NAME, Err(&error), Duration::ZERO, retries);
                    }
                    if error.is_retryable() && retries < self.max_retries {
                        let backoff = self.backoff_for(retries);
                        if Instant::now() + backoff < ctx.deadline {
                            retries += 1;
                            self.metrics.upstream_retry(A::NAME, error.metric_label());
                            tokio::time::sleep(backoff).await;
                            continue;
                        }
                    }
                    return Err(error);
                }
            };
            let remaining = ctx.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                self.wire.checkin(conn);
                return Err(CallError::DeadlineExceeded);
            }
            let started = Instant::now();
            let departed_ms = self.clock.now_unix_ms();
            let result = self
                .send_once::<A>(conn, body.clone(), ctx, remaining.min(self.attempt_timeout))
                .await;
            let elapsed = started.elapsed();
            self.observe(
                A::NAME,
                result.as_ref().map(|(_, id)| id.as_str()),
                elapsed,
                retries,
            );
            // Tencent answered: the round trip measures the path, and the answer tells the
            // learned quota whether the call's second was full. Only the plain code speaks of
            // this action's quota: the sub-codes are limits of the account, the address or the
            // region across actions.
            let answered = matches!(&result, Ok(_) | Err(CallError::Upstream(_)));
            let refused = match &result {
                Ok(_) => Some(false),
                Err(CallError::Upstream(e)) if e.code == "RequestLimitExceeded" => Some(true),
                Err(CallError::Upstream(e)) if e.class() != ErrorClass::RateLimited => Some(false),
                Err(_) => None,
            };
            if answered {
                self.quotas.observe_round_trip(A::NAME, elapsed);
            }
            if let Some(refused) = refused {
                let arrival_ms = departed_ms + elapsed.as_millis() as u64 / 2;
                self.quotas
                    .outcome(A::NAME, arrival_ms, refused, self.clock.now_unix_ms())
                    .await;
            }
            match result {
                Ok((data, request_id)) => {
                    return Ok(Answer {
                        data,
                        request_id,
                        quota_wait,
                        retries,
                    });
                }
                Err(error) if error.is_retryable() && retries < self.max_retries => {
                    let backoff = self.backoff_for(retries);
                    if Instant::now() + backoff >= ctx.deadline {
                        return Err(error);
                    }
                    retries += 1;
                    self.metrics.upstream_retry(A::NAME, error.metric_label());
                    tracing::warn!(
                        code = error.label(),
                        retry = retries,
                        backoff_ms = backoff.as_millis() as u64,
                        "retrying upstream call that was not executed"
                    );
                    tokio::time::sleep(backoff).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Reserves a slot and makes a connection ready for it. `Ok(None)`: the call could not
    /// leave within the slack after its slot (the slot is given up) and must reserve again.
    async fn depart<A: Action>(
        &self,
        ctx: &CallContext,
        quota_wait: &mut Duration,
    ) -> Result<Option<Conn>, CallError> {
        let max_wait = self
            .max_wait
            .min(ctx.deadline.saturating_duration_since(Instant::now()));
        // A kept-alive connection leaves at its slot; without one, the slot is taken no sooner
        // than a new connection takes, which is made while the call waits.
        let idle = self.wire.take_idle(Duration::ZERO).await;
        let lead = if idle.is_some() {
            Duration::ZERO
        } else {
            self.wire.lead()
        };
        let reserved = self.quotas.reserve(A::NAME, max_wait, lead).await;
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

    /// Exponential backoff with jitter in [½, 1] of the nominal delay.
    fn backoff_for(&self, retry: u32) -> Duration {
        let nominal = self.backoff.saturating_mul(1 << retry.min(10));
        nominal.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Logs an attempt, records it in metrics and in the request's context, and keeps readiness
    /// in step with whether Tencent accepts the credentials.
    fn observe(
        &self,
        action: &'static str,
        result: Result<&str, &CallError>,
        elapsed: Duration,
        retries: u32,
    ) {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let (outcome, code, request_id) = match result {
            Ok(request_id) => ("success", "", Some(request_id)),
            Err(CallError::Upstream(e)) => ("error", e.code.as_str(), e.request_id.as_deref()),
            Err(other) => (other.outcome(), other.label(), None),
        };
        let code_label = match result {
            Ok(_) => "",
            Err(error) => error.metric_label(),
        };
        self.metrics
            .upstream_call(action, outcome, code_label, elapsed);
        let request_id = request_id.unwrap_or("");
        match result {
            Ok(_) => {
                self.health.report_auth_ok(action);
                self.metrics.action_denied(action, false);
                tracing::info!(
                    action,
                    tencent_request_id = request_id,
                    latency_ms,
                    retries,
                    "upstream call succeeded"
                );
            }
            Err(CallError::Upstream(e)) if e.class() == ErrorClass::AuthFailure => {
                if self.health.report_auth_failure(action, &e.code) {
                    self.metrics.action_denied(action, true);
                    tracing::error!(
                        action,
                        code,
                        tencent_request_id = request_id,
                        permission = format!("intlpartnersmgt:{action}"),
                        "Tencent refuses this action: the CAM policy of the gateway's credentials lacks the permission; the action is degraded, the others work"
                    );
                } else {
                    tracing::error!(
                        action,
                        code,
                        tencent_request_id = request_id,
                        latency_ms,
                        "Tencent rejected the gateway's credentials; readiness is now failing"
                    );
                }
            }
            Err(CallError::Upstream(_)) => {
                self.health.report_auth_ok(action);
                self.metrics.action_denied(action, false);
                tracing::info!(
                    action,
                    code,
                    tencent_request_id = request_id,
                    latency_ms,
                    retries,
                    "upstream answered an error"
                );
            }
            Err(other) => {
                tracing::warn!(action, code, error = %other, latency_ms, retries, "upstream call failed");
            }
        }
    }

    async fn send_once<A: Action>(
        &self,
        conn: Conn,
        body: Bytes,
        ctx: &CallContext,
        timeout: Duration,
    ) -> Result<(A::Response, String), CallError> {
        let timestamp = self.clock.now_unix_secs();
        let authorization = self.signer.authorization(&RequestToSign {
            host: &self.host,
            action: A::NAME,
            content_type: CONTENT_TYPE,
            timestamp,
            payload: &body,
        });
        let not_sent = |detail: &str| CallError::Transport {
            sent: false,
            detail: detail.into(),
        };
        let mut request = http::Request::post(self.endpoint.clone())
            .header(http::header::HOST, &self.host)
            .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(http::header::USER_AGENT, REQUEST_CLIENT)
            .header(http::header::AUTHORIZATION, authorization)
            .header("X-TC-Action", A::NAME)
            .header("X-TC-Version", VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Language", "en-US")
            .header("X-TC-RequestClient", REQUEST_CLIENT);
        request = match http::HeaderValue::from_str(&ctx.request_id) {
            Ok(id) => request.header("X-TC-TraceId", id),
            Err(_) => request,
        };
        if let Some(region) = &self.region {
            request = request.header("X-TC-Region", region);
        }
        if let Some(token) = &self.token {
            let mut value = http::HeaderValue::from_str(token.expose_secret())
                .map_err(|_| not_sent("the token is not a valid header value"))?;
            value.set_sensitive(true);
            request = request.header("X-TC-Token", value);
        }
        let request = request
            .body(http_body_util::Full::new(body))
            .map_err(|_| not_sent("the request could not be built"))?;
        let answer =
            tokio::time::timeout(timeout, self.wire.send(conn, request, MAX_ANSWER_BYTES)).await;
        let (status, answer) = match answer {
            Err(_) => return Err(CallError::Timeout { sent: true }),
            Ok(Err(WireError::NotSent(detail))) => {
                return Err(CallError::Transport {
                    sent: false,
                    detail,
                });
            }
            Ok(Err(WireError::Broken(detail))) => {
                return Err(CallError::Transport { sent: true, detail });
            }
            Ok(Err(WireError::TooLarge)) => {
                return Err(CallError::Unparsable {
                    detail: "answer larger than 1 MiB".into(),
                });
            }
            Ok(Ok(answer)) => answer,
        };
        if status != http::StatusCode::OK {
            return Err(CallError::Status {
                status: status.as_u16(),
            });
        }
        parse_answer(&answer)
    }

    /// Asks Tencent for the partner's credit, only to learn whether the credentials work again.
    pub async fn probe_credentials(&self, timeout: Duration) -> Result<(), CallError> {
        let ctx = CallContext {
            request_id: uuid::Uuid::now_v7().to_string(),
            deadline: Instant::now() + timeout,
        };
        self.call(&QueryPartnerCredit {}, &ctx).await.map(|_| ())
    }
}

/// A connection that could not be made or readied: nothing was sent.
fn not_sent(error: WireError) -> CallError {
    let detail = match error {
        WireError::NotSent(d) | WireError::Broken(d) => d,
        WireError::TooLarge => "answer too large".into(),
    };
    CallError::Transport {
        sent: false,
        detail,
    }
}

#[cfg(test)]
mod tests;
