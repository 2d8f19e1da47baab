//! The simulator's state: ledger, cooldowns, per-second quota windows, faults and statistics.

use std::collections::{BTreeMap, HashMap};

use parking_lot::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod customers;
mod lookups;
mod report;
mod roles;

pub use roles::ROLE;

pub use report::{ActionStats, CustomerCredit, HistoryEntry, Ledger, SeenRequest, Stats};

use super::faults::{Fault, FaultKind};
use super::{HistoryOrder, REGISTERED_EMAIL, SEEDED_CUSTOMERS, SandboxConfig};

/// How many per-second counts each action keeps (about three hours of traffic).
const MAX_SECONDS_KEPT: usize = 10_000;
/// How many recent requests' headers are kept for inspection.
const MAX_RECENT: usize = 256;

#[derive(Debug, Default, Clone, Copy)]
struct Account {
    total: i64,
    remaining: i64,
}

#[derive(Debug)]
struct Inner {
    customers: BTreeMap<u64, Account>,
    partner_total: i64,
    partner_allocated: i64,
    history: BTreeMap<u64, Vec<HistoryEntry>>,
    last_invitation_ms: HashMap<String, u64>,
    invitations: std::collections::VecDeque<lookups::Invitation>,
    joined: Vec<lookups::Joined>,
    temporary: std::collections::VecDeque<roles::RoleCredentials>,
    metadata_up: bool,
    windows: HashMap<String, (u64, u32)>,
    stats: Stats,
    faults: Vec<Fault>,
    rng: StdRng,
    recent: std::collections::VecDeque<SeenRequest>,
}

