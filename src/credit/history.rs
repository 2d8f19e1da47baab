//! Reading a customer's allocation history to settle an allocation whose answer was lost.
//!
//! Tencent documents neither the order of `QueryCreditAllocationHistory` nor a page-size limit,
//! so [`scan`] assumes neither. It asks for pages of [`PAGE_SIZE`] and learns from page 1 what
//! it got: fewer entries than asked while `Total` says there are more means the pages are
//! capped at that size. It learns the order from the entries' `AllocatedTime` (page 1's first
//! and last entry, or page 1 against the last page when page 1 is all one second). Then it reads
//! every page that can hold an entry newer than the cutoff (the allocation's send time minus
//! `credit.history_margin_ms`): newest-first from page 2 on until a page ends before the cutoff;
//! oldest-first from the last page back until a page starts before it, and again over the tail
//! if `Total` grew meanwhile. When the order cannot be told it reads every page. A history longer
//! than `credit.history_max_pages` pages is never taken as "not there": the outcome stays unknown.
//!
//! Times are read as UTC. Tencent writes them in UTC or in Beijing time (UTC+8); either way an
//! entry then looks as new or newer than it is, which only makes the scan read further.
//!
//! [`HistorySearch`] coalesces: one scan per customer at a time in this process (others wait for
//! it and reuse its snapshot), and with Redis one per customer across the fleet (a lease,
//! `PREFIX credit-history:UIN`; a replica that does not hold it answers "busy, retry shortly").

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::marker;
use crate::clock::SharedClock;
use crate::metrics::Metrics;
use crate::redis_link::RedisLink;
use crate::tencent::actions::{AllocationRecord, QueryCreditAllocationHistory};
use crate::tencent::{CallContext, CallError, TencentClient};

/// Entries asked for per page (Tencent may give fewer: that is detected).
pub const PAGE_SIZE: u64 = 100;
/// A snapshot younger than this answers "not there yet" without a new scan.
const FRESH_MS: u64 = 1_000;
/// Snapshots unused for this long are dropped by [`HistorySearch::prune`].
const KEEP_MS: u64 = 60_000;

/// One allocation, as read from the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `AllocatedTime` as Unix seconds, read as UTC; `None` when unreadable.
    pub time_s: Option<i64>,
    /// `Credit`: the increment, in cents.
    pub cents: Option<i64>,
    /// `AllocatedCredit`: the customer's total credit after it.
    pub total_credit: Option<f64>,
    /// `ClientCreditAfter`: the customer's available credit after it (Tencent may omit it).
    pub remaining_credit: Option<f64>,
    pub remark: String,
    /// The `RequestId` of the query that returned it.
    pub request_id: String,
}

impl Entry {
    pub fn from_record(record: AllocationRecord, request_id: &str) -> Self {
        Self {
            time_s: parse_time(&record.allocated_time),
            cents: record
                .credit
                .filter(|c| c.is_finite())
                .map(|c| (c * 100.0).round() as i64),
            total_credit: record.allocated_credit,
            remaining_credit: record.client_credit_after,
            remark: record.remark,
            request_id: request_id.to_owned(),
        }
    }
}

/// One answer of the history query.
#[derive(Debug, Clone)]
pub struct Page {
    pub total: u64,
    pub entries: Vec<Entry>,
}

/// What a scan saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Scan {
    /// Every entry newer than the cutoff is among these (with some older ones).
    Complete(Vec<Entry>),
    /// The scan could not see everything newer than the cutoff.
    Incomplete(String),
}

/// `YYYY-MM-DD HH:MM:SS` as Unix seconds, read as UTC.
pub fn parse_time(text: &str) -> Option<i64> {
    let b = text.trim().as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = std::str::from_utf8(&b[r]).ok()?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    NewestFirst,
    OldestFirst,
    /// Times unreadable, or all the same second: read everything.
    Unknown,
}

/// The order page 1's own entries show: `None` when they are all one second (undecided),
/// `Unknown` when a time is unreadable or the page is not sorted either way.
fn order_within(entries: &[Entry]) -> Option<Order> {
    let Some(times) = entries
        .iter()
        .map(|e| e.time_s)
        .collect::<Option<Vec<i64>>>()
    else {
        return Some(Order::Unknown);
    };
    let newest_first = times.windows(2).all(|w| w[0] >= w[1]);
    let oldest_first = times.windows(2).all(|w| w[0] <= w[1]);
    match (newest_first, oldest_first) {
        (true, true) => None,
        (true, false) => Some(Order::NewestFirst),
        (false, true) => Some(Order::OldestFirst),
        (false, false) => Some(Order::Unknown),
    }
}

fn older_than(entry: Option<&Entry>, cutoff_s: i64) -> bool {
    entry.and_then(|e| e.time_s).is_some_and(|t| t < cutoff_s)
}

