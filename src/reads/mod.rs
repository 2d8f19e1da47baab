//! The read side: Tencent's credit queries served to many viewers from few upstream calls.
//!
//! - **Batching** ([`batch::Batcher`]): concurrent reads of single customers' credit become one
//!   `QueryCreditByUinList` of up to 50 UINs. A batch is made when its quota slot comes (the
//!   client builds the request at departure), so it holds everything asked for until then; with
//!   the quota idle the first reader's call leaves at once.
//! - **Coalescing** ([`single::SingleFlight`]): identical concurrent reads share one call.
//! - **A short cache**: answers are reused for `reads.cache_ms`; an allocation through the gateway
//!   drops that customer's entry and the partner's at once (read-your-writes on this replica).

pub mod batch;
pub mod single;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::problem::ApiError;
use crate::tencent::TencentClient;
use crate::tencent::actions::PartnerCredit;

/// A customer's credit as Tencent listed it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CustomerCredit {
    pub uin: u64,
    pub total_credit: f64,
    pub remaining_credit: f64,
}

/// A read answer and when it was fetched from Tencent.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    pub fetched: Instant,
    pub request_id: String,
}

impl<T> Fetched<T> {
    /// Whole seconds since Tencent answered (the `Age` header).
    pub fn age_secs(&self) -> u64 {
        self.fetched.elapsed().as_secs()
    }
}

/// What a read gives: the answer, or the problem every reader of it gets.
pub type ReadResult<T> = Result<Fetched<T>, ApiError>;

/// What is cached, and the generations that keep answers older than an allocation out of it:
/// one lock, so checking a generation and inserting are one step against an allocation's bump.
#[derive(Debug, Default)]
struct Cache {
    credits: HashMap<u64, Fetched<CustomerCredit>>,
    partner: Option<Fetched<PartnerCredit>>,
    /// Per customer, bumped by each allocation to it (customers are few; never pruned).
    customer_generations: HashMap<u64, u64>,
    /// Bumped by every allocation.
    partner_generation: u64,
}

/// The read side's shared state.
#[derive(Debug)]
pub struct Reads {
    cache_for: Duration,
    credits: batch::Batcher,
    partner: single::SingleFlight<PartnerCredit>,
    cache: Mutex<Cache>,
}

impl Reads {
    pub fn new(
        tencent: Arc<TencentClient>,
        settings: &crate::config::ReadSettings,
        timeout: Duration,
    ) -> Self {
        Self {
            cache_for: settings.cache(),
            credits: batch::Batcher::new(tencent.clone(), settings.batch_size, timeout),
            partner: single::SingleFlight::new(tencent, timeout),
            cache: Mutex::new(Cache::default()),
        }
    }

    fn fresh<T: Clone>(&self, entry: Option<&Fetched<T>>) -> Option<Fetched<T>> {
        entry
            .filter(|e| e.fetched.elapsed() < self.cache_for)
            .cloned()
    }

    /// A customer's credit: from the cache, or from a batched `QueryCreditByUinList`.
    /// `Ok(None)`: Tencent does not list the UIN (not this partner's customer).
    pub async fn customer_credit(
        &self,
        uin: u64,
    ) -> Result<Option<Fetched<CustomerCredit>>, ApiError> {
        let generation = {
            let cache = self.cache.lock();
            if let Some(hit) = self.fresh(cache.credits.get(&uin)) {
                return Ok(Some(hit));
            }
            cache.customer_generations.get(&uin).copied()
        };
        let fetched = self.credits.credit(uin).await?;
        if let Some(entry) = &fetched
            && !self.cache_for.is_zero()
        {
            let mut cache = self.cache.lock();
            // An allocation to this customer since the read began: the answer may predate it.
            if cache.customer_generations.get(&uin).copied() == generation {
                cache
                    .credits
                    .retain(|_, e| e.fetched.elapsed() < self.cache_for);
                cache.credits.insert(uin, entry.clone());
            }
        }
        Ok(fetched)
    }

    /// The partner's credit: from the cache, or from one `QueryPartnerCredit` shared by every
    /// concurrent reader.
    pub async fn partner_credit(&self) -> ReadResult<PartnerCredit> {
        let generation = {
            let cache = self.cache.lock();
            if let Some(hit) = self.fresh(cache.partner.as_ref()) {
                return Ok(hit);
            }
            cache.partner_generation
        };
        let fetched = self.partner.get().await?;
        if !self.cache_for.is_zero() {
            let mut cache = self.cache.lock();
            if cache.partner_generation == generation {
                cache.partner = Some(fetched.clone());
            }
        }
        Ok(fetched)
    }

    /// An allocation to `uin` went through the gateway: what was cached of it, and of the
    /// partner's credit, is stale now, and so is a partner-credit call already under way (its
    /// own readers keep its answer; readers from now on get a new call).
    pub fn allocated(&self, uin: u64) {
        self.partner.detach();
        let mut cache = self.cache.lock();
        *cache.customer_generations.entry(uin).or_default() += 1;
        cache.partner_generation += 1;
        cache.credits.remove(&uin);
        cache.partner = None;
    }
}

/// A weak `ETag` for an answer's values, written out (not its `requestId`, which differs per
/// upstream call though the credit does not): the same credit gives the same tag, across calls
/// and replicas.
pub fn etag(values: &str) -> String {
    let hash = crate::tencent::sign::sha256_hex(values.as_bytes());
    format!("W/\"{}\"", &hash[..32])
}
