//! A call's answer: the typed data and Tencent's RequestId, or the error Tencent sent; and the
//! summary of a call the access log reads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::super::error::{CallError, UpstreamError};
use crate::context::UpstreamCall;

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

/// Per-call inputs from the route: the id that traces it, the deadline it must meet, and the
/// gate its attempts pass to leave. Not `Clone`: a copy would share the gate with another call.
#[derive(Debug)]
pub struct CallContext {
    pub request_id: String,
    pub deadline: Instant,
    pub departures: Departures,
    pub priority: Priority,
}

impl CallContext {
    pub fn new(request_id: String, deadline: Instant) -> Self {
        Self {
            request_id,
            deadline,
            departures: Departures::default(),
            priority: Priority::default(),
        }
    }

    pub fn with_priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }
}

/// Whom a call serves, where calls of several kinds share an action's quota. A lower priority
/// may fill each quota window only up to a headroom short of the quota, and reserve only within
/// a shorter horizon (a share of `quotas.max_wait_ms`): the slots it leaves are the higher
/// priorities', so however many lower-priority calls come, a higher-priority call finds a slot
/// in the nearest window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Priority {
    /// Money safety and the writes (settling an allocation's outcome, allocating): the whole
    /// wait budget.
    #[default]
    Critical,
    /// A person waiting on a page: half of it.
    Interactive,
    /// Work nobody waits on: a quarter.
    Background,
}

impl Priority {
    /// Slots of each window this priority leaves to the higher ones.
    pub fn headroom(self) -> u32 {
        match self {
            Self::Critical => 0,
            Self::Interactive => 1,
            Self::Background => 2,
        }
    }

    /// The longest a call of this priority may wait for a slot, of `max_wait`.
    pub fn horizon(self, max_wait: std::time::Duration) -> std::time::Duration {
        match self {
            Self::Critical => max_wait,
            Self::Interactive => max_wait / 2,
            Self::Background => max_wait / 4,
        }
    }
}

/// Whether a call's attempts may still leave for Tencent: a handshake between the client, which
/// opens it as an attempt leaves, and a route that stops waiting, which closes it. Whichever is
/// first decides: once closed no attempt leaves, so "nothing was sent" is true for good; once
/// opened the call may have executed.
#[derive(Debug, Clone, Default)]
pub struct Departures(Arc<AtomicU8>);

impl Departures {
    const IDLE: u8 = 0;
    const SENT: u8 = 1;
    const CLOSED: u8 = 2;

    /// An attempt is about to be written: true if it may go (the gate is not closed).
    pub fn depart(&self) -> bool {
        match self
            .0
            .compare_exchange(Self::IDLE, Self::SENT, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == Self::SENT,
        }
    }

    /// The caller stops waiting: true if no attempt had left, and now none will.
    pub fn close(&self) -> bool {
        match self
            .0
            .compare_exchange(Self::IDLE, Self::CLOSED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == Self::CLOSED,
        }
    }
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
