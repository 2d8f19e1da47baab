//! Concurrent reads of single things (a customer's credit, a customer's profile, an invitation)
//! merged into one upstream call that lists many of them ([`Batched`]).
//!
//! A reader adds its key to the pending set. A call is started when none is waiting for its
//! quota slot, or when the pending keys would overflow the calls already waiting. Each call
//! takes its keys from the pending set only when it leaves (see
//! [`TencentClient::call_built`]), so a batch holds everything asked for until its slot came; a
//! call that finds nothing left gives its slot up unsent.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::Instrument;

use super::Fetched;
use crate::problem::{ApiError, ProblemType};
use crate::tencent::actions::Action;
use crate::tencent::{CallContext, CallError, Priority, TencentClient};

/// A read action that lists many keys in one call.
pub trait Batched: Send + Sync + 'static {
    type Key: Ord + Hash + Clone + Send + Sync + std::fmt::Debug + 'static;
    type Item: Clone + Send + Sync + std::fmt::Debug + 'static;
    type Action: Action + 'static;
    /// Tencent's limit on keys per call.
    const MAX: usize;
    fn request(keys: Vec<Self::Key>) -> Self::Action;
    /// The answer's entries by key.
    fn entries(answer: <Self::Action as Action>::Response) -> Entries<Self>;
}

/// An answer's entries by key: an entry Tencent could not fill fails only its readers.
pub type Entries<B> = Vec<(<B as Batched>::Key, Result<<B as Batched>::Item, ApiError>)>;

/// A reader's answer: `None` when Tencent did not list the key.
pub type Reply<T> = Result<Fetched<Option<T>>, ApiError>;

type Readers<B> = Vec<oneshot::Sender<Reply<<B as Batched>::Item>>>;

/// Keys of one batch, each with its readers.
type Batch<B> = Vec<(<B as Batched>::Key, Readers<B>)>;

struct Pending<B: Batched> {
    /// Readers by key, in the order the keys were first asked for.
    readers: BTreeMap<B::Key, Readers<B>>,
    order: std::collections::VecDeque<B::Key>,
    /// Calls started that have not taken their keys yet.
    waiting: usize,
}

impl<B: Batched> Default for Pending<B> {
    fn default() -> Self {
        Self {
            readers: BTreeMap::new(),
            order: std::collections::VecDeque::new(),
            waiting: 0,
        }
    }
}

impl<B: Batched> Pending<B> {
    /// Up to `size` keys, oldest first, with their readers; a key whose readers all hung up is
    /// not sent.
    fn take_batch(&mut self, size: usize) -> Batch<B> {
        let mut batch = Vec::new();
        while batch.len() < size {
            let Some(key) = self.order.pop_front() else {
                break;
            };
            let Some(mut readers) = self.readers.remove(&key) else {
                continue;
            };
            readers.retain(|r| !r.is_closed());
            if !readers.is_empty() {
                batch.push((key, readers));
            }
        }
        batch
    }

    /// After a call failed before taking its keys: the readers the calls still waiting cannot
    /// take (newest first), to be answered with that failure rather than left waiting.
    fn overflow(&mut self, size: usize) -> Readers<B> {
        let mut orphans = Vec::new();
        while self.order.len() > self.waiting * size {
            let key = self.order.pop_back().expect("longer than a bound");
            orphans.extend(self.readers.remove(&key).unwrap_or_default());
        }
        orphans
    }
}

pub struct Batcher<B: Batched> {
    tencent: Arc<TencentClient>,
    /// Most keys a call carries.
    size: usize,
    timeout: Duration,
    pending: Arc<Mutex<Pending<B>>>,
}

impl<B: Batched> std::fmt::Debug for Batcher<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("action", &B::Action::NAME)
            .field("size", &self.size)
            .finish()
    }
}

impl<B: Batched> Batcher<B> {
    /// `size` is clamped to 1..=[`Batched::MAX`] (1 turns batching off).
    pub fn new(tencent: Arc<TencentClient>, size: usize, timeout: Duration) -> Self {
        Self {
            tencent,
            size: size.clamp(1, B::MAX),
            timeout,
            pending: Arc::new(Mutex::new(Pending::default())),
        }
    }

