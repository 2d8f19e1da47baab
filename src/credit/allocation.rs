//! The allocation a caller asks for, the answer it gets, and the remark Tencent receives.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::{ROUTE, marker};
use crate::auth::Caller;
use crate::domain::{ClientUin, CreditAmount, FieldError, REMARK_MAX_CHARS, Remark};
use crate::idempotency;

/// A change to a customer's credit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"amount": 100.5, "remark": "Q3 top-up"}))]
pub struct CreditRequest {
    /// The increment: non-zero, at most 2 decimal places, |amount| ≤ `credit.max_amount`.
    /// Negative takes credit back (available credit never goes below 0).
    #[schema(value_type = f64, example = 100.5)]
    pub amount: Box<RawValue>,
    /// Stored with the allocation in Tencent's history, NFC-normalised: at most 256 characters,
    /// no control characters, no invisible formatting characters (bidirectional controls, line
    /// separators, zero-width spaces and the like), and not containing `[pgw:` (the gateway's own
    /// marker).
    #[serde(default)]
    #[schema(max_length = 256, example = "Q3 top-up")]
    pub remark: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"uin": "800000232018", "amount": 100.5, "totalCredit": 1100.5, "remainingCredit": 600.5, "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct CreditResponse {
    /// The customer's account id, as a string so JavaScript keeps every digit.
    #[schema(example = "800000232018")]
    pub uin: String,
    /// The increment applied.
    #[schema(example = 100.5)]
    pub amount: f64,
    /// The customer's total credit after the allocation. `null` only in an answer settled from
    /// Tencent's history when the entry lacks `AllocatedCredit`.
    pub total_credit: Option<f64>,
    /// The customer's available credit after the allocation. `null` only in an answer settled
    /// from Tencent's history when the entry lacks `ClientCreditAfter` (Tencent may omit it).
    pub remaining_credit: Option<f64>,
    /// Tencent's `RequestId` (of the allocation, or of the history query that settled it).
    pub request_id: String,
}

/// The allocation, parsed: only valid allocations exist past this point.
#[derive(Debug)]
pub struct Allocation {
    pub uin: ClientUin,
    pub amount: CreditAmount,
    pub remark: Option<Remark>,
}

impl Allocation {
    /// The path's `uin` and the body, checked together so every invalid field is reported.
    pub fn parse(uin: &str, req: &CreditRequest, max_cents: i64) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let uin = ClientUin::parse(uin).map_err(|m| errors.push(FieldError::new("uin", m)));
        let amount = CreditAmount::parse_json(req.amount.get(), max_cents)
            .map_err(|e| errors.push(FieldError::new("amount", e.to_string())));
        let remark = match req.remark.as_deref() {
            None | Some("") => Ok(None),
            Some(raw) if marker::has_marker_syntax(raw) => {
                errors.push(FieldError::new(
                    "remark",
                    "must not contain `[pgw:`: that marker is written by the gateway only",
                ));
                Err(())
            }
            Some(raw) => Remark::parse(raw)
                .map(Some)
                .map_err(|m| errors.push(FieldError::new("remark", m))),
        };
        match (uin, amount, remark) {
            (Ok(uin), Ok(amount), Ok(remark)) => Ok(Self {
                uin,
                amount,
                remark,
            }),
            _ => Err(errors),
        }
    }

    pub(super) fn fingerprint(&self) -> String {
        idempotency::fingerprint(&[
            ROUTE,
            &self.uin.to_string(),
            &self.amount.cents().to_string(),
            self.remark.as_ref().map(Remark::as_str).unwrap_or(""),
        ])
    }
}

/// The `Remark` sent to Tencent: the caller's remark, then ` [by CALLER]` when
/// `auth.remark_caller` is on, then the marker as the last word. The marker and the caller tag
/// are kept whole; the caller's remark is cut so the whole fits Tencent's 256 characters.
pub fn tencent_remark(
    remark: Option<&Remark>,
    caller: &Caller,
    tag_caller: bool,
    marker: Option<&str>,
) -> Option<String> {
    let mut suffix: Vec<String> = Vec::new();
    if tag_caller {
        let room = REMARK_MAX_CHARS - marker::LEN - 8;
        // A caller's name can come from a token claim an end user edits: made safe like a remark.
        let name = crate::domain::sanitize_remark(&caller.name);
        suffix.push(format!(
            "[by {}]",
            name.chars().take(room).collect::<String>()
        ));
    }
    if let Some(marker) = marker {
        suffix.push(marker.to_owned());
    }
    let suffix = suffix.join(" ");
    let text = remark.map(Remark::as_str).unwrap_or("");
    if suffix.is_empty() {
        return (!text.is_empty()).then(|| text.to_owned());
    }
    let room = REMARK_MAX_CHARS.saturating_sub(suffix.chars().count() + 1);
    let kept: String = text.chars().take(room).collect();
    Some(if kept.is_empty() {
        suffix
    } else {
        format!("{kept} {suffix}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str) -> Caller {
        Caller {
            name: name.into(),
            id: format!("key:{name}"),
            scopes: vec![],
            method: "api_key",
        }
    }

    #[test]
    fn the_caller_tag_and_marker_fit_within_tencents_limit() {
        let long = Remark::parse(&"é".repeat(256)).unwrap();
        let marker = "[pgw:0123456789abcdef0123456789abcdef]";
        let tagged = tencent_remark(Some(&long), &caller("billing"), true, Some(marker)).unwrap();
        assert_eq!(tagged.chars().count(), 256);
        assert!(
            tagged.ends_with(&format!(" [by billing] {marker}")),
            "{tagged}"
        );
        // A caller name too long for the remark is cut; the marker stays whole and last.
        let huge = tencent_remark(None, &caller(&"n".repeat(400)), true, Some(marker)).unwrap();
        assert!(
            huge.chars().count() <= 256 && marker::ends_with(&huge, marker),
            "{huge}"
        );
        assert_eq!(
            tencent_remark(None, &caller("svc"), true, None).unwrap(),
            "[by svc]"
        );
        assert_eq!(
            tencent_remark(None, &caller("svc"), false, Some(marker)).unwrap(),
            marker
        );
        assert_eq!(
            tencent_remark(
                Some(&Remark::parse("Q3").unwrap()),
                &caller("svc"),
                false,
                None
            )
            .unwrap(),
            "Q3"
        );
        assert_eq!(tencent_remark(None, &caller("svc"), false, None), None);
    }
}
