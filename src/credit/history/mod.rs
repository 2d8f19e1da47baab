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
use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::{Services, marker};
use crate::tencent::actions::QueryCreditAllocationHistory;
use crate::tencent::{CallContext, CallError};

mod scan;

pub use scan::{Entry, Page, Scan, parse_time, scan};

/// Entries asked for per page (Tencent may give fewer: that is detected).
pub const PAGE_SIZE: u64 = 100;
/// A snapshot younger than this answers "not there yet" without a new scan.
const FRESH_MS: u64 = 1_000;
/// Snapshots unused for this long are dropped by [`HistorySearch::prune`].
const KEEP_MS: u64 = 60_000;

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
    services: Services,
    timeout: Duration,
    max_pages: u32,
    customers: parking_lot::Mutex<HashMap<u64, Arc<tokio::sync::Mutex<Option<Snapshot>>>>>,
}

/// KEYS[1] lease. ARGV: token, ms. Extends the lease if it is still ours.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#;

/// KEYS[1] lease. ARGV: token. Deletes the lease if it is still ours.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

impl HistorySearch {
    pub fn new(services: Services, timeout: Duration, max_pages: u32) -> Self {
        Self {
            services,
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
        let now = self.services.clock.now_unix_ms();
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
            self.services.metrics.history_scan("reused");
            return answer;
        }
        let lease = match self.lease(wanted.uin).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                self.services.metrics.history_scan("busy");
                return Lookup::Busy;
            }
            Err(detail) => return self.unreadable(wanted.uin, "failed", detail),
        };
        let started_ms = self.services.clock.now_unix_ms();
        let scanned = scan(
            |page, size| {
                let lease = &lease;
                async move {
                    // Held one page at a time: a replica that dies mid-scan holds it no longer.
                    self.renew(lease).await;
                    self.fetch(wanted.uin, page, size).await
                }
            },
            wanted.cutoff_s,
            self.max_pages,
        )
        .await;
        self.release(lease).await;
        match scanned {
            Ok(Scan::Complete(entries)) => {
                self.services.metrics.history_scan("complete");
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
            Ok(Scan::Incomplete(why)) => self.unreadable(wanted.uin, "incomplete", why),
            Err(error) => self.unreadable(wanted.uin, "failed", error.to_string()),
        }
    }

    /// A history that could not be read whole (`incomplete`: longer than allowed or not as its
    /// `Total` says; `failed`: a page, or with Redis the fleet's lease on it, could not be had):
    /// the outcome stays unknown.
    fn unreadable(&self, uin: u64, result: &'static str, why: String) -> Lookup {
        self.services.metrics.history_scan(result);
        if result == "incomplete" {
            tracing::error!(
                uin,
                why,
                "cannot read the whole allocation history; the outcome stays unknown"
            );
        } else {
            tracing::warn!(
                uin,
                why,
                "cannot read the allocation history; the outcome stays unknown"
            );
        }
        Lookup::Unreadable(why)
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
                self.services.metrics.marker_mismatch();
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
            // Neither applied nor absent can be concluded: the outcome stays unknown. Said once,
            // when the snapshot is read, not on every lookup it answers.
            if fresh {
                tracing::warn!(
                    uin = wanted.uin,
                    marker = wanted.marker,
                    why,
                    "an allocation history entry carries this allocation's marker but cannot be read whole; the outcome stays unknown"
                );
            }
            return Some(Lookup::Unreadable(why.to_owned()));
        }
        let now = self.services.clock.now_unix_ms();
        (fresh
            || snapshot.started_ms >= wanted.conclusive_from_ms
            || now.saturating_sub(snapshot.started_ms) < FRESH_MS)
            .then_some(Lookup::Absent {
                as_of_ms: snapshot.started_ms,
            })
    }

    async fn fetch(&self, uin: u64, page: u64, size: u64) -> Result<Page, CallError> {
        let ctx = CallContext::new(
            format!("reconcile-{}", uuid::Uuid::now_v7()),
            tokio::time::Instant::now() + self.timeout,
        );
        let query = QueryCreditAllocationHistory {
            client_uin: uin,
            page,
            page_size: size,
        };
        let answer = self.services.tencent.call(&query, &ctx).await?;
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
        let Some(link) = &self.services.redis else {
            return Ok(Some(None));
        };
        let key = link.key(&format!("credit-history:{uin}"));
        let token = uuid::Uuid::new_v4().to_string();
        let ttl_ms = self.lease_ms();
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

    /// How long the lease lasts unless renewed: two pages' time (a page waits for its quota slot
    /// and its answer within `timeout`). Renewed before each page, released at the end: a replica
    /// killed mid-scan blocks the customer's settling for this long, not for a whole scan's.
    fn lease_ms(&self) -> u64 {
        (self.timeout.as_millis() as u64).max(1_000) * 2
    }

    /// Extends the lease for the next page, if this scan still holds it. A lease lost meanwhile
    /// (this replica stalled past it) is not fought for: the lease saves quota, a second scanner
    /// is only a waste, never a risk (the scan only reads).
    async fn renew(&self, lease: &Option<(String, String)>) {
        let (Some(link), Some((key, token))) = (&self.services.redis, lease) else {
            return;
        };
        let (key, token, ttl_ms) = (key.clone(), token.clone(), self.lease_ms());
        let renewed = link
            .run("history_lease", |mut conn| async move {
                Script::new(RENEW)
                    .key(&key)
                    .arg(&token)
                    .arg(ttl_ms)
                    .invoke_async::<u8>(&mut conn)
                    .await
            })
            .await;
        if let Err(error) = renewed {
            tracing::warn!(%error, "cannot renew a history lease; it expires by itself");
        }
    }

    async fn release(&self, lease: Option<(String, String)>) {
        let (Some(link), Some((key, token))) = (&self.services.redis, lease) else {
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
