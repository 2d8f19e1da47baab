//! Domain newtypes that parse once at the edge: code past a route handler cannot hold an invalid
//! e-mail address, customer UIN, credit amount or remark.
//!
//! Each `parse` returns a human-readable reason on failure; the routes attach the field name and
//! turn the collected reasons into one 422 problem.

mod amount;
mod email;
mod invitation;
mod remark;
mod scope;
mod uin;

pub use amount::{AmountError, CreditAmount};
pub use email::Email;
pub use invitation::{InvitationRole, MaterialUrl};
pub use remark::{MAX_CHARS as REMARK_MAX_CHARS, Remark, sanitize as sanitize_remark};
pub use scope::Scope;
pub use uin::ClientUin;

/// One rejected input field, as listed in a problem's `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// The JSON field (camelCase) or path parameter that was rejected.
    #[schema(example = "amount")]
    pub field: String,
    /// Why, in words a caller can act on.
    #[schema(example = "must have at most 2 decimal places")]
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
