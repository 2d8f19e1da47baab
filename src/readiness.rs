//! Readiness: the checks `/readyz` reports, shared by the parts of the gateway that can fail them.
//!
//! Missing credentials are not a readiness state: the gateway refuses to start without them.
//! Credentials that expired and could not be refreshed are: the replica is unready, with the
//! reason.
//!
//! Readiness means "can serve". Tencent rejecting the credentials themselves (a wrong or expired
//! key: `AuthFailure.SignatureFailure`, `SecretIdNotFound`, …) takes the replica out. A missing
//! permission for one action (`AuthFailure.UnauthorizedOperation`: the CAM policy lacks it) only
//! marks that action degraded, since the others still work, unless every action is refused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// What `/readyz` answers from. Each check is `Ok` or a short reason.
#[derive(Debug, Default)]
pub struct ReadinessChecks {
    /// Set once the server is accepting requests; until then readiness reports "starting".
    started: AtomicBool,
    shutting_down: AtomicBool,
    /// The last credential-wide `AuthFailure*` code Tencent answered, until a call succeeds again.
    upstream_auth: Mutex<Option<String>>,
    /// Actions Tencent refused for want of a permission, until one of their calls succeeds.
    denied: Mutex<BTreeMap<&'static str, String>>,
    /// How many actions the gateway calls: all of them denied means unready.
    actions: std::sync::atomic::AtomicUsize,
    store: Mutex<StoreState>,
    /// Why the credentials in use cannot sign (expired, and their source failed), if so.
    credentials: Mutex<Option<String>>,
}

/// The shared store as readiness sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreState {
    /// In-process store: nothing to reach.
    #[default]
    Local,
    /// Redis has not answered yet since the start: not ready.
    Connecting,
    Up,
    /// Redis answered before but not now: still ready, degraded (local quota share, keyed credit
    /// calls refused).
    Down,
}

/// A readiness answer: `ready` is true when every check is `"ok"`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each check and its state: `ok` or why it fails.
    pub checks: BTreeMap<&'static str, String>,
    /// What works in a reduced way without making the gateway unready (e.g. Redis lost).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub degraded: BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }

    /// Marks `check` failing with `reason`, unless it already fails for a reason of its own.
    pub fn fail_unless_failing(&mut self, check: &'static str, reason: String) {
        if self.checks.get(check).is_none_or(|state| state == "ok") {
            self.checks.insert(check, reason);
            self.status = "not ready";
        }
    }
}

impl ReadinessChecks {
    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// The gateway calls `count` actions (a replica denied all of them cannot serve).
    pub fn expect_actions(&self, count: usize) {
        self.actions.store(count, Ordering::SeqCst);
    }

    /// Tencent answered `action` with `AuthFailure*` `code`. Returns whether it is a missing
    /// permission for that action alone (the action is degraded) rather than rejected
    /// credentials (the replica is unready).
    pub fn report_auth_failure(&self, action: &'static str, code: &str) -> bool {
        if code == "AuthFailure.UnauthorizedOperation" {
            self.denied.lock().insert(action, code.to_owned());
            // Tencent checked the signature to get this far: the credentials themselves work.
            *self.upstream_auth.lock() = None;
            true
        } else {
            *self.upstream_auth.lock() = Some(code.to_owned());
            false
        }
    }

    /// Tencent accepted the credentials for `action` (any answer that is not `AuthFailure*`).
    pub fn report_auth_ok(&self, action: &'static str) {
        let mut state = self.upstream_auth.lock();
        if state.is_some() {
            tracing::info!("Tencent accepts the gateway's credentials again");
            *state = None;
        }
        drop(state);
        let mut denied = self.denied.lock();
        if denied.remove(action).is_some() {
            tracing::info!(action, "Tencent allows this action again");
        }
    }

    /// Whether Tencent refuses every action the gateway calls (the replica is then unready, and
    /// the credentials are re-checked in the background as after a rejection).
    pub fn all_denied(&self) -> bool {
        let actions = self.actions.load(Ordering::SeqCst);
        actions > 0 && self.denied.lock().len() >= actions
    }

