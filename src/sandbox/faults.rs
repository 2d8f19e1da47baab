//! Faults the sandbox can inject, for tests, benchmarks and curious operators.

use serde::{Deserialize, Serialize};

/// What goes wrong.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this Tencent error code, as Tencent would (HTTP 200, error envelope). Nothing executes.
    Error {
        code: String,
        #[serde(default)]
        message: String,
    },
    /// Answer a non-200 status with an HTML page, like a proxy in front of Tencent. Nothing executes.
    Status { status: u16 },
    /// Answer 200 with a body that is not an answer envelope. The action executes first.
    Unparsable,
    /// Wait, then answer normally.
    Delay { ms: u64 },
    /// Wait without answering and without executing (the client should time out first).
    HangBeforeExecute { ms: u64 },
    /// Execute, then wait without answering: the answer is lost after the ledger changed.
    HangAfterExecute { ms: u64 },
    /// Execute, then send half of the answer and cut the connection.
    TruncateAfterExecute,
    /// Execute, then answer this non-200 status with an HTML page (a proxy that lost the answer).
    StatusAfterExecute { status: u16 },
}

/// A fault and which calls it hits. (`deny_unknown_fields` cannot be combined with `flatten`
/// in serde, so unknown keys are ignored here.)
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Fault {
    /// Only calls of this action; all actions when absent.
    #[serde(default)]
    pub action: Option<String>,
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many calls it hits before it is used up; forever when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// The chance that a matching call is hit (0..=1); 1 when absent.
    #[serde(default)]
    pub probability: Option<f64>,
}

impl Fault {
    /// Hits the next call of `action` (of every action when `None`) once.
    pub fn once(action: Option<&str>, kind: FaultKind) -> Self {
        Self {
            action: action.map(str::to_owned),
            kind,
            times: Some(1),
            probability: None,
        }
    }

    /// Hits every matching call.
    pub fn always(action: Option<&str>, kind: FaultKind) -> Self {
        Self {
            times: None,
            ..Self::once(action, kind)
        }
    }

    pub fn error(action: Option<&str>, code: &str) -> Self {
        Self::once(
            action,
            FaultKind::Error {
                code: code.to_owned(),
                message: format!("injected {code}"),
            },
        )
    }

    pub fn matches(&self, action: &str) -> bool {
        self.action.as_deref().is_none_or(|a| a == action) && self.times != Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_example_parses() {
        let fault: Fault = serde_json::from_str(
            r#"{"action": "AllocateCustomerCredit", "kind": "hang_after_execute", "ms": 20000, "times": 1}"#,
        )
        .unwrap();
        assert_eq!(fault.kind, FaultKind::HangAfterExecute { ms: 20_000 });
        assert_eq!(fault.times, Some(1));
        let error: Fault = serde_json::from_str(
            r#"{"kind": "error", "code": "InternalError", "probability": 0.1}"#,
        )
        .unwrap();
        assert_eq!(error.action, None);
        assert_eq!(error.probability, Some(0.1));
        assert!(serde_json::from_str::<Fault>(r#"{"kind": "explode"}"#).is_err());
    }
}