/// A business refusal: a Tencent error code and message.
pub type Refusal = (&'static str, String);

#[derive(Debug)]
pub struct SandboxState {
    pub config: SandboxConfig,
    inner: Mutex<Inner>,
}

fn cents(value: i64) -> f64 {
    value as f64 / 100.0
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time in seconds (the metadata service's `Expiration`).
pub fn timestamp_iso(unix_secs: i64) -> String {
    timestamp(unix_secs.max(0) as u64 * 1000).replacen(' ', "T", 1) + "Z"
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time in milliseconds.
fn timestamp(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as i64;
    let date = crate::tencent::sign::utc_date(secs).unwrap_or_default();
    let day = secs.rem_euclid(86_400);
    format!(
        "{date} {:02}:{:02}:{:02}",
        day / 3600,
        day % 3600 / 60,
        day % 60
    )
}

impl SandboxState {
    pub fn new(config: SandboxConfig) -> Self {
        let inner = Inner {
            customers: SEEDED_CUSTOMERS
                .iter()
                .map(|&u| (u, Account::default()))
                .collect(),
            partner_total: config.partner_credit_cents,
            partner_allocated: 0,
            history: BTreeMap::new(),
            last_invitation_ms: HashMap::new(),
            invitations: std::collections::VecDeque::new(),
            joined: Vec::new(),
            temporary: std::collections::VecDeque::new(),
            metadata_up: true,
            windows: HashMap::new(),
            stats: Stats::default(),
            faults: Vec::new(),
            rng: StdRng::seed_from_u64(config.seed),
            recent: std::collections::VecDeque::new(),
        };
        Self {
            config,
            inner: Mutex::new(inner),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// A request signed with `secret_id` passed verification.
    pub fn record_key(&self, secret_id: &str) {
        let mut inner = self.lock();
        let known = inner.stats.by_secret_id.len();
        match inner.stats.by_secret_id.get_mut(secret_id) {
            Some(count) => *count += 1,
            None if known < 10_000 => {
                inner.stats.by_secret_id.insert(secret_id.to_owned(), 1);
            }
            None => {}
        }
    }

    pub fn record_received(&self, seen: SeenRequest) {
        let mut inner = self.lock();
        inner.stats.received += 1;
        inner
            .stats
            .actions
            .entry(seen.action.clone())
            .or_default()
            .received += 1;
        if inner.recent.len() == MAX_RECENT {
            inner.recent.pop_front();
        }
        inner.recent.push_back(seen);
    }

    /// The most recent requests, oldest first.
    pub fn recent_requests(&self) -> Vec<SeenRequest> {
        self.lock().recent.iter().cloned().collect()
    }

    /// Counts an authenticated arrival in its wall-clock second; false when over the quota.
    pub fn admit(&self, action: &str) -> bool {
        let now_ms = self.config.clock.now_unix_ms();
        let second = now_ms / 1000;
        let limit = self.config.quotas.get(action).copied().unwrap_or(20);
        let mut inner = self.lock();
        let window = inner
            .windows
            .entry(action.to_owned())
            .or_insert((second, 0));
        if window.0 != second {
            *window = (second, 0);
        }
        window.1 += 1;
        let count = window.1;
        let stats = inner.stats.actions.entry(action.to_owned()).or_default();
        stats.arrivals += 1;
        stats.max_per_second = stats.max_per_second.max(count);
        stats.per_second.insert(second, count);
        if stats.per_second.len() > MAX_SECONDS_KEPT {
            stats.per_second.pop_first();
        }
        if count > limit {
            stats.rate_limited += 1;
            if stats.refused_ms.len() == MAX_SECONDS_KEPT {
                stats.refused_ms.pop_front();
            }
            stats.refused_ms.push_back(now_ms);
            return false;
        }
        if stats.admitted_ms.len() == MAX_SECONDS_KEPT {
            stats.admitted_ms.pop_front();
        }
        stats.admitted_ms.push_back(now_ms);
        true
    }

    pub fn record_executed(&self, action: &str) {
        self.lock()
            .stats
            .actions
            .entry(action.to_owned())
            .or_default()
            .executed += 1;
    }

    /// The fault that hits this call, if any (the first matching one that fires).
    pub fn take_fault(&self, action: &str) -> Option<FaultKind> {
        let mut inner = self.lock();
        let Inner { faults, rng, .. } = &mut *inner;
        for fault in faults.iter_mut() {
            if !fault.matches(action) {
                continue;
            }
            if let Some(p) = fault.probability
                && !rng.random_bool(p.clamp(0.0, 1.0))
            {
                continue;
            }
            if let Some(times) = &mut fault.times {
                *times -= 1;
            }
            return Some(fault.kind.clone());
        }
        faults.retain(|f| f.times != Some(0));
        None
    }

    pub fn add_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn ledger(&self) -> Ledger {
        let inner = self.lock();
        Ledger {
            partner_total_credit: cents(inner.partner_total),
            partner_allocated_credit: cents(inner.partner_allocated),
            partner_remaining_credit: cents(inner.partner_total - inner.partner_allocated),
            customers: inner
                .customers
                .iter()
                .map(|(&uin, a)| CustomerCredit {
                    uin,
                    total_credit: cents(a.total),
                    remaining_credit: cents(a.remaining),
                })
                .collect(),
            history: inner.history.clone(),
        }
    }

    /// Sends an invitation mail, unless the address is registered or in its cooldown.
    pub fn invite(&self, email: &str) -> Result<String, Refusal> {
        if email.eq_ignore_ascii_case(REGISTERED_EMAIL) {
            return Err((
                "FailedOperation.MailIsRegistered",
                "The mailbox has been registered.".into(),
            ));
        }
        let key = email.to_ascii_lowercase();
        let now = self.config.clock.now_unix_ms();
        let cooldown = self.config.invitation_cooldown.as_millis() as u64;
        let mut inner = self.lock();
        if let Some(&last) = inner.last_invitation_ms.get(&key)
            && now < last + cooldown
        {
            return Err((
                "FailedOperation.SendMailLimit180",
                "The interval between sending invitation links must exceed three minutes.".into(),
            ));
        }
        inner.last_invitation_ms.insert(key, now);
        drop(inner);
        let token = self.issue_invitation(email);
        Ok(format!("https://sandbox.invalid/invitation/{token}"))
    }

    /// Applies an increment to a customer's credit; returns (total, remaining) after it.
    pub fn allocate(
        &self,
        operator: &str,
        uin: u64,
        amount: i64,
        remark: &str,
    ) -> Result<(f64, f64), Refusal> {
        let now = self.config.clock.now_unix_ms();
        let mut inner = self.lock();
        let partner_remaining = inner.partner_total - inner.partner_allocated;
        let Some(account) = inner.customers.get(&uin).copied() else {
            return Err((
                "UnauthorizedOperation.UinNoAuth",
                format!("The customer {uin} is not bound to this partner."),
            ));
        };
        if amount > partner_remaining {
            return Err((
                "FailedOperation.BalanceInsufficient",
                "The partner's allocable credit is insufficient.".into(),
            ));
        }
        if account.remaining + amount < 0 {
            return Err((
                "FailedOperation",
                "The customer's available credit cannot go below 0.".into(),
            ));
        }
        let after = Account {
            total: account.total + amount,
            remaining: account.remaining + amount,
        };
        inner.customers.insert(uin, after);
        inner.partner_allocated += amount;
        inner.history.entry(uin).or_default().push(HistoryEntry {
            allocated_time: timestamp(now),
            operator: operator.to_owned(),
            credit: cents(amount),
            allocated_credit: cents(after.total),
            client_credit_after: cents(after.remaining),
            remark: remark.to_owned(),
        });
        Ok((cents(after.total), cents(after.remaining)))
    }

    /// One page of a customer's allocations and the total count, in the configured order
    /// (`history_order`), at most `history_page_cap` per page whatever was asked for.
    pub fn history(
        &self,
        uin: u64,
        page: usize,
        page_size: usize,
    ) -> Result<(usize, Vec<HistoryEntry>), Refusal> {
        let inner = self.lock();
        if !inner.customers.contains_key(&uin) {
            return Err((
                "UnauthorizedOperation.UinNoAuth",
                format!("The customer {uin} is not bound to this partner."),
            ));
        }
        let all = inner
            .history
            .get(&uin)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let page_size = page_size.clamp(1, self.config.history_page_cap.max(1));
        let skip = (page - 1).saturating_mul(page_size);
        let page: Vec<_> = match self.config.history_order {
            HistoryOrder::NewestFirst => all
                .iter()
                .rev()
                .skip(skip)
                .take(page_size)
                .cloned()
                .collect(),
            HistoryOrder::OldestFirst => all.iter().skip(skip).take(page_size).cloned().collect(),
        };
        Ok((all.len(), page))
    }

    pub fn credits(&self, uins: &[u64]) -> Vec<CustomerCredit> {
        let inner = self.lock();
        uins.iter()
            .filter_map(|uin| {
                inner.customers.get(uin).map(|a| CustomerCredit {
                    uin: *uin,
                    total_credit: cents(a.total),
                    remaining_credit: cents(a.remaining),
                })
            })
            .collect()
    }

    /// (allocated, total, remaining) of the partner, and (total, remaining) of its customers.
    pub fn partner_credit(&self) -> ((f64, f64, f64), (f64, f64)) {
        let inner = self.lock();
        let customers_total = inner.customers.values().map(|a| a.total).sum();
        let customers_remaining = inner.customers.values().map(|a| a.remaining).sum();
        (
            (
                cents(inner.partner_allocated),
                cents(inner.partner_total),
                cents(inner.partner_total - inner.partner_allocated),
            ),
            (cents(customers_total), cents(customers_remaining)),
        )
    }
}

#[cfg(test)]
mod tests;
