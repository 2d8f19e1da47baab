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
use secrecy::ExposeSecret;
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use super::actions::{Action, QueryPartnerCredit};
use super::error::{CallError, ErrorClass};
use super::sign::{RequestToSign, SignedHeaderSet, Signer};
use super::wire::{Conn, Wire, WireError};
use super::{CONTENT_TYPE, SERVICE, VERSION};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::credentials::{CredentialCell, Issued};
use crate::metrics::Metrics;
use crate::quota::{QuotaExceeded, Quotas};
use crate::readiness::ReadinessChecks;

/// Largest answer body read from Tencent; real answers are a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// `X-TC-RequestClient`: names this client in Tencent's logs.
const REQUEST_CLIENT: &str = concat!("partner-gateway ", env!("CARGO_PKG_VERSION"));

mod answer;
mod depart;
mod observe;

pub use answer::{Answer, CallContext, Departures, Priority, parse_answer, summary};

/// How many slots one call may miss (and reserve again) before it is refused.
const MAX_MISSED_SLOTS: u32 = 3;

/// How often a call waiting to connect looks at the connection lead again.
const LEAD_RECHECK: Duration = Duration::from_millis(100);

/// Signs and sends calls to one endpoint with the credentials current when each call leaves.
#[derive(Debug)]
pub struct TencentClient {
    wire: Wire,
    endpoint: http::Uri,
    host: String,
    credentials: Arc<CredentialCell>,
    /// The signer of the credentials last used: a new one (with its own day-key cache) for each
    /// new credential, so a rotated key never signs with the key derived from the old one.
    signing: parking_lot::Mutex<(Arc<Issued>, Arc<Signer>)>,
    region: Option<String>,
    clock: SharedClock,
    quotas: Arc<Quotas>,
    readiness: Arc<ReadinessChecks>,
    metrics: Arc<Metrics>,
    attempt_timeout: Duration,
    max_wait: Duration,
    max_retries: u32,
    backoff: Duration,
}

impl TencentClient {
    pub fn new(
        settings: &Settings,
        credentials: Arc<CredentialCell>,
        clock: SharedClock,
        quotas: Arc<Quotas>,
        readiness: Arc<ReadinessChecks>,
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
            signing: parking_lot::Mutex::new(Self::signer_for(credentials.current())),
            credentials,
            region: settings.region().map(str::to_owned),
            clock,
            quotas,
            readiness,
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
    pub async fn call<A: Action>(
        &self,
        action: &A,
        ctx: &CallContext,
    ) -> Result<Answer<A::Response>, CallError> {
        let body = Bytes::from(serde_json::to_vec(action).expect("actions serialize"));
        let answer = self.call_inner::<A>(|| Some(body), ctx).await?;
        Ok(answer.expect("a request that is always built is always sent"))
    }

    /// Like [`TencentClient::call`], with the request made when it leaves: `build` runs once, when
    /// the call's quota slot has come and its connection is ready, so what it sends can gather
    /// until then (a batch). `None` gives the slot up unsent: `Ok(None)`.
    pub async fn call_built<A: Action>(
        &self,
        build: impl FnOnce() -> Option<A>,
        ctx: &CallContext,
    ) -> Result<Option<Answer<A::Response>>, CallError> {
        let build = || {
            build()
                .map(|action| Bytes::from(serde_json::to_vec(&action).expect("actions serialize")))
        };
        self.call_inner::<A>(build, ctx).await
    }

    #[tracing::instrument(name = "tencent", skip_all, fields(action = A::NAME))]
    async fn call_inner<A: Action>(
        &self,
        build: impl FnOnce() -> Option<Bytes>,
        ctx: &CallContext,
    ) -> Result<Option<Answer<A::Response>>, CallError> {
        let mut build = Some(build);
        let mut built: Option<Bytes> = None;
        let mut quota_wait = Duration::ZERO;
        let mut retries = 0;
        let mut missed = 0;
        loop {
            let waiting = observe::quota_wait_span(A::NAME);
            let waited_before = quota_wait;
            let departed = self
                .depart::<A>(ctx, &mut quota_wait)
                .instrument(waiting.clone())
                .await;
            waiting.record("wait_ms", (quota_wait - waited_before).as_millis() as u64);
            let conn = match departed {
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
            // Past the deadline, or after the route stopped waiting, nothing leaves.
            if remaining.is_zero() || !ctx.departures.depart() {
                self.wire.checkin(conn);
                return Err(CallError::DeadlineExceeded);
            }
            let body = match (&built, build.take()) {
                (Some(body), _) => body.clone(),
                (None, Some(build)) => match build() {
                    Some(body) => built.insert(body).clone(),
                    None => {
                        self.wire.checkin(conn);
                        return Ok(None);
                    }
                },
                (None, None) => unreachable!("built when first taken"),
            };
            let started = Instant::now();
            let departed_ms = self.clock.now_unix_ms();
            let attempt = observe::attempt_span(A::NAME, retries);
            let result = self
                .send_once::<A>(conn, body, ctx, remaining.min(self.attempt_timeout))
                .instrument(attempt.clone())
                .await;
            observe::record_attempt(&attempt, &result);
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
                    return Ok(Some(Answer {
                        data,
                        request_id,
                        quota_wait,
                        retries,
                    }));
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

    /// Exponential backoff with jitter in [½, 1] of the nominal delay.
    fn backoff_for(&self, retry: u32) -> Duration {
        let nominal = self.backoff.saturating_mul(1 << retry.min(10));
        nominal.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// The credentials calls sign with.
    pub fn credentials(&self) -> &Arc<CredentialCell> {
        &self.credentials
    }

    fn signer_for(issued: Arc<Issued>) -> (Arc<Issued>, Arc<Signer>) {
        let signer = Signer::new(
            issued.credentials.secret_id.clone(),
            issued.credentials.secret_key.clone(),
            SERVICE,
            SignedHeaderSet::ContentTypeHostAction,
        );
        (issued, Arc::new(signer))
    }

    /// The credentials current now, and their signer.
    fn signing(&self) -> (Arc<Issued>, Arc<Signer>) {
        let current = self.credentials.current();
        let mut signing = self.signing.lock();
        if !Arc::ptr_eq(&signing.0, &current) {
            *signing = Self::signer_for(current);
        }
        signing.clone()
    }

    async fn send_once<A: Action>(
        &self,
        conn: Conn,
        body: Bytes,
        ctx: &CallContext,
        timeout: Duration,
    ) -> Result<(A::Response, String), CallError> {
        let timestamp = self.clock.now_unix_secs();
        // Signed with the credentials current as it leaves; it keeps them while in flight.
        let (issued, signer) = self.signing();
        let authorization = signer.authorization(&RequestToSign {
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
        // The trace's id while one is active, so Tencent's records and the trace meet; the
        // request id otherwise.
        let trace_id = crate::telemetry::traces::current_trace_id();
        request = match http::HeaderValue::from_str(trace_id.as_deref().unwrap_or(&ctx.request_id))
        {
            Ok(id) => request.header("X-TC-TraceId", id),
            Err(_) => request,
        };
        if let Some(region) = &self.region {
            request = request.header("X-TC-Region", region);
        }
        if let Some(token) = &issued.credentials.token {
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
        let ctx = CallContext::new(uuid::Uuid::now_v7().to_string(), Instant::now() + timeout);
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
