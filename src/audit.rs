//! The audit trail: one structured record (target `audit`) per credit allocation the gateway
//! attempts, whatever its outcome. Audit records pass every log filter.

use std::time::Duration;

/// How an allocation attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Tencent applied it.
    Applied,
    /// Tencent refused it, or it could not be sent: nothing was applied.
    Rejected,
    /// It may or may not have been applied (`credit-outcome-unknown`).
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Rejected => "rejected",
            Self::Unknown => "unknown",
        }
    }
}

/// Everything the record says.
#[derive(Debug)]
pub struct AllocationAudit<'a> {
    /// The caller's namespaced id (`key:NAME`, `jwt:ISSUER#SUBJECT`).
    pub caller: &'a str,
    /// `api_key`, `jwt` or `none`.
    pub caller_kind: &'a str,
    pub uin: u64,
    pub amount: &'a str,
    pub remark: &'a str,
    pub request_id: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub outcome: Outcome,
    pub tencent_code: &'a str,
    pub tencent_request_id: &'a str,
    pub latency: Duration,
}

pub fn credit_allocation(record: &AllocationAudit<'_>) {
    tracing::info!(
        target: "audit",
        event = "credit_allocation",
        caller = record.caller,
        caller_kind = record.caller_kind,
        uin = record.uin,
        amount = record.amount,
        remark = record.remark,
        request_id = record.request_id,
        idempotency_key = record.idempotency_key.unwrap_or(""),
        outcome = record.outcome.as_str(),
        tencent_code = record.tencent_code,
        tencent_request_id = record.tencent_request_id,
        latency_ms = record.latency.as_secs_f64() * 1000.0,
        "credit allocation"
    );
}
