//! The read side: Tencent's queries served to many viewers from few upstream calls.
//!
//! - **Batching** ([`batch::Batcher`], [`kinds`]): concurrent reads of single things become one
//!   call listing many: customers' credit (`QueryCreditByUinList`, 50 UINs), profiles
//!   (`DescribeCustomerInfo`, 20), invitations (`QueryInvitationInfo`, 100 tokens). A batch is
//!   made when its quota slot comes (the client builds the request at departure), so it holds
//!   everything asked for until then; with the quota idle the first reader's call leaves at once.
//! - **Coalescing and a short cache** ([`memo::Memo`]): identical concurrent reads share one call,
//!   and its answer is reused for `reads.cache_ms`.
//! - **Read-your-writes** ([`Versions`]): an answer is reused only by readers that see the
//!   version it was fetched at. An allocation bumps its customer's version and the partner's on
//!   this replica and, with Redis, fleet-wide before its caller is answered; every reader of
//!   something an allocation changes reads the fleet's version first (one `GET`).
//!
//! Why versioned keys rather than pub/sub: Redis pub/sub delivers at most once and
//! asynchronously. A replica whose subscription is reconnecting misses an invalidation without
//! knowing it, and even a healthy one may get it after the caller, answered 201, has already
//! read through it. A version read in the same Redis the allocation wrote to is ordered after
//! that write, so a read that follows a 201 cannot get the older answer on any replica.

pub mod batch;
pub mod kinds;
pub mod memo;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::problem::ApiError;
use crate::redis_link::RedisLink;
use crate::tencent::actions::{
    AllocationHistory, CustomerProfile, CustomersPage, InvitationInfo, PartnerCredit,
    QueryCreditAllocationHistory, QueryCustomersCredit, QueryPartnerCredit,
};
use crate::tencent::{CallContext, Priority, TencentClient};
use batch::Batcher;
use memo::{Memo, Version};

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

/// What an answer depends on, for invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    /// A customer's credit and allocations.
    Customer(u64),
    /// The partner's credit and the customer list (every allocation changes them).
    Partner,
}

/// Versions of what allocations change: this replica's counts, and the fleet's in Redis.
#[derive(Debug)]
struct Versions {
    /// Bumped by each allocation through this replica that reached Tencent and was not refused
    /// (so only real customers: few; never pruned).
    local: Mutex<HashMap<Scope, u64>>,
    fleet: Option<Arc<RedisLink>>,
    /// `reads.cache_ms`: how long a failed fleet bump is retried.
    cache_for: Duration,
}

/// How long a fleet version outlives the last allocation that bumped it; answers are cached for
/// at most a minute, so a version that expired and starts again cannot meet an answer of its
/// earlier life.
const VERSION_TTL_S: i64 = 86_400;

impl Versions {
    /// The fleet's version keys share one hash tag, so both of an allocation's bumps are one
    /// transaction on a Redis Cluster too.
    fn key(link: &RedisLink, scope: Scope) -> String {
        let tag = link.key("reads");
        match scope {
            Scope::Customer(uin) => format!("{{{tag}}}:version:{uin}"),
            Scope::Partner => format!("{{{tag}}}:version:partner"),
        }
    }

