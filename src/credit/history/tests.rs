use super::*;
use std::cell::RefCell;

#[test]
fn times_read_as_utc() {
    assert_eq!(parse_time("1970-01-01 00:00:00"), Some(0));
    assert_eq!(parse_time("2024-02-29 12:34:56"), Some(1_709_210_096));
    assert_eq!(parse_time("2026-11-23 00:00:01"), Some(1_795_392_001));
    for bad in [
        "",
        "2024-02-29",
        "2024-13-01 00:00:00",
        "2024-02-29T12:34:56",
        "abcd-ef-gh ij:kl:mn",
    ] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

/// A history of `n` allocations one second apart from `t0`, the one at `mark_at` carrying
/// the marker, served in `order` with pages capped at `cap`. Counts the pages it serves.
struct Fake {
    entries: Vec<Entry>,
    newest_first: bool,
    cap: u64,
    served: RefCell<u32>,
}

const T0: i64 = 1_700_000_000;
const MARK: &str = "[pgw:0123456789abcdef0123456789abcdef]";

impl Fake {
    fn new(n: usize, mark_at: Option<usize>, newest_first: bool, cap: u64) -> Self {
        let entries = (0..n)
            .map(|i| Entry {
                time_s: Some(T0 + i as i64),
                cents: Some(100),
                total_credit: Some(i as f64),
                remaining_credit: Some(i as f64),
                remark: if Some(i) == mark_at {
                    format!("x {MARK}")
                } else {
                    format!("entry {i}")
                },
                request_id: String::new(),
            })
            .collect();
        Self {
            entries,
            newest_first,
            cap,
            served: RefCell::new(0),
        }
    }

    fn page(&self, page: u64, size: u64) -> Page {
        *self.served.borrow_mut() += 1;
        let size = size.min(self.cap) as usize;
        let skip = (page as usize - 1) * size;
        let ordered: Vec<Entry> = if self.newest_first {
            self.entries.iter().rev().cloned().collect()
        } else {
            self.entries.clone()
        };
        Page {
            total: self.entries.len() as u64,
            entries: ordered.into_iter().skip(skip).take(size).collect(),
        }
    }
}

fn run(fake: &Fake, cutoff_s: i64, max_pages: u32) -> Scan {
    let fut = scan(
        |p, s| {
            let page = fake.page(p, s);
            async move { Ok(page) }
        },
        cutoff_s,
        max_pages,
    );
    futures_util::FutureExt::now_or_never(fut).unwrap().unwrap()
}

/// `run`, with `tamper` changing each page as it is served.
fn run_tampered(fake: &Fake, tamper: impl Fn(u64, &mut Page), max_pages: u32) -> Scan {
    let fut = scan(
        |p, s| {
            let mut page = fake.page(p, s);
            tamper(p, &mut page);
            async move { Ok(page) }
        },
        0,
        max_pages,
    );
    futures_util::FutureExt::now_or_never(fut).unwrap().unwrap()
}

fn has_mark(scan: &Scan) -> bool {
    matches!(scan, Scan::Complete(e) if e.iter().any(|e| marker::ends_with(&e.remark, MARK)))
}

#[test]
fn the_newest_entry_is_found_whatever_the_order_and_page_cap() {
    // 150 older entries, then ours: the newest.
    for newest_first in [true, false] {
        for cap in [100, 20, 7, 1000] {
            let fake = Fake::new(151, Some(150), newest_first, cap);
            let scan = run(&fake, T0 + 140, 1000);
            assert!(
                has_mark(&scan),
                "order newest_first={newest_first} cap={cap}: {scan:?}"
            );
        }
    }
}

#[test]
fn the_scan_reads_only_what_is_newer_than_the_cutoff() {
    // 2,000 entries, 20 per page, cutoff near the newest: a few pages, not 100.
    for newest_first in [true, false] {
        let fake = Fake::new(2_000, Some(1_990), newest_first, 20);
        let scan = run(&fake, T0 + 1_950, 50);
        assert!(has_mark(&scan));
        assert!(
            *fake.served.borrow() <= 6,
            "served {}",
            fake.served.borrow()
        );
    }
}

#[test]
fn every_entry_newer_than_the_cutoff_is_seen() {
    for newest_first in [true, false] {
        for cap in [100, 20, 3] {
            for cutoff in [0, 37, 99, 149] {
                let fake = Fake::new(150, None, newest_first, cap);
                let Scan::Complete(seen) = run(&fake, T0 + cutoff, 1000) else {
                    panic!("incomplete");
                };
                for i in cutoff..150 {
                    assert!(
                        seen.iter().any(|e| e.time_s == Some(T0 + i)),
                        "missed entry {i} (newest_first={newest_first} cap={cap} cutoff={cutoff})"
                    );
                }
            }
        }
    }
}

#[test]
fn a_history_longer_than_the_bound_is_never_taken_as_complete() {
    let fake = Fake::new(500, None, true, 20);
    assert!(matches!(run(&fake, 0, 5), Scan::Incomplete(_)));
    // Unreadable times: every page must be read, so the bound applies too.
    let mut fake = Fake::new(500, None, false, 20);
    for e in &mut fake.entries {
        e.time_s = None;
    }
    assert!(matches!(run(&fake, T0 + 499, 5), Scan::Incomplete(_)));
    assert!(matches!(run(&fake, T0 + 499, 100), Scan::Complete(ref e) if e.len() == 500));
}

#[test]
fn an_empty_page_where_total_promised_entries_is_never_complete() {
    let fake = Fake::new(150, None, true, 20);
    let scan = run_tampered(
        &fake,
        |p, page| {
            if p == 3 {
                page.entries.clear();
            }
        },
        100,
    );
    assert!(matches!(scan, Scan::Incomplete(_)), "{scan:?}");
}

#[test]
fn an_unsorted_history_is_read_whole() {
    // Sorted nowhere: page 1 descends overall but not entry by entry.
    let mut fake = Fake::new(150, Some(2), true, 20);
    fake.entries.swap(3, 140);
    fake.entries.swap(100, 148);
    assert!(has_mark(&run(&fake, T0 + 140, 1000)));
    assert_eq!(*fake.served.borrow(), 8, "every page");
}

#[test]
fn a_short_or_empty_page_in_any_order_is_never_complete() {
    for newest_first in [true, false] {
        for broken in [2, 3, 8] {
            let fake = Fake::new(150, None, newest_first, 20);
            let scan = run_tampered(
                &fake,
                |p, page| {
                    if p == broken {
                        page.entries.truncate(page.entries.len() / 2);
                    }
                },
                100,
            );
            assert!(
                matches!(scan, Scan::Incomplete(_)),
                "newest_first={newest_first} page {broken}: {scan:?}"
            );
        }
    }
}

#[test]
fn a_huge_total_is_refused_not_enumerated() {
    let fut = scan(
        |p, _| async move {
            Ok(Page {
                total: if p == 1 { 3 } else { u64::MAX },
                entries: (0..1)
                    .map(|i| Entry {
                        time_s: Some(T0 + i + if p == 1 { 0 } else { 10 }),
                        cents: None,
                        total_credit: None,
                        remaining_credit: None,
                        remark: String::new(),
                        request_id: String::new(),
                    })
                    .collect(),
            })
        },
        0,
        10,
    );
    let scan = futures_util::FutureExt::now_or_never(fut).unwrap().unwrap();
    assert!(matches!(scan, Scan::Incomplete(_)), "{scan:?}");
}

#[test]
fn entries_all_in_one_second_are_all_read() {
    let mut fake = Fake::new(150, Some(3), false, 20);
    for e in &mut fake.entries {
        e.time_s = Some(T0);
    }
    assert!(has_mark(&run(&fake, T0, 1000)));
}