/// Reads every history entry newer than `cutoff_s` (Unix seconds) through `fetch(page, size)`,
/// fetching at most `max_pages` pages. See the module docs for how.
pub async fn scan<F, Fut>(mut fetch: F, cutoff_s: i64, max_pages: u32) -> Result<Scan, CallError>
where
    F: FnMut(u64, u64) -> Fut,
    Fut: Future<Output = Result<Page, CallError>>,
{
    let mut fetched = 1u32;
    let first = fetch(1, PAGE_SIZE).await?;
    let n = first.entries.len() as u64;
    let mut total = first.total.max(n);
    if n == 0 {
        return Ok(if total == 0 {
            Scan::Complete(Vec::new())
        } else {
            Scan::Incomplete(format!("page 1 is empty although Total is {total}"))
        });
    }
    // Fewer than asked while more exist: Tencent caps pages at `n`.
    let size = if n < PAGE_SIZE && n < total {
        n
    } else {
        n.max(PAGE_SIZE)
    };
    let mut pages = total.div_ceil(size);
    let mut seen: Vec<Entry> = first.entries;
    if pages <= 1 {
        return Ok(Scan::Complete(seen));
    }
    let too_long = |pages: u64| {
        Scan::Incomplete(format!(
            "the history has {pages} pages of {size}; more than credit.history_max_pages ({max_pages}) would be read"
        ))
    };
    let mut next = |page: u64, fetched: &mut u32| {
        *fetched += 1;
        fetch(page, size)
    };
    // A page with fewer entries than its own Total places there is not the whole page.
    let short = |page: u64, answer: &Page| -> Option<Scan> {
        let expected = size.min(answer.total.saturating_sub((page - 1).saturating_mul(size)));
        ((answer.entries.len() as u64) < expected).then(|| {
            Scan::Incomplete(format!(
                "page {page} holds {} entries where Total {} places {expected}",
                answer.entries.len(),
                answer.total
            ))
        })
    };
    let mut order = order_within(&seen);
    let mut last_page: Option<Page> = None;
    if order.is_none() {
        if fetched >= max_pages {
            return Ok(too_long(pages));
        }
        let last = next(pages, &mut fetched).await?;
        if let Some(incomplete) = short(pages, &last) {
            return Ok(incomplete);
        }
        order = Some(
            match (seen[0].time_s, last.entries.first().and_then(|e| e.time_s)) {
                (Some(a), Some(b)) if a > b => Order::NewestFirst,
                (Some(a), Some(b)) if a < b => Order::OldestFirst,
                _ => Order::Unknown,
            },
        );
        last_page = Some(last);
    }
    match order.unwrap_or(Order::Unknown) {
        Order::NewestFirst => {
            // New allocations arriving meanwhile push entries to later pages: read again, never
            // missed.
            let mut page = 2;
            while page <= pages && !older_than(seen.last(), cutoff_s) {
                if fetched >= max_pages {
                    return Ok(too_long(pages));
                }
                let answer = next(page, &mut fetched).await?;
                if answer.entries.is_empty() {
                    // Fewer entries than Total promised: something is not as it says.
                    return Ok(Scan::Incomplete(format!(
                        "page {page} of {pages} is empty although Total is {total}"
                    )));
                }
                if let Some(incomplete) = short(page, &answer) {
                    return Ok(incomplete);
                }
                total = total.max(answer.total);
                pages = total.div_ceil(size);
                seen.extend(answer.entries);
                page += 1;
            }
        }
        Order::OldestFirst => {
            // The newest entries are on the last pages. Positions from the start never move, so
            // a page read stays read; a Total grown meanwhile adds pages at the end: read them.
            let mut back = pages;
            let mut stop_back = false;
            let mut tail: Vec<u64> = Vec::new();
            if let Some(last) = last_page.take() {
                stop_back = older_than(last.entries.first(), cutoff_s);
                if last.total > total {
                    let grown = last.total.div_ceil(size);
                    if grown - total / size > u64::from(max_pages.saturating_sub(fetched)) {
                        return Ok(too_long(grown));
                    }
                    tail.extend((total / size + 1)..=grown);
                    total = last.total;
                }
                seen.extend(last.entries);
                back = pages - 1;
            }
            loop {
                let (page, going_back) = match tail.pop() {
                    Some(page) => (page, false),
                    None if !stop_back && back >= 2 => (back, true),
                    None => break,
                };
                if fetched >= max_pages {
                    return Ok(too_long(pages));
                }
                let answer = next(page, &mut fetched).await?;
                if let Some(incomplete) = short(page, &answer) {
                    return Ok(incomplete);
                }
                if answer.total > total {
                    // From the page holding position `total` (0-based) to the new end.
                    pages = answer.total.div_ceil(size);
                    if pages - total / size > u64::from(max_pages.saturating_sub(fetched)) {
                        return Ok(too_long(pages));
                    }
                    tail.extend((total / size + 1)..=pages);
                    total = answer.total;
                }
                if going_back {
                    stop_back = older_than(answer.entries.first(), cutoff_s);
                    back -= 1;
                }
                seen.extend(answer.entries);
            }
        }
        Order::Unknown => {
            let mut page = 2;
            while page <= pages {
                // The last page read for the order is still the last page only if nothing was
                // added since.
                if page == pages && last_page.as_ref().is_some_and(|p| p.total == total) {
                    seen.extend(last_page.take().map(|p| p.entries).unwrap_or_default());
                    break;
                }
                if fetched >= max_pages {
                    return Ok(too_long(pages));
                }
                let answer = next(page, &mut fetched).await?;
                if let Some(incomplete) = short(page, &answer) {
                    return Ok(incomplete);
                }
                total = total.max(answer.total);
                pages = total.div_ceil(size);
                seen.extend(answer.entries);
                page += 1;
            }
        }
    }
    Ok(Scan::Complete(seen))
}

