//! The name, type and help text of every metric; [`CATALOG`] lists them all.

use metrics::Unit;

pub const HTTP_SERVER_DURATION: &str = "http_server_request_duration_seconds";
pub const HTTP_SERVER_ACTIVE: &str = "http_server_active_requests";
pub const HTTP_CLIENT_DURATION: &str = "http_client_request_duration_seconds";
pub const QUOTA_WAIT: &str = "gateway_quota_wait_seconds";
pub const QUOTA_REJECTIONS: &str = "gateway_quota_rejections_total";
pub const UPSTREAM_RETRIES: &str = "gateway_upstream_retries_total";
pub const BUILD_INFO: &str = "gateway_build_info";
pub const IDEMPOTENCY: &str = "gateway_idempotency_requests_total";
pub const RECONCILIATIONS: &str = "gateway_credit_reconciliations_total";
pub const COOLDOWNS: &str = "gateway_invitation_cooldowns_total";
pub const HISTORY_SCANS: &str = "gateway_credit_history_scans_total";
pub const CREDIT_UNSETTLED: &str = "gateway_credit_unsettled";
pub const CREDIT_UNSETTLED_OLDEST: &str = "gateway_credit_unsettled_oldest_timestamp_seconds";
pub const MARKER_MISMATCHES: &str = "gateway_credit_marker_mismatches_total";
pub const STORE_RECORDS: &str = "gateway_idempotency_records";
pub const STORE_CAPACITY: &str = "gateway_idempotency_capacity";
pub const STORE_EVICTIONS: &str = "gateway_idempotency_evictions_total";
pub const STORE_UP: &str = "gateway_store_up";
pub const STORE_ERRORS: &str = "gateway_store_errors_total";
pub const QUOTA_FALLBACK: &str = "gateway_quota_fallback_total";
pub const QUOTA_CONFIGURED: &str = "gateway_quota_configured";
pub const QUOTA_EFFECTIVE: &str = "gateway_quota_effective";
pub const QUOTA_GUARD: &str = "gateway_quota_guard_seconds";
pub const QUOTA_LATE: &str = "gateway_quota_late_departures_total";
pub const QUOTA_SHARE: &str = "gateway_quota_share";
pub const FLEET_REPLICAS: &str = "gateway_fleet_replicas";
pub const ACTION_DENIED: &str = "gateway_upstream_action_denied";
pub const JWKS_FAILURES: &str = "gateway_jwks_refresh_failures_total";
pub const JWKS_AGE: &str = "gateway_jwks_age_seconds";
pub const CREDENTIAL_SOURCE: &str = "gateway_credential_source";
/// The values of `gateway_credential_source`'s `source` label (`credentials::Source::label`).
pub static CREDENTIAL_SOURCES: [&str; 4] = ["env", "file", "cvm_role", "tke_oidc"];
pub const CREDENTIAL_EXPIRY: &str = "gateway_credential_expiry_timestamp_seconds";
pub const CREDENTIAL_FAILURES: &str = "gateway_credential_refresh_failures_total";
pub const CONNECTIONS_OPEN: &str = "gateway_connections_open";
pub const CONNECTIONS_REJECTED: &str = "gateway_connections_rejected_total";
pub const CONNECTIONS_TIMED_OUT: &str = "gateway_connections_timed_out_total";
pub const TRACE_SPANS_DROPPED: &str = "gateway_trace_spans_dropped_total";
pub const TRACE_SPANS_FAILED: &str = "gateway_trace_spans_export_failed_total";

/// Every label name a metric may carry (their values come from closed sets); recording a label not
/// listed here fails in debug builds, so dashboards and alerts can be checked against this list.
pub const LABELS: &[&str] = &[
    "http_route",
    "http_request_method",
    "http_response_status_code",
    "tencent_action",
    "tencent_code",
    "outcome",
    "reason",
    "route",
    "result",
    "source",
    "operation",
    "limit",
    "version",
];

/// A metric's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A metric as `/metrics` describes it (`# TYPE`, `# HELP`).
#[derive(Debug)]
pub struct Described {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub help: &'static str,
}

impl Described {
    const fn counter(name: &'static str, unit: Option<Unit>, help: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Counter,
            unit,
            help,
        }
    }
    const fn gauge(name: &'static str, unit: Option<Unit>, help: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Gauge,
            unit,
            help,
        }
    }
    const fn histogram(name: &'static str, unit: Option<Unit>, help: &'static str) -> Self {
        Self {
            name,
            kind: Kind::Histogram,
            unit,
            help,
        }
    }
}

