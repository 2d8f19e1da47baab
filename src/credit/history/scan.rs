//! The scan of one customer's allocation history: learn the page size and the order from page 1,
//! then read every page that can hold an entry newer than the cutoff (see the parent module).

use std::future::Future;

use super::PAGE_SIZE;
use crate::tencent::CallError;
use crate::tencent::actions::HistoryItem;

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
    pub fn from_record(record: HistoryItem, request_id: &str) -> Self {
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

/// A page with fewer entries than its own Total places there is not the whole page.
fn short(page: u64, size: u64, answer: &Page) -> Option<Scan> {
    let expected = size.min(answer.total.saturating_sub((page - 1).saturating_mul(size)));
    ((answer.entries.len() as u64) < expected).then(|| {
        Scan::Incomplete(format!(
            "page {page} holds {} entries where Total {} places {expected}",
            answer.entries.len(),
            answer.total
        ))
    })
}

/// Takes page `page`, read going forward: `Incomplete` when it is short; otherwise its entries,
/// and the page count its `Total` now implies (new allocations may have grown it).
fn forward(
    page: u64,
    answer: Page,
    size: u64,
    total: &mut u64,
    pages: &mut u64,
    seen: &mut Vec<Entry>,
) -> Option<Scan> {
    if let Some(incomplete) = short(page, size, &answer) {
        return Some(incomplete);
    }
    *total = (*total).max(answer.total);
    *pages = total.div_ceil(size);
    seen.extend(answer.entries);
    None
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
    let mut order = order_within(&seen);
    let mut last_page: Option<Page> = None;
    if order.is_none() {
        if fetched >= max_pages {
            return Ok(too_long(pages));
        }
        let last = next(pages, &mut fetched).await?;
        if let Some(incomplete) = short(pages, size, &last) {
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
                if let Some(incomplete) =
                    forward(page, answer, size, &mut total, &mut pages, &mut seen)
                {
                    return Ok(incomplete);
                }
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
                if let Some(incomplete) = short(page, size, &answer) {
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
                if let Some(incomplete) =
                    forward(page, answer, size, &mut total, &mut pages, &mut seen)
                {
                    return Ok(incomplete);
                }
                page += 1;
            }
        }
    }
    Ok(Scan::Complete(seen))
}
