//! `QueryCustomersCredit`: the seeded customers as Tencent lists them, with names, e-mail
//! addresses and association times, filtered and paged.

use serde::Serialize;

use super::{SandboxState, cents};
use crate::sandbox::SEEDED_CUSTOMERS;

/// One customer, in Tencent's terms (`ClientUin` an integer, times `YYYY-MM-DD HH:MM:SS`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomerRow {
    pub name: String,
    #[serde(rename = "Type")]
    pub kind: String,
    pub mobile: String,
    pub email: String,
    pub arrears: String,
    pub association_time: String,
    pub recent_expiry: Option<String>,
    pub client_uin: u64,
    pub credit: f64,
    pub remaining_credit: f64,
    pub identify_type: String,
    pub remark: String,
    pub force: i64,
}

/// The seeded customer at `index`: customer 00 is the README's 800000232018.
pub(super) fn profile(index: usize) -> (String, String, String) {
    let name = format!("Customer {index:02}");
    let email = format!("customer{index:02}@example.com");
    // Associated one a day from 2026-01-01, in seeding order.
    let day = index as u32;
    let association = format!("2026-{:02}-{:02} 08:00:00", 1 + day / 28, 1 + day % 28);
    (name, email, association)
}

impl SandboxState {
    /// One page of the customers matching `filter` (`(FilterType, Filter)`: a substring, or the
    /// exact UIN), by association time; and how many match.
    pub fn customers_page(
        &self,
        filter: Option<(&str, &str)>,
        ascending: bool,
        page: usize,
        size: usize,
    ) -> (usize, Vec<CustomerRow>) {
        let inner = self.lock();
        let mut rows: Vec<CustomerRow> = SEEDED_CUSTOMERS
            .iter()
            .enumerate()
            .map(|(index, uin)| {
                let (name, email, association_time) = profile(index);
                let account = inner.customers.get(uin).copied().unwrap_or_default();
                CustomerRow {
                    name,
                    kind: "personal".into(),
                    mobile: String::new(),
                    email,
                    arrears: "0".into(),
                    association_time,
                    recent_expiry: None,
                    client_uin: *uin,
                    credit: cents(account.total),
                    remaining_credit: cents(account.remaining),
                    identify_type: "0".into(),
                    remark: String::new(),
                    force: 0,
                }
            })
            .chain(inner.joined.iter().cloned().map(|j| {
                let account = inner.customers.get(&j.uin).copied().unwrap_or_default();
                CustomerRow {
                    name: String::new(),
                    kind: "personal".into(),
                    mobile: String::new(),
                    email: j.email,
                    arrears: "0".into(),
                    association_time: super::timestamp(j.bound_ms),
                    recent_expiry: None,
                    client_uin: j.uin,
                    credit: cents(account.total),
                    remaining_credit: cents(account.remaining),
                    identify_type: "0".into(),
                    remark: String::new(),
                    force: 0,
                }
            }))
            .filter(|row| match filter {
                None => true,
                Some(("ClientUin", uin)) => row.client_uin.to_string() == uin,
                Some(("Name", name)) => row.name.contains(name),
                Some(("Email", email)) => row.email.contains(email),
                Some(("Remark", remark)) => row.remark.contains(remark),
                Some(_) => false,
            })
            .collect();
        rows.sort_by(|a, b| a.association_time.cmp(&b.association_time));
        if !ascending {
            rows.reverse();
        }
        let total = rows.len();
        let page = rows
            .into_iter()
            .skip((page - 1).saturating_mul(size))
            .take(size)
            .collect();
        (total, page)
    }
}