/// Every metric the gateway registers, with its type and help text: `describe` registers these,
/// and the README's metric table lists exactly these names (`catalog_matches_the_readme`).
pub const CATALOG: &[Described] = &[
    Described::histogram(
        HTTP_SERVER_DURATION,
        Some(Unit::Seconds),
        "Duration of HTTP requests served by the gateway.",
    ),
    Described::gauge(
        HTTP_SERVER_ACTIVE,
        None,
        "HTTP requests being served right now.",
    ),
    Described::histogram(
        HTTP_CLIENT_DURATION,
        Some(Unit::Seconds),
        "Duration of each call attempt to Tencent Cloud.",
    ),
    Described::histogram(
        QUOTA_WAIT,
        Some(Unit::Seconds),
        "Time admitted calls waited for a quota slot.",
    ),
    Described::counter(
        QUOTA_REJECTIONS,
        None,
        "Calls refused because the next quota slot was beyond the wait budget.",
    ),
    Described::counter(
        UPSTREAM_RETRIES,
        None,
        "Upstream calls sent again after a failure known not to have executed.",
    ),
    Described::gauge(
        BUILD_INFO,
        None,
        "Always 1; the version label says which build runs.",
    ),
    Described::counter(
        IDEMPOTENCY,
        None,
        "Requests carrying an Idempotency-Key, by route and what the key held.",
    ),
    Described::counter(
        RECONCILIATIONS,
        None,
        "Allocations of unknown outcome settled from the allocation history, by result.",
    ),
    Described::counter(
        COOLDOWNS,
        None,
        "Invitations refused during the cooldown, by who refused them.",
    ),
    Described::counter(
        HISTORY_SCANS,
        None,
        "Searches of a customer's allocation history, by result.",
    ),
    Described::gauge(
        CREDIT_UNSETTLED,
        None,
        "Allocations of unknown outcome the resolver's last pass found unsettled (0 on replicas not running it).",
    ),
    Described::gauge(
        CREDIT_UNSETTLED_OLDEST,
        Some(Unit::Seconds),
        "When the oldest unsettled allocation was sent, in Unix time (0 when none, or on replicas not running the resolver).",
    ),
    Described::counter(
        MARKER_MISMATCHES,
        None,
        "History entries carrying an allocation's marker with another amount (a copied marker): alert on any.",
    ),
    Described::gauge(
        STORE_RECORDS,
        None,
        "Memory store: idempotency records held.",
    ),
    Described::gauge(
        STORE_CAPACITY,
        None,
        "Memory store: the most records it holds (idempotency.max_entries).",
    ),
    Described::counter(
        STORE_EVICTIONS,
        None,
        "Completed invitation records dropped to make room.",
    ),
    Described::gauge(
        STORE_UP,
        None,
        "1 while the shared store answers (always 1 with the memory store), 0 otherwise.",
    ),
    Described::counter(
        STORE_ERRORS,
        None,
        "Redis commands that failed or timed out, by operation.",
    ),
    Described::counter(
        QUOTA_FALLBACK,
        None,
        "Quota decisions taken by the local fallback limiter while Redis was unreachable.",
    ),
    Described::gauge(
        QUOTA_CONFIGURED,
        None,
        "Each action's quota as configured, in calls per second.",
    ),
    Described::gauge(
        QUOTA_EFFECTIVE,
        None,
        "Each action's quota as the gateway uses it: lower than configured after Tencent's refusals showed a lower one.",
    ),
    Described::gauge(
        QUOTA_GUARD,
        Some(Unit::Seconds),
        "How much longer than one second each action's quota window is: departure slack plus the path's learned variation.",
    ),
    Described::counter(
        QUOTA_LATE,
        None,
        "Slots given up because the call could not leave within the departure slack.",
    ),
    Described::gauge(
        QUOTA_SHARE,
        None,
        "With Redis: calls per second this replica may forward on its own while cut off from Redis.",
    ),
    Described::gauge(
        FLEET_REPLICAS,
        None,
        "With Redis: live replicas at this replica's last heartbeat.",
    ),
    Described::gauge(
        ACTION_DENIED,
        None,
        "1 while Tencent refuses the action for a permission missing from the CAM policy.",
    ),
    Described::counter(JWKS_FAILURES, None, "JWKS refreshes that failed."),
    Described::gauge(JWKS_AGE, Some(Unit::Seconds), "Age of the JWKS in use."),
    Described::gauge(
        CREDENTIAL_SOURCE,
        None,
        "1 for the source the credentials in use came from.",
    ),
    Described::gauge(
        CREDENTIAL_EXPIRY,
        Some(Unit::Seconds),
        "When the credentials in use expire (Unix time); 0: they do not.",
    ),
    Described::counter(
        CREDENTIAL_FAILURES,
        None,
        "Reads of the credentials' source that failed (the current ones stay in use).",
    ),
    Described::gauge(CONNECTIONS_OPEN, None, "Client connections open now."),
    Described::counter(
        CONNECTIONS_REJECTED,
        None,
        "Client connections over server.max_connections, closed at once.",
    ),
    Described::counter(
        CONNECTIONS_TIMED_OUT,
        None,
        "Client connections closed because the request head or the idle time took too long.",
    ),
    Described::counter(
        TRACE_SPANS_DROPPED,
        None,
        "Spans dropped because the trace export queue was full (OTEL_BSP_MAX_QUEUE_SIZE).",
    ),
    Described::counter(
        TRACE_SPANS_FAILED,
        None,
        "Spans lost because their export to the OTLP collector failed or timed out.",
    ),
];