/// What a look for one allocation found.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The allocation is in the history: its marker is the remark's last word and its amount
    /// agrees.
    Found(Entry),
    /// Not in the history as of this instant (Unix ms, gateway clock): every entry newer than
    /// the cutoff was seen then.
    Absent { as_of_ms: u64 },
    /// Another replica is reading this customer's history right now.
    Busy,
    /// The history could not be read completely.
    Unreadable(String),
}

/// What the gateway needs to know of one allocation to find it.
#[derive(Debug, Clone)]
pub struct Wanted<'a> {
    pub uin: u64,
    pub marker: &'a str,
    pub cents: i64,
    /// Entries older than this (Unix seconds) cannot be it.
    pub cutoff_s: i64,
    /// From this instant on (Unix ms), "absent" settles it as not applied.
    pub conclusive_from_ms: u64,
}

/// A customer's history as last read, kept only for entries that carry a marker.
#[derive(Debug)]
struct Snapshot {
    started_ms: u64,
    cutoff_s: i64,
    marked: Vec<Entry>,
}

/// The coalescing history reader; see the module docs.
#[derive(Debug)]
pub struct HistorySearch {
    tencent: Arc<TencentClient>,
    redis: Option<Arc<RedisLink>>,
    metrics: Arc<Metrics>,
    clock: SharedClock,
    timeout: Duration,
    max_pages: u32,
    customers: parking_lot::Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<Snapshot>>>>>,
}

/// KEYS[1] lease. ARGV: token. Deletes the lease if it is still ours.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