    /// The version a reader sees now. `None` when the fleet's cannot be read (Redis configured
    /// but not answering): another replica's allocation might then go unseen, so such a read
    /// neither reuses an answer nor joins a call. Without Redis, this replica's count is the
    /// version (one replica, or one without shared state).
    async fn of(&self, scope: Scope) -> Option<Version> {
        let local = self.local.lock().get(&scope).copied().unwrap_or_default();
        let Some(link) = &self.fleet else {
            return Some((local, None));
        };
        let key = Self::key(link, scope);
        let fleet = link
            .run("reads_version", |mut conn| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<u64>>(&mut conn)
                    .await
            })
            .await
            .ok()?;
        Some((local, Some(fleet.unwrap_or_default())))
    }

    /// An allocation to `uin` happened (or may have): here at once, then fleet-wide in one
    /// transaction, within [`BUMP_BUDGET`]. A bump that fails is retried in the background for
    /// `reads.cache_ms`: past that, no answer from before the allocation is left anywhere.
    async fn bump(&self, uin: u64) {
        {
            let mut local = self.local.lock();
            *local.entry(Scope::Customer(uin)).or_default() += 1;
            *local.entry(Scope::Partner).or_default() += 1;
        }
        let Some(link) = &self.fleet else { return };
        if Self::bump_fleet(link, uin).await {
            return;
        }
        tracing::warn!(
            uin,
            "other replicas may show this customer's credit from before the allocation until the bump succeeds (retried for reads.cache_ms)"
        );
        let (link, until) = (link.clone(), Instant::now() + self.cache_for);
        tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if Self::bump_fleet(&link, uin).await {
                    return;
                }
            }
        });
    }

    /// One `MULTI` of both `INCR`s; whether Redis confirmed it within [`BUMP_BUDGET`].
    async fn bump_fleet(link: &RedisLink, uin: u64) -> bool {
        let (customer, partner) = (
            Self::key(link, Scope::Customer(uin)),
            Self::key(link, Scope::Partner),
        );
        let bumped = link.run("reads_version", |mut conn| async move {
            redis::pipe()
                .atomic()
                .incr(&customer, 1)
                .expire(&customer, VERSION_TTL_S)
                .ignore()
                .incr(&partner, 1)
                .expire(&partner, VERSION_TTL_S)
                .ignore()
                .query_async::<(u64, u64)>(&mut conn)
                .await
        });
        matches!(tokio::time::timeout(BUMP_BUDGET, bumped).await, Ok(Ok(_)))
    }
}

/// Longest the credit route waits for an allocation's fleet-wide bump before it answers: what
/// is left of the route's grace past its deadline before the outermost timeout answers for it
/// (which would tell a caller that nothing was sent).
pub const BUMP_BUDGET: Duration = Duration::from_millis(200);
const _: () = assert!(
    crate::context::ANSWER_GRACE.as_millis() + BUMP_BUDGET.as_millis() + 50
        <= crate::context::OUTER_GRACE.as_millis()
);

/// The read side's shared state.
#[derive(Debug)]
pub struct Reads {
    tencent: Arc<TencentClient>,
    timeout: Duration,
    versions: Versions,
    credits: Arc<Batcher<kinds::Credits>>,
    profiles: Arc<Batcher<kinds::Profiles>>,
    invitations: Arc<Batcher<kinds::Invitations>>,
    credit_memo: Memo<u64, Option<CustomerCredit>>,
    profile_memo: Memo<u64, Option<CustomerProfile>>,
    invitation_memo: Memo<String, Option<InvitationInfo>>,
    partner_memo: Memo<(), PartnerCredit>,
    history_memo: Memo<(u64, u64, u64), AllocationHistory>,
    list_memo: Memo<String, CustomersPage>,
}

impl Reads {
    pub fn new(
        tencent: Arc<TencentClient>,
        settings: &crate::config::ReadSettings,
        timeout: Duration,
        fleet: Option<Arc<RedisLink>>,
    ) -> Self {
        let cache_for = settings.cache();
        let size = settings.batch_size;
        Self {
            credits: Arc::new(Batcher::new(tencent.clone(), size, timeout)),
            profiles: Arc::new(Batcher::new(tencent.clone(), size, timeout)),
            invitations: Arc::new(Batcher::new(tencent.clone(), size, timeout)),
            tencent,
            timeout,
            versions: Versions {
                local: Mutex::new(HashMap::new()),
                fleet,
                cache_for,
            },
            credit_memo: Memo::new(cache_for),
            profile_memo: Memo::new(cache_for),
            invitation_memo: Memo::new(cache_for),
            partner_memo: Memo::new(cache_for),
            history_memo: Memo::new(cache_for),
            list_memo: Memo::new(cache_for),
        }
    }

    fn context(&self) -> CallContext {
        CallContext::new(
            uuid::Uuid::new_v4().to_string(),
            Instant::now() + self.timeout,
        )
        .with_priority(Priority::Interactive)
    }

