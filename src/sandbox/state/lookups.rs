//! `DescribeCustomerInfo` and `QueryInvitationInfo`: customers' profiles, and invitation links
//! with what became of them. An invitation is used through the admin route
//! `POST /_sandbox/invitations/{token}/accept`, which binds a new customer (in the ledger, the
//! customer list and the profiles from then on).

use serde::Serialize;

use super::{SandboxState, timestamp};
use crate::sandbox::SEEDED_CUSTOMERS;

/// How long Tencent keeps an invitation link's data.
const KEPT_MS: u64 = 60 * 86_400 * 1000;
/// Most invitations kept (the oldest go first): a sandbox, not a database.
const MAX_INVITATIONS: usize = 10_000;
/// UINs of customers who joined through an invitation start here.
const FIRST_JOINED_UIN: u64 = 900_000_000_001;

/// An invitation link the sandbox issued.
#[derive(Debug, Clone)]
pub(super) struct Invitation {
    pub token: String,
    pub email: String,
    pub created_ms: u64,
    /// When it was used, and the customer it bound.
    pub used: Option<(u64, u64)>,
}

/// A customer who joined by an invitation.
#[derive(Debug, Clone)]
pub(super) struct Joined {
    pub uin: u64,
    pub email: String,
    pub bound_ms: u64,
}

/// One profile, in Tencent's terms (`CustomerUin` a string).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProfileRow {
    pub customer_uin: String,
    pub email: String,
    pub phone: String,
    pub mark: String,
    pub name: String,
    pub bind_time: String,
    pub account_status: String,
    pub auth_status: String,
    pub auth_type: String,
    pub cid_register_time: String,
    pub uin_register_time: String,
    pub auth_pass_time: String,
    pub has_expense: String,
}

/// One invitation, in Tencent's terms (`ClientUin` an integer).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvitationRow {
    pub invitation_token: String,
    pub create_time: String,
    pub status: i64,
    pub use_time: String,
    pub client_uin: u64,
    pub client_mail: String,
    pub client_type: i64,
    pub bind_time: String,
}

impl SandboxState {
    /// A new invitation link's token, for `email`.
    pub(super) fn issue_invitation(&self, email: &str) -> String {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let now = self.config.clock.now_unix_ms();
        let mut inner = self.lock();
        if inner.invitations.len() >= MAX_INVITATIONS {
            inner.invitations.pop_front();
        }
        inner.invitations.push_back(Invitation {
            token: token.clone(),
            email: email.to_owned(),
            created_ms: now,
            used: None,
        });
        token
    }

    /// Uses an invitation: a new customer joins the partner. `None`: no such unused token.
    pub fn accept_invitation(&self, token: &str) -> Option<u64> {
        let now = self.config.clock.now_unix_ms();
        let mut inner = self.lock();
        let uin = FIRST_JOINED_UIN + inner.joined.len() as u64;
        let invitation = inner
            .invitations
            .iter_mut()
            .find(|i| i.token == token && i.used.is_none() && now < i.created_ms + KEPT_MS)?;
        invitation.used = Some((now, uin));
        let email = invitation.email.clone();
        inner.joined.push(Joined {
            uin,
            email,
            bound_ms: now,
        });
        inner.customers.insert(uin, Default::default());
        Some(uin)
    }

    /// The invitations among `tokens` still kept (60 days), in the order asked.
    pub fn invitations(&self, tokens: &[&str]) -> Vec<InvitationRow> {
        let now = self.config.clock.now_unix_ms();
        let inner = self.lock();
        tokens
            .iter()
            .filter_map(|t| inner.invitations.iter().find(|i| i.token == *t))
            .filter(|i| now < i.created_ms + KEPT_MS)
            .map(|i| InvitationRow {
                invitation_token: i.token.clone(),
                create_time: timestamp(i.created_ms),
                status: if i.used.is_some() { 2 } else { 1 },
                use_time: i.used.map(|(at, _)| timestamp(at)).unwrap_or_default(),
                client_uin: i.used.map(|(_, uin)| uin).unwrap_or_default(),
                client_mail: i.email.clone(),
                client_type: 2,
                bind_time: i.used.map(|(at, _)| timestamp(at)).unwrap_or_default(),
            })
            .collect()
    }

    /// The profiles of the partner's customers among `uins`.
    pub fn profiles(&self, uins: &[u64]) -> Vec<ProfileRow> {
        let joined = self.lock().joined.clone();
        uins.iter()
            .filter_map(|uin| {
                let (name, email, bound) = match SEEDED_CUSTOMERS.iter().position(|s| s == uin) {
                    Some(index) => super::customers::profile(index),
                    None => {
                        let j = joined.iter().find(|j| j.uin == *uin)?;
                        (String::new(), j.email.clone(), timestamp(j.bound_ms))
                    }
                };
                Some(ProfileRow {
                    customer_uin: uin.to_string(),
                    email,
                    phone: String::new(),
                    mark: String::new(),
                    name,
                    uin_register_time: bound.clone(),
                    bind_time: bound,
                    account_status: "0".into(),
                    auth_status: "3".into(),
                    auth_type: "1".into(),
                    cid_register_time: String::new(),
                    auth_pass_time: String::new(),
                    has_expense: "0".into(),
                })
            })
            .collect()
    }
}
