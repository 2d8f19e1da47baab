//! What the simulator reports: the requests it saw, per-action statistics, and the ledger.

use std::collections::BTreeMap;

use serde::Serialize;

/// The `X-TC-*` headers of a received request (never its token or signature).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenRequest {
    pub action: String,
    pub trace_id: Option<String>,
    pub request_client: Option<String>,
    pub language: Option<String>,
    pub region: Option<String>,
    pub version: Option<String>,
}

/// What the simulator has seen, per action.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Every HTTP request to the API route, valid or not.
    pub received: u64,
    pub actions: BTreeMap<String, ActionStats>,
    /// Authenticated requests per key id (the first 10,000 ids).
    pub by_secret_id: BTreeMap<String, u64>,
}

impl Stats {
    pub fn action(&self, action: &str) -> ActionStats {
        self.actions.get(action).cloned().unwrap_or_default()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ActionStats {
    /// Requests naming this action.
    pub received: u64,
    /// Authenticated requests, counted against the quota of the wall-clock second they arrived in.
    pub arrivals: u64,
    /// Calls that ran (changed the ledger or sent a mail).
    pub executed: u64,
    /// Calls answered `RequestLimitExceeded`.
    pub rate_limited: u64,
    /// The most arrivals in one wall-clock second.
    pub max_per_second: u32,
    /// Arrivals per wall-clock second (Unix seconds), most recent seconds only.
    pub per_second: BTreeMap<u64, u32>,
    /// When each of the most recent admitted arrivals came (Unix ms), oldest first.
    pub admitted_ms: std::collections::VecDeque<u64>,
    /// When each of the most recent `RequestLimitExceeded` answers was given (Unix ms).
    pub refused_ms: std::collections::VecDeque<u64>,
}

/// One customer's credit, in Tencent's terms.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomerCredit {
    pub uin: u64,
    pub total_credit: f64,
    pub remaining_credit: f64,
}

/// One allocation, as `QueryCreditAllocationHistory` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryEntry {
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub allocated_time: String,
    /// The API key id that made the allocation.
    pub operator: String,
    /// The increment ("Allocated credit value" in Tencent's field docs).
    pub credit: f64,
    /// The customer's total credit after the allocation ("The allocated total credit").
    pub allocated_credit: f64,
    /// The customer's available credit after the allocation.
    pub client_credit_after: f64,
    pub remark: String,
}

/// The whole ledger, for tests and `GET /_sandbox/ledger`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    pub partner_total_credit: f64,
    pub partner_allocated_credit: f64,
    pub partner_remaining_credit: f64,
    pub customers: Vec<CustomerCredit>,
    pub history: BTreeMap<u64, Vec<HistoryEntry>>,
}