    /// `key`'s entry, from the next batch that leaves. `None`: Tencent did not list it.
    pub async fn get(&self, key: B::Key) -> Reply<B::Item> {
        let deadline = Instant::now() + self.timeout + crate::context::ANSWER_GRACE;
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut pending = self.pending.lock();
            let readers = pending.readers.entry(key.clone()).or_default();
            let first = readers.is_empty();
            readers.push(tx);
            if first {
                pending.order.push_back(key);
            }
            let start = pending.waiting == 0 || pending.order.len() > pending.waiting * self.size;
            if start {
                pending.waiting += 1;
            }
            start
        };
        if start {
            let guard = Departure {
                pending: self.pending.clone(),
                size: self.size,
                taken: false,
            };
            // In the trace of the request that started the flight: its call to Tencent, and
            // the `X-TC-TraceId` it sends, belong there.
            tokio::spawn(
                flight(self.tencent.clone(), guard, self.timeout)
                    .instrument(crate::telemetry::traces::call_span()),
            );
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ApiError::new(
                ProblemType::Internal,
                "the batched read failed",
            )),
            Err(_) => Err(ApiError::new(
                ProblemType::RequestTimeout,
                format!("{} did not come back in time", B::Action::NAME),
            )),
        }
    }
}

/// A started call's claim on the pending set: counted in `waiting` until it takes its keys. If
/// the call ends without taking them (it failed first, or its task panicked), dropping the claim
/// uncounts it and answers the readers no call left waiting can take, so none waits for a call
/// that will never come.
struct Departure<B: Batched> {
    pending: Arc<Mutex<Pending<B>>>,
    size: usize,
    taken: bool,
}

impl<B: Batched> Departure<B> {
    fn take(&mut self) -> Batch<B> {
        let mut pending = self.pending.lock();
        if !self.taken {
            self.taken = true;
            pending.waiting -= 1;
        }
        pending.take_batch(self.size)
    }

    /// Uncounts a call that failed before taking its keys; answers the orphans with `problem`.
    fn give_up(&mut self, problem: &ApiError) {
        if self.taken {
            return;
        }
        self.taken = true;
        let orphans = {
            let mut pending = self.pending.lock();
            pending.waiting -= 1;
            pending.overflow(self.size)
        };
        for reader in orphans {
            let _ = reader.send(Err(problem.clone()));
        }
    }
}

impl<B: Batched> Drop for Departure<B> {
    fn drop(&mut self) {
        self.give_up(&ApiError::new(
            ProblemType::Internal,
            "the batched read failed",
        ));
    }
}

/// One call: waits for its slot, takes its keys, answers their readers.
async fn flight<B: Batched>(
    tencent: Arc<TencentClient>,
    departure: Departure<B>,
    timeout: Duration,
) {
    let ctx = CallContext::new(uuid::Uuid::new_v4().to_string(), Instant::now() + timeout)
        .with_priority(Priority::Interactive);
    let departure = Mutex::new(departure);
    let taken: Mutex<Option<Batch<B>>> = Mutex::new(None);
    let build = || {
        let batch = departure.lock().take();
        if batch.is_empty() {
            return None;
        }
        let keys = batch.iter().map(|(key, _)| key.clone()).collect();
        *taken.lock() = Some(batch);
        Some(B::request(keys))
    };
    let result = tencent.call_built(build, &ctx).await;
    let batch = taken.lock().take();
    match (result, batch) {
        (Ok(Some(answer)), Some(batch)) => {
            let fetched = Instant::now();
            let request_id = answer.request_id;
            let mut listed: HashMap<B::Key, Result<B::Item, ApiError>> =
                B::entries(answer.data).into_iter().collect();
            for (key, readers) in batch {
                let reply = match listed.remove(&key) {
                    None => Ok(None),
                    Some(Ok(value)) => Ok(Some(value)),
                    Some(Err(problem)) => Err(problem),
                }
                .map(|value| Fetched {
                    value,
                    fetched,
                    request_id: request_id.clone(),
                });
                for reader in readers {
                    let _ = reader.send(reply.clone());
                }
            }
        }
        (Err(error), Some(batch)) => {
            let answered = matches!(error, CallError::Upstream(_));
            let mut problem = ApiError::from_call(error);
            // Tencent's message about a shared call may quote another reader's key (a token
            // grants its invitation): readers of a batch get the code and RequestId, not it.
            if answered && batch.len() > 1 {
                problem.detail = format!(
                    "Tencent refused the {} call this read shared with {} others",
                    B::Action::NAME,
                    batch.len() - 1
                );
            }
            for reader in batch.into_iter().flat_map(|(_, readers)| readers) {
                let _ = reader.send(Err(problem.clone()));
            }
        }
        // Failed before it could leave (quota refused, deadline): its keys are still pending.
        // Those the calls still waiting can take stay; the rest get this failure now.
        (Err(error), None) => departure.lock().give_up(&ApiError::from_call(error)),
        // Left with nothing to send, or answered without a batch (cannot happen).
        (Ok(_), _) => {}
    }
}
