//! Typed requests and answers of the actions the gateway calls. Field names follow Tencent's
//! PascalCase; unknown answer fields are ignored, since Tencent adds fields without notice.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One upstream action: its name (`X-TC-Action`) and the shape of its successful answer.
pub trait Action: Serialize + Send + Sync {
    const NAME: &'static str;
    type Response: DeserializeOwned + Send;
}

/// `action!(Request => Response)`: `Request` is the action of that name (its type's name is
/// Tencent's action name), answered with `Response`.
macro_rules! action {
    ($request:ident => $response:ty) => {
        impl Action for $request {
            const NAME: &'static str = stringify!($request);
            type Response = $response;
        }
    };
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateAndSendClientInvitationMail {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invitation_role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvitationMailSent {
    pub invitation_link: String,
}

action!(CreateAndSendClientInvitationMail => InvitationMailSent);

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocateCustomerCredit {
    pub client_uin: u64,
    pub added_credit: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditAllocated {
    pub total_credit: f64,
    pub remaining_credit: f64,
}

action!(AllocateCustomerCredit => CreditAllocated);

/// The partner's own credit (`GET /partner/credit`); also a cheap call the gateway uses to
/// re-check rejected credentials.
#[derive(Debug, Serialize)]
pub struct QueryPartnerCredit {}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PartnerCredit {
    pub allocated_credit: f64,
    pub total_credit: f64,
    pub remaining_credit: f64,
    /// The customers' total credit, and what remains of it (documented; absent from older
    /// answers).
    #[serde(default)]
    pub customer_total_credit: Option<f64>,
    #[serde(default)]
    pub customer_remaining_credit: Option<f64>,
}

action!(QueryPartnerCredit => PartnerCredit);

/// One page of a customer's allocations (order and page-size limit undocumented): how the
/// gateway finds out whether an allocation whose answer was lost was applied.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryCreditAllocationHistory {
    pub client_uin: u64,
    pub page: u64,
    pub page_size: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocationHistory {
    pub total: u64,
    #[serde(default)]
    pub history: Vec<HistoryItem>,
}

/// One history entry. Field meanings as in Tencent's field docs and SDK models
/// (`QueryCreditAllocationHistoryData`); any of them may be null.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// `YYYY-MM-DD HH:MM:SS`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub allocated_time: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub operator: String,
    /// "Allocated credit value": the increment of this allocation.
    #[serde(default)]
    pub credit: Option<f64>,
    /// "The allocated total credit": the customer's total credit after it.
    #[serde(default)]
    pub allocated_credit: Option<f64>,
    /// "Available credits after allocation" (may be null).
    #[serde(default)]
    pub client_credit_after: Option<f64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub remark: String,
}

fn null_as_default<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

action!(QueryCreditAllocationHistory => AllocationHistory);

/// The credit of up to 50 customers (`UinList`: integers).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryCreditByUinList {
    pub uin_list: Vec<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditsByUin {
    /// Only the UINs that are the partner's customers are listed; null reads as none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: Vec<CreditOfUin>,
}

/// One UIN's credit; the SDK models allow any field to be null, which fails only this entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreditOfUin {
    pub uin: u64,
    #[serde(default)]
    pub total_credit: Option<f64>,
    #[serde(default)]
    pub remaining_credit: Option<f64>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

action!(QueryCreditByUinList => CreditsByUin);

/// The partner's customers, filtered and paged (`Page` from 1; `Order` by association time).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryCustomersCredit {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub page: u64,
    pub page_size: u64,
    pub order: &'static str,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomersPage {
    #[serde(default)]
    pub total: u64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: Vec<CustomerListed>,
}

/// One customer as `QueryCustomersCredit` lists it; the SDK models allow any field to be null.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomerListed {
    pub client_uin: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub email: String,
    #[serde(default, rename = "Type", deserialize_with = "null_as_default")]
    pub kind: String,
    #[serde(default)]
    pub credit: Option<f64>,
    #[serde(default)]
    pub remaining_credit: Option<f64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub association_time: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub remark: String,
}

action!(QueryCustomersCredit => CustomersPage);

/// A string that Tencent may send as a string, a number or null (the SDK models disagree on
/// these fields' types across versions): kept as text, null as empty.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Number(serde_json::Number),
        Flag(bool),
    }
    Ok(match Option::<Scalar>::deserialize(d)? {
        None => String::new(),
        Some(Scalar::Text(s)) => s,
        Some(Scalar::Number(n)) => n.to_string(),
        Some(Scalar::Flag(b)) => b.to_string(),
    })
}

/// The profiles of up to 20 customers (`CustomerUin`: integers).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeCustomerInfo {
    pub customer_uin: Vec<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomerProfiles {
    /// Only the partner's customers are listed; null reads as none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub data: Vec<CustomerProfile>,
}

/// One customer's profile (`DescribeCustomerInfoData`): `CustomerUin` is a string here, and any
/// field may be null.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomerProfile {
    #[serde(default, deserialize_with = "text")]
    pub customer_uin: String,
    #[serde(default, deserialize_with = "text")]
    pub email: String,
    #[serde(default, deserialize_with = "text")]
    pub phone: String,
    #[serde(default, deserialize_with = "text")]
    pub mark: String,
    #[serde(default, deserialize_with = "text")]
    pub name: String,
    #[serde(default, deserialize_with = "text")]
    pub bind_time: String,
    #[serde(default, deserialize_with = "text")]
    pub account_status: String,
    #[serde(default, deserialize_with = "text")]
    pub auth_status: String,
    #[serde(default, deserialize_with = "text")]
    pub auth_type: String,
    #[serde(default, deserialize_with = "text")]
    pub cid_register_time: String,
    #[serde(default, deserialize_with = "text")]
    pub uin_register_time: String,
    #[serde(default, deserialize_with = "text")]
    pub auth_pass_time: String,
    #[serde(default, deserialize_with = "text")]
    pub has_expense: String,
}

action!(DescribeCustomerInfo => CustomerProfiles);

/// What became of up to 100 invitation links (`InvitationToken`: strings; kept 60 days).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueryInvitationInfo {
    pub invitation_token: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvitationInfos {
    /// Only the tokens Tencent still keeps are listed; null reads as none.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub invitation_info: Vec<InvitationInfo>,
}

/// One invitation link (`QueryInvitationInfoData`); any field may be null.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InvitationInfo {
    #[serde(default, deserialize_with = "text")]
    pub invitation_token: String,
    #[serde(default, deserialize_with = "text")]
    pub create_time: String,
    /// 1: unused, 2: used.
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default, deserialize_with = "text")]
    pub use_time: String,
    /// An integer here (0 or null while unused).
    #[serde(default)]
    pub client_uin: Option<u64>,
    #[serde(default, deserialize_with = "text")]
    pub client_mail: String,
    /// 1: second-level reseller, 2: sub-customer.
    #[serde(default)]
    pub client_type: Option<i64>,
    #[serde(default, deserialize_with = "text")]
    pub bind_time: String,
}

action!(QueryInvitationInfo => InvitationInfos);
