//! Concurrent reads of single customers' credit, merged into `QueryCreditByUinList` calls of up to
//! [`MAX_UINS`] UINs.
//!
//! A reader adds its UIN to the pending set. A call is started when none is waiting for its
//! quota slot, or when the pending UINs would overflow the calls already waiting. Each call takes
//! its UINs from the pending set only when it leaves (see
//! [`TencentClient::call_built`]), so a batch holds everything asked for until its slot came; a
//! call that finds nothing left gives its slot up unsent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CustomerCredit, Fetched};
use crate::problem::{ApiError, ProblemType};
use crate::tencent::actions::{CreditOfUin, QueryCreditByUinList};
use crate::tencent::{CallContext, Priority, TencentClient};

/// Tencent's limit on `UinList`.
pub const MAX_UINS: usize = 50;

type Reply = Result<Option<Fetched<CustomerCredit>>, ApiError>;

/// UINs of one batch, each with its readers.
type Batch = Vec<(u64, Vec<oneshot::Sender<Reply>>)>;

#[derive(Debug, Default)]
struct Pending {
    /// Readers by UIN, in the order the UINs were first asked for.
    readers: BTreeMap<u64, Vec<oneshot::Sender<Reply>>>,
    order: Vec<u64>,
    /// Calls started that have not taken their UINs yet.
    waiting: usize,
}

impl Pending {
    /// Up to `size` UINs, oldest first, with their readers; a UIN whose readers all hung up is
    /// not sent.
    fn take_batch(&mut self, size: usize) -> Batch {
        let mut batch = Vec::new();
        while batch.len() < size && !self.order.is_empty() {
            let uin = self.order.remove(0);
            let Some(mut readers) = self.readers.remove(&uin) else {
                continue;
            };
            readers.retain(|r| !r.is_closed());
            if !readers.is_empty() {
                batch.push((uin, readers));
            }
        }
        batch
    }

    /// After a call failed before taking its UINs: the readers the calls still waiting cannot
    /// take (newest first), to be answered with that failure rather than left waiting.
    fn overflow(&mut self, size: usize) -> Vec<oneshot::Sender<Reply>> {
        let mut orphans = Vec::new();
        while self.order.len() > self.waiting * size {
            let uin = self.order.pop().expect("longer than a bound");
            orphans.extend(self.readers.remove(&uin).unwrap_or_default());
        }
        orphans
    }
}

#[derive(Debug)]
pub struct Batcher {
    tencent: Arc<TencentClient>,
    /// Most UINs a call carries (`reads.batch_size`).
    size: usize,
    timeout: Duration,
    pending: Arc<Mutex<Pending>>,
}

impl Batcher {
    pub fn new(tencent: Arc<TencentClient>, size: usize, timeout: Duration) -> Self {
        Self {
            tencent,
            size: size.clamp(1, MAX_UINS),
            timeout,
            pending: Arc::new(Mutex::new(Pending::default())),
        }
    }

    /// `uin`'s credit, from the next batch that leaves. `None`: Tencent did not list it.
    pub async fn credit(&self, uin: u64) -> Reply {
        let deadline = Instant::now() + self.timeout + crate::context::ANSWER_GRACE;
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut pending = self.pending.lock();
            let readers = pending.readers.entry(uin).or_default();
            if readers.is_empty() {
                pending.order.push(uin);
            }
            pending.readers.get_mut(&uin).expect("just added").push(tx);
            let start = pending.waiting == 0 || pending.order.len() > pending.waiting * self.size;
            if start {
                pending.waiting += 1;
            }
            start
        };
        if start {
            tokio::spawn(flight(
                self.tencent.clone(),
                self.pending.clone(),
                self.size,
                self.timeout,
            ));
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err(ApiError::new(
                ProblemType::Internal,
                "the batched read failed",
            )),
            Err(_) => Err(ApiError::new(
                ProblemType::RequestTimeout,
                "the credit query did not come back in time",
            )),
        }
    }
}

/// One `QueryCreditByUinList`: waits for its slot, takes its UINs, answers their readers.
async fn flight(
    tencent: Arc<TencentClient>,
    pending: Arc<Mutex<Pending>>,
    size: usize,
    timeout: Duration,
) {
    let ctx = CallContext::new(uuid::Uuid::new_v4().to_string(), Instant::now() + timeout)
        .with_priority(Priority::Interactive);
    let taken: Mutex<Option<Batch>> = Mutex::new(None);
    let build = || {
        let mut pending = pending.lock();
        pending.waiting -= 1;
        let batch = pending.take_batch(size);
        if batch.is_empty() {
            return None;
        }
        let uin_list = batch.iter().map(|(uin, _)| *uin).collect();
        *taken.lock() = Some(batch);
        Some(QueryCreditByUinList { uin_list })
    };
    let result = tencent.call_built(build, &ctx).await;
    let batch = taken.lock().take();
    match (result, batch) {
        (Ok(Some(answer)), Some(batch)) => {
            let fetched = Instant::now();
            for (uin, readers) in batch {
                let listed = answer.data.data.iter().find(|c| c.uin == uin);
                let reply = match listed {
                    None => Ok(None),
                    Some(CreditOfUin {
                        total_credit: Some(total),
                        remaining_credit: Some(remaining),
                        ..
                    }) => Ok(Some(Fetched {
                        value: CustomerCredit {
                            uin,
                            total_credit: *total,
                            remaining_credit: *remaining,
                        },
                        fetched,
                        request_id: answer.request_id.clone(),
                    })),
                    Some(_) => Err(ApiError::new(
                        ProblemType::UpstreamError,
                        "Tencent listed this customer without its credit",
                    )),
                };
                for reader in readers {
                    let _ = reader.send(reply.clone());
                }
            }
        }
        (Err(error), Some(batch)) => {
            let problem = ApiError::from_call(error);
            for reader in batch.into_iter().flat_map(|(_, readers)| readers) {
                let _ = reader.send(Err(problem.clone()));
            }
        }
        // Failed before it could leave (quota refused, deadline): its UINs are still pending.
        // Those the calls still waiting can take stay; the rest get this failure now.
        (Err(error), None) => {
            let orphans = {
                let mut pending = pending.lock();
                pending.waiting -= 1;
                pending.overflow(size)
            };
            let problem = ApiError::from_call(error);
            for reader in orphans {
                let _ = reader.send(Err(problem.clone()));
            }
        }
        // Left with nothing to send, or answered without a batch (cannot happen).
        (Ok(_), _) => {}
    }
}