    /// The actions Tencent refuses for want of a permission.
    pub fn denied_actions(&self) -> Vec<&'static str> {
        self.denied.lock().keys().copied().collect()
    }

    /// The gateway signs with new credentials now: a rejection of the old ones no longer holds
    /// (the next call tells whether Tencent accepts these).
    pub fn credentials_replaced(&self) {
        if self.upstream_auth.lock().take().is_some() {
            tracing::info!("new credentials: Tencent's rejection of the previous ones is cleared");
        }
    }

    /// The credentials in use expired and could not be refreshed (`Some(why)`), or work again.
    pub fn report_credentials(&self, failure: Option<String>) {
        *self.credentials.lock() = failure;
    }

    pub fn report_store(&self, state: StoreState) {
        *self.store.lock() = state;
    }

    pub fn store_state(&self) -> StoreState {
        *self.store.lock()
    }

    pub fn upstream_auth_failed(&self) -> bool {
        self.upstream_auth.lock().is_some()
    }

    pub fn readiness(&self) -> Readiness {
        let mut checks = BTreeMap::new();
        // `ok`, or the reason the check fails.
        let check = |ok: bool, reason: &str| if ok { "ok" } else { reason }.to_owned();
        let started = self.started.load(Ordering::SeqCst);
        checks.insert("startup", check(started, "starting"));
        let shutting_down = self.shutting_down.load(Ordering::SeqCst);
        checks.insert("shutdown", check(!shutting_down, "shutting down"));
        let auth = self.upstream_auth.lock().clone();
        let denied = self.denied_actions();
        let all_denied = self.all_denied();
        checks.insert(
            "upstream_auth",
            match auth {
                Some(code) => format!("Tencent rejected the credentials: {code}"),
                None if all_denied => {
                    "Tencent refuses every action: the CAM policy grants none of them".into()
                }
                None => "ok".into(),
            },
        );
        checks.insert(
            "credentials",
            self.credentials
                .lock()
                .clone()
                .unwrap_or_else(|| "ok".into()),
        );
        let mut degraded = BTreeMap::new();
        if !denied.is_empty() && !all_denied {
            degraded.insert(
                "upstream_permissions",
                format!(
                    "Tencent refuses {} (AuthFailure.UnauthorizedOperation): grant them in the CAM policy; the other actions work",
                    denied
                        .iter()
                        .map(|a| format!("intlpartnersmgt:{a}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
        match self.store_state() {
            StoreState::Local => {}
            StoreState::Up => {
                checks.insert("store", "ok".into());
            }
            StoreState::Connecting => {
                checks.insert("store", "connecting to Redis".into());
            }
            StoreState::Down => {
                checks.insert("store", "ok".into());
                degraded.insert(
                    "store",
                    "Redis unreachable: quota at this replica's share, keyed credit calls refused, invitations use local cooldowns".into(),
                );
            }
        }
        let ready = checks.values().all(|v| v == "ok");
        Readiness {
            status: if ready { "ready" } else { "not ready" },
            checks,
            degraded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One missing permission degrades one action; a replica denied every action is unready.
    #[test]
    fn a_missing_permission_degrades_its_action_only() {
        let readiness = ReadinessChecks::default();
        readiness.set_started();
        readiness.expect_actions(2);
        assert!(readiness.report_auth_failure(
            "QueryCreditAllocationHistory",
            "AuthFailure.UnauthorizedOperation"
        ));
        let r = readiness.readiness();
        assert!(r.is_ready(), "{r:?}");
        assert!(
            r.degraded["upstream_permissions"]
                .contains("intlpartnersmgt:QueryCreditAllocationHistory")
        );
        assert!(readiness.report_auth_failure(
            "AllocateCustomerCredit",
            "AuthFailure.UnauthorizedOperation"
        ));
        assert!(!readiness.readiness().is_ready());
        assert!(readiness.all_denied());
        readiness.report_auth_ok("AllocateCustomerCredit");
        assert!(readiness.readiness().is_ready());
        readiness.report_auth_ok("QueryCreditAllocationHistory");
        // A permission refusal proves the signature good: it clears rejected credentials.
        readiness.report_auth_failure("A", "AuthFailure.SignatureExpire");
        assert!(!readiness.readiness().is_ready());
        readiness.report_auth_failure(
            "AllocateCustomerCredit",
            "AuthFailure.UnauthorizedOperation",
        );
        assert!(readiness.readiness().is_ready());
        readiness.report_auth_ok("AllocateCustomerCredit");
        readiness.report_auth_ok("QueryCreditAllocationHistory");
        assert!(readiness.readiness().degraded.is_empty());
    }

    #[test]
    fn a_check_failed_from_outside_keeps_its_own_reason_first() {
        let readiness = ReadinessChecks::default();
        readiness.set_started();
        let mut r = readiness.readiness();
        assert!(r.is_ready());
        r.fail_unless_failing("credentials", "expired".into());
        assert!(!r.is_ready());
        assert_eq!(r.checks["credentials"], "expired");
        readiness.report_credentials(Some("the source failed: why".into()));
        let mut r = readiness.readiness();
        r.fail_unless_failing("credentials", "expired".into());
        assert_eq!(r.checks["credentials"], "the source failed: why");
    }

    #[test]
    fn readiness_follows_the_lifecycle() {
        let readiness = ReadinessChecks::default();
        let r = readiness.readiness();
        assert!(!r.is_ready());
        assert_eq!(r.checks["startup"], "starting");
        readiness.set_started();
        assert!(readiness.readiness().is_ready());
        readiness.report_auth_failure("A", "AuthFailure.SecretIdNotFound");
        let r = readiness.readiness();
        assert!(!r.is_ready());
        assert!(r.checks["upstream_auth"].contains("AuthFailure.SecretIdNotFound"));
        readiness.report_auth_ok("B");
        assert!(readiness.readiness().is_ready());
        readiness.report_store(StoreState::Connecting);
        assert_eq!(readiness.readiness().checks["store"], "connecting to Redis");
        assert!(!readiness.readiness().is_ready());
        readiness.report_store(StoreState::Up);
        assert!(readiness.readiness().is_ready());
        readiness.report_store(StoreState::Down);
        let r = readiness.readiness();
        assert!(
            r.is_ready(),
            "losing Redis degrades, it does not stop the gateway"
        );
        assert!(r.degraded["store"].contains("Redis unreachable"));
        readiness.set_shutting_down();
        assert_eq!(readiness.readiness().checks["shutdown"], "shutting down");
        assert!(!readiness.readiness().is_ready());
    }
}
