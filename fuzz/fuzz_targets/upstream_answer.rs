//! Any bytes as Tencent's answer to either action: never a panic; an answer that parses has a
//! RequestId, and an error answer is an error whatever else it holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use partner_gateway::tencent::actions::Action;
use partner_gateway::tencent::actions::{
    AllocateCustomerCredit, CreateAndSendClientInvitationMail,
};
use partner_gateway::tencent::client::parse_answer;

#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Response", borrow)]
    response: &'a serde_json::value::RawValue,
}

/// Only whether an `Error` is there: fields the parser ignores may hold anything JSON allows
/// (even numbers no f64 holds, which `serde_json::Value` refuses).
#[derive(serde::Deserialize)]
struct ErrorField {
    #[serde(rename = "Error")]
    error: Option<serde::de::IgnoredAny>,
}

fn check<A: Action>(data: &[u8]) {
    if let Ok((_, request_id)) = parse_answer::<A::Response>(data) {
        let _ = request_id;
        let envelope: Envelope<'_> = serde_json::from_slice(data).expect("it parsed");
        let fields: ErrorField = serde_json::from_str(envelope.response.get()).expect("an object");
        assert!(
            fields.error.is_none(),
            "an error answer was taken as a success"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check::<AllocateCustomerCredit>(data);
    check::<CreateAndSendClientInvitationMail>(data);
});