impl HistorySearch {
    pub fn new(
        tencent: Arc<TencentClient>,
        redis: Option<Arc<RedisLink>>,
        metrics: Arc<Metrics>,
        clock: SharedClock,
        timeout: Duration,
        max_pages: u32,
    ) -> Self {
        Self {
            tencent,
            redis,
            metrics,
            clock,
            timeout,
            max_pages,
            customers: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, uin: u64) -> Arc<tokio::sync::Mutex<Option<Snapshot>>> {
        self.customers.lock().entry(uin).or_default().clone()
    }

    /// Drops snapshots nobody used for a while (called by the upkeep task).
    pub fn prune(&self) {
        let now = self.clock.now_unix_ms();
        self.customers
            .lock()
            .retain(|_, slot| match slot.try_lock() {
                Ok(snapshot) => snapshot
                    .as_ref()
                    .is_some_and(|s| now.saturating_sub(s.started_ms) < KEEP_MS),
                Err(_) => true,
            });
    }

    /// Looks for one allocation, reusing a snapshot when it can answer.
    pub async fn lookup(&self, wanted: &Wanted<'_>) -> Lookup {
        let slot = self.slot(wanted.uin);
        let mut snapshot = slot.lock().await;
        if let Some(answer) = snapshot
            .as_ref()
            .and_then(|s| self.answer_from(s, wanted, false))
        {
            self.metrics.history_scan("reused");
            return answer;
        }
        let lease = match self.lease(wanted.uin).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                self.metrics.history_scan("busy");
                return Lookup::Busy;
            }
            Err(detail) => return Lookup::Unreadable(detail),
        };
        let started_ms = self.clock.now_unix_ms();
        let scanned = scan(
            |page, size| self.fetch(wanted.uin, page, size),
            wanted.cutoff_s,
            self.max_pages,
        )
        .await;
        self.release(lease).await;
        match scanned {
            Ok(Scan::Complete(entries)) => {
                self.metrics.history_scan("complete");
                let fresh = Snapshot {
                    started_ms,
                    cutoff_s: wanted.cutoff_s,
                    marked: entries
                        .into_iter()
                        .filter(|e| marker::has_marker_syntax(&e.remark))
                        .collect(),
                };
                let answer = self
                    .answer_from(&fresh, wanted, true)
                    .unwrap_or(Lookup::Absent {
                        as_of_ms: started_ms,
                    });
                *snapshot = Some(fresh);
                answer
            }
            Ok(Scan::Incomplete(why)) => {
                self.metrics.history_scan("incomplete");
                tracing::error!(
                    uin = wanted.uin,
                    why,
                    "cannot read the whole allocation history; the outcome stays unknown"
                );
                Lookup::Unreadable(why)
            }
            Err(error) => {
                self.metrics.history_scan("failed");
                Lookup::Unreadable(error.to_string())
            }
        }
    }

    /// What `snapshot` says of `wanted`, if it can say anything (`fresh`: it was just read).
    fn answer_from(&self, snapshot: &Snapshot, wanted: &Wanted<'_>, fresh: bool) -> Option<Lookup> {
        if snapshot.cutoff_s > wanted.cutoff_s {
            return None;
        }
        let mut found = None;
        let mut doubtful = None;
        for entry in snapshot
            .marked
            .iter()
            .filter(|e| marker::ends_with(&e.remark, wanted.marker))
        {
            match entry.time_s {
                // Older than this allocation can be: an earlier use of the same key (after its
                // record expired), not this one.
                Some(t) if t < wanted.cutoff_s => continue,
                None => {
                    doubtful = Some("a history entry with this marker has an unreadable time");
                    continue;
                }
                Some(_) => {}
            }
            if entry.cents.is_none() {
                doubtful = Some("a history entry with this marker has no amount");
            } else if entry.cents == Some(wanted.cents) {
                found.get_or_insert(entry);
            } else if fresh {
                // Only the gateway can make this marker, and only for this amount: someone
                // copied it onto another allocation. Never evidence that ours was applied.
                self.metrics.marker_mismatch();
                tracing::error!(
                    uin = wanted.uin,
                    marker = wanted.marker,
                    expected_cents = wanted.cents,
                    found_cents = entry.cents,
                    "ALARM: an allocation history entry carries this allocation's marker with another amount; not taken as applied"
                );
            }
        }
        if let Some(entry) = found {
            return Some(Lookup::Found(entry.clone()));
        }
        if let Some(why) = doubtful {
            // Neither applied nor absent can be concluded: the outcome stays unknown.
            return Some(Lookup::Unreadable(why.to_owned()));
        }
        let now = self.clock.now_unix_ms();
        (fresh
            || snapshot.started_ms >= wanted.conclusive_from_ms
            || now.saturating_sub(snapshot.started_ms) < FRESH_MS)
            .then_some(Lookup::Absent {
                as_of_ms: snapshot.started_ms,
            })
    }

    async fn fetch(&self, uin: u64, page: u64, size: u64) -> Result<Page, CallError> {
        let ctx = CallContext {
            request_id: format!("reconcile-{}", uuid::Uuid::now_v7()),
            deadline: tokio::time::Instant::now() + self.timeout,
        };
        let query = QueryCreditAllocationHistory {
            client_uin: uin,
            page,
            page_size: size,
        };
        let answer = self.tencent.call(&query, &ctx).await?;
        let request_id = answer.request_id;
        Ok(Page {
            total: answer.data.total,
            entries: answer
                .data
                .history
                .into_iter()
                .map(|r| Entry::from_record(r, &request_id))
                .collect(),
        })
    }

    /// The fleet-wide lease on one customer's history: `Ok(None)` when another replica holds it.
    async fn lease(&self, uin: u64) -> Result<Option<Option<(String, String)>>, String> {
        let Some(link) = &self.redis else {
            return Ok(Some(None));
        };
        let key = link.key(&format!("credit-history:{uin}"));
        let token = uuid::Uuid::new_v4().to_string();
        // Long enough for a whole scan at the query quota; released as soon as it is done.
        let ttl_ms =
            (self.timeout.as_millis() as u64).max(1_000) * u64::from(self.max_pages.max(1));
        let (k, t) = (key.clone(), token.clone());
        let set: Option<String> = link
            .run("history_lease", |mut conn| async move {
                redis::cmd("SET")
                    .arg(&k)
                    .arg(&t)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(set.map(|_| Some((key, token))))
    }

    async fn release(&self, lease: Option<(String, String)>) {
        let (Some(link), Some((key, token))) = (&self.redis, lease) else {
            return;
        };
        let released = link
            .run("history_release", |mut conn| async move {
                Script::new(RELEASE)
                    .key(&key)
                    .arg(&token)
                    .invoke_async::<u8>(&mut conn)
                    .await
            })
            .await;
        if let Err(error) = released {
            tracing::warn!(%error, "cannot release a history lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests;
