//! One upstream call shared by every concurrent reader of the same thing.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Fetched, ReadResult};
use crate::problem::ApiError;
use crate::tencent::actions::{PartnerCredit, QueryPartnerCredit};
use crate::tencent::{CallContext, Priority, TencentClient};

/// The readers of one call in flight.
type Flight<T> = Arc<Mutex<Vec<oneshot::Sender<ReadResult<T>>>>>;

/// Coalesces concurrent `QueryPartnerCredit` reads: the first reader's call serves all who ask
/// while it is under way.
#[derive(Debug)]
pub struct SingleFlight<T> {
    tencent: Arc<TencentClient>,
    timeout: Duration,
    /// The call new readers join, if one is under way and has not been detached.
    current: Arc<Mutex<Option<Flight<T>>>>,
}

impl SingleFlight<PartnerCredit> {
    pub fn new(tencent: Arc<TencentClient>, timeout: Duration) -> Self {
        Self {
            tencent,
            timeout,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// New readers start a new call: the one under way may have left before a change.
    pub fn detach(&self) {
        self.current.lock().take();
    }

    /// The answer of the call in flight, or of a new one.
    pub async fn get(&self) -> ReadResult<PartnerCredit> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut current = self.current.lock();
            match current.as_ref() {
                Some(flight) => {
                    flight.lock().push(tx);
                    None
                }
                None => {
                    let flight: Flight<PartnerCredit> = Arc::new(Mutex::new(vec![tx]));
                    *current = Some(flight.clone());
                    Some(flight)
                }
            }
        };
        if let Some(flight) = lead {
            // The call runs as its own task: a leader that hangs up does not cancel it for the
            // others.
            let (tencent, timeout, current) =
                (self.tencent.clone(), self.timeout, self.current.clone());
            tokio::spawn(async move {
                let ctx =
                    CallContext::new(uuid::Uuid::new_v4().to_string(), Instant::now() + timeout)
                        .with_priority(Priority::Interactive);
                let result = tencent
                    .call(&QueryPartnerCredit {}, &ctx)
                    .await
                    .map(|answer| Fetched {
                        value: answer.data,
                        fetched: Instant::now(),
                        request_id: answer.request_id,
                    })
                    .map_err(ApiError::from_call);
                // No reader joins once it has answered: it is no longer the current flight.
                {
                    let mut current = current.lock();
                    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &flight)) {
                        *current = None;
                    }
                }
                for waiter in std::mem::take(&mut *flight.lock()) {
                    let _ = waiter.send(result.clone());
                }
            });
        }
        rx.await.unwrap_or_else(|_| {
            Err(ApiError::new(
                crate::problem::ProblemType::Internal,
                "the shared read failed",
            ))
        })
    }
}
