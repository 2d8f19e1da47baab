//! One TC3-HMAC-SHA256 signature, with and without the cached day key.
//!
//! Input: this product's vector 1 from `docs/tencent-api.md` (AllocateCustomerCredit, signed
//! `content-type;host`); both variants are checked against its published signature first.
//! Run: `cargo bench --bench signing` (bench/signing.sh adds the Python SDK's `sign_tc3`).

use divan::{Bencher, black_box};
use partner_gateway::tencent::sign::{RequestToSign, SignedHeaderSet, Signer};
use secrecy::SecretString;

const SIGNATURE: &str = "1a3884c556a0d1c7b0079fca38d23c8eba25d3b2c1d2e14e4a2e6387de53c637";
const BODY: &[u8] = br#"{"ClientUin": 800000232018, "AddedCredit": 100.0, "Remark": "test"}"#;

fn signer() -> Signer {
    Signer::new(
        "AKIDEXAMPLE",
        SecretString::from("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
        "intlpartnersmgt",
        SignedHeaderSet::ContentTypeHost,
    )
}

fn request() -> RequestToSign<'static> {
    RequestToSign {
        host: "intlpartnersmgt.intl.tencentcloudapi.com",
        action: "AllocateCustomerCredit",
        content_type: "application/json",
        timestamp: 1_700_000_000,
        payload: BODY,
    }
}

fn main() {
    let s = signer();
    assert!(s.authorization(&request()).ends_with(SIGNATURE));
    assert!(s.authorization_uncached(&request()).ends_with(SIGNATURE));
    divan::main();
}

/// The gateway's path: the day key is derived once per UTC day.
#[divan::bench]
fn cached_day_key(bencher: Bencher) {
    let s = signer();
    let req = request();
    s.authorization(&req);
    bencher.bench_local(|| s.authorization(black_box(&req)));
}

/// Deriving the day key (three more HMACs) on every call.
#[divan::bench]
fn uncached(bencher: Bencher) {
    let s = signer();
    let req = request();
    bencher.bench_local(|| s.authorization_uncached(black_box(&req)));
}
