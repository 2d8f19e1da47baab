//! The three batched reads: what each sends for a batch of keys and how its answer splits back
//! into one entry per key.

use super::CustomerCredit;
use super::batch::{Batched, Entries};
use crate::problem::{ApiError, ProblemType};
use crate::tencent::actions::{
    CreditsByUin, CustomerProfile, CustomerProfiles, DescribeCustomerInfo, InvitationInfo,
    InvitationInfos, QueryCreditByUinList, QueryInvitationInfo,
};

/// `QueryCreditByUinList`: up to 50 UINs (integers).
#[derive(Debug)]
pub struct Credits;

impl Batched for Credits {
    type Key = u64;
    type Item = CustomerCredit;
    type Action = QueryCreditByUinList;
    const MAX: usize = 50;

    fn request(uin_list: Vec<u64>) -> QueryCreditByUinList {
        QueryCreditByUinList { uin_list }
    }

    fn entries(answer: CreditsByUin) -> Entries<Self> {
        answer
            .data
            .into_iter()
            .map(|c| {
                let entry = match (c.total_credit, c.remaining_credit) {
                    (Some(total_credit), Some(remaining_credit)) => Ok(CustomerCredit {
                        uin: c.uin,
                        total_credit,
                        remaining_credit,
                    }),
                    _ => Err(ApiError::new(
                        ProblemType::UpstreamError,
                        "Tencent listed this customer without its credit",
                    )),
                };
                (c.uin, entry)
            })
            .collect()
    }
}

/// `DescribeCustomerInfo`: up to 20 UINs, sent as integers and answered as strings.
#[derive(Debug)]
pub struct Profiles;

impl Batched for Profiles {
    type Key = u64;
    type Item = CustomerProfile;
    type Action = DescribeCustomerInfo;
    const MAX: usize = 20;

    fn request(customer_uin: Vec<u64>) -> DescribeCustomerInfo {
        DescribeCustomerInfo { customer_uin }
    }

    /// An entry whose `CustomerUin` is not a UIN matches no reader, so its readers get 404
    /// rather than someone else's profile.
    fn entries(answer: CustomerProfiles) -> Entries<Self> {
        answer
            .data
            .into_iter()
            .filter_map(|p| Some((p.customer_uin.trim().parse().ok()?, Ok(p))))
            .collect()
    }
}

/// `QueryInvitationInfo`: up to 100 tokens.
#[derive(Debug)]
pub struct Invitations;

impl Batched for Invitations {
    type Key = String;
    type Item = InvitationInfo;
    type Action = QueryInvitationInfo;
    const MAX: usize = 100;

    fn request(invitation_token: Vec<String>) -> QueryInvitationInfo {
        QueryInvitationInfo { invitation_token }
    }

    fn entries(answer: InvitationInfos) -> Entries<Self> {
        answer
            .invitation_info
            .into_iter()
            .map(|i| (i.invitation_token.clone(), Ok(i)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_keyed_by_their_string_uin_and_take_any_scalar_or_null() {
        let answer: CustomerProfiles = serde_json::from_value(serde_json::json!({"Data": [
            {"CustomerUin": "800000232018", "Email": "a@example.com", "HasExpense": 1,
             "AuthStatus": null, "AccountStatus": "0"},
            {"CustomerUin": "not a uin", "Email": "someone.else@example.com"},
            {"CustomerUin": 800000000001u64, "HasExpense": true},
        ]}))
        .unwrap();
        let entries = Profiles::entries(answer);
        let keys: Vec<u64> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [800000232018, 800000000001]);
        let first = entries[0].1.as_ref().unwrap();
        assert_eq!(first.has_expense, "1");
        assert_eq!(first.auth_status, "");
        assert_eq!(entries[1].1.as_ref().unwrap().has_expense, "true");
        let none: CustomerProfiles =
            serde_json::from_value(serde_json::json!({"Data": null})).unwrap();
        assert!(Profiles::entries(none).is_empty());
    }

    #[test]
    fn a_credit_entry_without_its_amounts_fails_only_its_own_readers() {
        let answer: CreditsByUin = serde_json::from_value(serde_json::json!({"Data": [
            {"Uin": 1, "TotalCredit": 5.5, "RemainingCredit": 1.0},
            {"Uin": 2, "TotalCredit": null, "RemainingCredit": 1.0},
        ]}))
        .unwrap();
        let entries = Credits::entries(answer);
        assert!(entries[0].1.is_ok());
        assert!(entries[1].1.is_err());
    }

    #[test]
    fn an_unused_invitation_reads_with_null_fields() {
        let answer: InvitationInfos =
            serde_json::from_value(serde_json::json!({"InvitationInfo": [
                {"InvitationToken": "t1", "Status": 1, "ClientUin": null, "UseTime": null}
            ]}))
            .unwrap();
        let entries = Invitations::entries(answer);
        let (token, info) = &entries[0];
        assert_eq!(token, "t1");
        let info = info.as_ref().unwrap();
        assert_eq!((info.status, info.client_uin), (Some(1), None));
    }
}
