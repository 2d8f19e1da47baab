use super::*;

/// Tencent's documented body, byte-exact with literal backslash-u escapes.
const CVM_BODY: &str =
    r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
const CVM_CT: &str = "application/json; charset=utf-8";
const CVM_HOST: &str = "cvm.tencentcloudapi.com";

fn cvm_headers(with_action: bool) -> Vec<(&'static str, &'static str)> {
    let mut h = vec![("content-type", CVM_CT), ("host", CVM_HOST)];
    if with_action {
        h.push(("x-tc-action", "DescribeInstances"));
    }
    h
}

fn sign_cvm(secret_key: &str, with_action: bool) -> (String, String) {
    let (canonical, _) =
        canonical_request(&cvm_headers(with_action), &sha256_hex(CVM_BODY.as_bytes()));
    let to_sign = string_to_sign(1_551_113_065, "2019-02-25", "cvm", &canonical);
    let key = derive_key(secret_key, "2019-02-25", "cvm");
    (sha256_hex(canonical.as_bytes()), signature(&key, &to_sign))
}

#[test]
fn body_hash_of_the_documented_body() {
    assert_eq!(
        sha256_hex(CVM_BODY.as_bytes()),
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    );
}

#[test]
fn vector_a_canonical_request_is_byte_exact() {
    let (canonical, signed) =
        canonical_request(&cvm_headers(false), &sha256_hex(CVM_BODY.as_bytes()));
    assert_eq!(
        canonical,
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    );
    assert_eq!(signed, "content-type;host");
}

#[test]
fn vector_a() {
    let (hash, sig) = sign_cvm("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", false);
    assert_eq!(
        hash,
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    );
    assert_eq!(
        sig,
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    );
}

#[test]
fn vector_b() {
    let (hash, sig) = sign_cvm("Gu5t9xGARNpq86cd98joQYCN3*******", false);
    assert_eq!(
        hash,
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    );
    assert_eq!(
        sig,
        "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    );
}

#[test]
fn vector_c() {
    let (hash, sig) = sign_cvm("Gu5t9xGARNpq86cd98joQYCN3*******", true);
    assert_eq!(
        hash,
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    );
    assert_eq!(
        sig,
        "be4f67d323c78ab9acb7395e43c0dbcf822a9cfac32fea2449a7bc7726b770a3"
    );
}

#[test]
fn vector_d() {
    let (hash, sig) = sign_cvm(&"*".repeat(32), true);
    assert_eq!(
        hash,
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    );
    assert_eq!(
        sig,
        "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    );
}

fn product_signer(headers: SignedHeaderSet) -> Signer {
    Signer::new(
        "AKIDEXAMPLE",
        SecretString::from("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE"),
        "intlpartnersmgt",
        headers,
    )
}

fn signature_of(authorization: &str) -> &str {
    authorization.rsplit_once("Signature=").unwrap().1
}

#[test]
fn product_vector_allocate_customer_credit() {
    let body = br#"{"ClientUin": 800000232018, "AddedCredit": 100.0, "Remark": "test"}"#;
    assert_eq!(
        sha256_hex(body),
        "0eee8cf598d7ffb8951559224f0834964686c8d014b5d79b0feeda6fdc72134b"
    );
    let req = RequestToSign {
        host: "intlpartnersmgt.intl.tencentcloudapi.com",
        action: "AllocateCustomerCredit",
        content_type: "application/json",
        timestamp: 1_700_000_000,
        payload: body,
    };
    let (canonical, _) = canonical_request(
        &[("content-type", req.content_type), ("host", req.host)],
        &sha256_hex(body),
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "5e0a1b7b3a32acb9a9387a8df59c9a2c3de5fd9df6278c911a1433ff0007ab99"
    );
    let auth = product_signer(SignedHeaderSet::ContentTypeHost).authorization(&req);
    assert_eq!(
        auth,
        "TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/intlpartnersmgt/tc3_request, \
         SignedHeaders=content-type;host, \
         Signature=1a3884c556a0d1c7b0079fca38d23c8eba25d3b2c1d2e14e4a2e6387de53c637"
    );
}

#[test]
fn product_vector_create_and_send_client_invitation_mail() {
    let body = br#"{"Email": "abc@gmail.com"}"#;
    assert_eq!(
        sha256_hex(body),
        "42fa25f4d43495e96686c85529dfcfbdb2af3fc0ce97c6481ffda275a5646a7d"
    );
    let req = RequestToSign {
        host: "intlpartnersmgt.intl.tencentcloudapi.com",
        action: "CreateAndSendClientInvitationMail",
        content_type: "application/json; charset=utf-8",
        timestamp: 1_700_000_000,
        payload: body,
    };
    let (canonical, signed) = canonical_request(
        &[
            ("content-type", req.content_type),
            ("host", req.host),
            ("x-tc-action", req.action),
        ],
        &sha256_hex(body),
    );
    assert_eq!(signed, "content-type;host;x-tc-action");
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "2bf484de73403d89e2efa0f3bce19e9c0116cad891fda7f7dcc230f04acf599d"
    );
    let signer = product_signer(SignedHeaderSet::ContentTypeHostAction);
    let auth = signer.authorization(&req);
    assert_eq!(
        signature_of(&auth),
        "a802f61fc0034e7bf810966e9455896dbaa41d31b22a6d2abaa2feaedcc5da94"
    );
    // The cached day key gives the same answer as a fresh derivation.
    assert_eq!(signer.authorization(&req), auth);
    assert_eq!(signer.authorization_uncached(&req), auth);
}

#[test]
fn day_key_cache_follows_the_utc_date() {
    let signer = product_signer(SignedHeaderSet::ContentTypeHost);
    let mut req = RequestToSign {
        host: "h",
        action: "A",
        content_type: "application/json",
        timestamp: 1_700_006_399, // 2023-11-14T23:59:59Z
        payload: b"{}",
    };
    let before = signer.authorization(&req);
    req.timestamp += 1; // midnight: a new date, a new key
    let after = signer.authorization(&req);
    assert!(before.contains("/2023-11-14/"));
    assert!(after.contains("/2023-11-15/"));
    assert_eq!(after, signer.authorization_uncached(&req));
}

#[test]
fn utc_dates() {
    assert_eq!(utc_date(0).unwrap(), "1970-01-01");
    assert_eq!(utc_date(1_551_113_065).unwrap(), "2019-02-25");
    assert_eq!(utc_date(951_782_400).unwrap(), "2000-02-29");
    assert_eq!(utc_date(-1).unwrap(), "1969-12-31");
    assert_eq!(utc_date(i64::MAX), None);
}

#[test]
fn authorization_round_trips_through_the_parser() {
    let auth = authorization(
        "AKID",
        "2023-11-14",
        "intlpartnersmgt",
        "content-type;host",
        "ab12",
    );
    let parsed = parse_authorization(&auth).unwrap();
    assert_eq!(parsed.secret_id, "AKID");
    assert_eq!(parsed.date, "2023-11-14");
    assert_eq!(parsed.service, "intlpartnersmgt");
    assert_eq!(parsed.signed_headers, ["content-type", "host"]);
    assert_eq!(parsed.signature, "ab12");
    assert_eq!(parse_authorization("Bearer x"), None);
    assert_eq!(
        parse_authorization("TC3-HMAC-SHA256 Credential=a/b/c/d, SignedHeaders=x, Signature=y"),
        None
    );
}
