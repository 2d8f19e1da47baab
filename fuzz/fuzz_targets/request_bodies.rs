//! Any bytes as the body of either route, through the same extractor and parsing as a request:
//! never a panic, and every refusal is a 400 or a 422 (nothing else can come of a body).
#![no_main]

use libfuzzer_sys::fuzz_target;
use partner_gateway::credit::{Allocation, CreditRequest};
use partner_gateway::routes::extract;
use partner_gateway::routes::invitations::{Invitation, InvitationRequest};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the route (and, for credit, how much of the rest is the path's uin).
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    if selector % 2 == 0 {
        match extract::parse::<InvitationRequest>(rest) {
            Ok(req) => {
                let _ = Invitation::parse(req);
            }
            Err(e) => assert!(matches!(e.status.as_u16(), 400 | 422), "{}", e.status),
        }
    } else {
        let split = (selector as usize / 2).min(rest.len());
        let (uin, body) = rest.split_at(split);
        let uin = String::from_utf8_lossy(uin);
        match extract::parse::<CreditRequest>(body) {
            Ok(req) => {
                let _ = Allocation::parse(&uin, &req, 10_000_000);
            }
            Err(e) => assert!(matches!(e.status.as_u16(), 400 | 422), "{}", e.status),
        }
    }
});