    /// Runs one call of `action` and keeps its answer with when and by which call it came.
    fn fetch<A>(&self, action: A) -> impl Future<Output = ReadResult<A::Response>> + use<A>
    where
        A: crate::tencent::actions::Action + 'static,
    {
        let (tencent, ctx) = (self.tencent.clone(), self.context());
        async move {
            tencent
                .call(&action, &ctx)
                .await
                .map(|answer| Fetched {
                    value: answer.data,
                    fetched: Instant::now(),
                    request_id: answer.request_id,
                })
                .map_err(ApiError::from_call)
        }
    }

    /// A customer's credit, from a batched `QueryCreditByUinList`. `None`: Tencent does not list
    /// the UIN (not this partner's customer).
    pub async fn customer_credit(&self, uin: u64) -> ReadResult<Option<CustomerCredit>> {
        let version = self.versions.of(Scope::Customer(uin)).await;
        let batcher = self.credits.clone();
        self.credit_memo
            .get(uin, version, || async move { batcher.get(uin).await })
            .await
    }

    /// A customer's profile, from a batched `DescribeCustomerInfo`. Allocations do not change
    /// it, so it is never invalidated, only aged.
    pub async fn customer_profile(&self, uin: u64) -> ReadResult<Option<CustomerProfile>> {
        let batcher = self.profiles.clone();
        self.profile_memo
            .get(uin, Some(Version::default()), || async move {
                batcher.get(uin).await
            })
            .await
    }

    /// What became of an invitation link, from a batched `QueryInvitationInfo`.
    pub async fn invitation(&self, token: String) -> ReadResult<Option<InvitationInfo>> {
        let batcher = self.invitations.clone();
        let key = token.clone();
        self.invitation_memo
            .get(key, Some(Version::default()), || async move {
                batcher.get(token).await
            })
            .await
    }

    /// The partner's credit, from one `QueryPartnerCredit` shared by every concurrent reader.
    pub async fn partner_credit(&self) -> ReadResult<PartnerCredit> {
        let version = self.versions.of(Scope::Partner).await;
        self.partner_memo
            .get((), version, || self.fetch(QueryPartnerCredit {}))
            .await
    }

    /// One page of a customer's allocations.
    pub async fn history(&self, uin: u64, page: u64, size: u64) -> ReadResult<AllocationHistory> {
        let version = self.versions.of(Scope::Customer(uin)).await;
        let action = QueryCreditAllocationHistory {
            client_uin: uin,
            page,
            page_size: size,
        };
        self.history_memo
            .get((uin, page, size), version, || self.fetch(action))
            .await
    }

    /// One page of the customer list; `key` names the query (equal queries, equal keys).
    pub async fn customers(
        &self,
        key: String,
        query: QueryCustomersCredit,
    ) -> ReadResult<CustomersPage> {
        let version = self.versions.of(Scope::Partner).await;
        self.list_memo.get(key, version, || self.fetch(query)).await
    }

    /// An allocation to `uin` went through the gateway (or may have): what was read of it, of
    /// the partner's credit and of the customer list is stale now, here at once and, with
    /// Redis, on every replica before this returns. Calls already under way keep their readers;
    /// readers from now on get new ones.
    pub async fn allocated(&self, uin: u64) {
        self.versions.bump(uin).await;
    }

    /// Longest [`Reads::allocated`] takes: [`BUMP_BUDGET`], with Redis.
    pub fn allocated_within(&self) -> Duration {
        match self.versions.fleet {
            Some(_) => BUMP_BUDGET,
            None => Duration::ZERO,
        }
    }
}

/// A weak `ETag` for an answer's values, written out (not its `requestId`, which differs per
/// upstream call though the credit does not): the same credit gives the same tag, across calls
/// and replicas.
pub fn etag(values: &str) -> String {
    let hash = crate::tencent::sign::sha256_hex(values.as_bytes());
    format!("W/\"{}\"", &hash[..32])
}
