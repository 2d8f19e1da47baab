//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, as pure functions.
//!
//! The gateway signs with [`Signer`]; the sandbox verifies with the same functions, so the two can
//! only agree when both follow the published algorithm (the unit tests pin it to Tencent's own
//! vectors). Nothing here does I/O or reads a clock: the timestamp is an input.

use std::sync::Mutex;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// The algorithm name, first word of the `Authorization` header and of the string to sign.
pub const ALGORITHM: &str = "TC3-HMAC-SHA256";
/// Last element of the credential scope.
const TERMINATOR: &str = "tc3_request";

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The UTC date (`YYYY-MM-DD`) of a Unix timestamp, as used in the credential scope.
/// `None` for timestamps outside the years 0..=9999.
pub fn utc_date(timestamp: i64) -> Option<String> {
    let days = timestamp.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (0..=9999)
        .contains(&y)
        .then(|| format!("{y:04}-{m:02}-{d:02}"))
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The canonical request of a `POST /` call and its signed-header list.
///
/// `headers` are the signed headers as sent; names and values are lower-cased and trimmed, and
/// sorted by name, exactly as Tencent's verifier rebuilds them.
pub fn canonical_request(headers: &[(&str, &str)], payload_hash: &str) -> (String, String) {
    let mut canonical: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    canonical.sort();
    let signed_headers = canonical
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut text = String::with_capacity(256);
    text.push_str("POST\n/\n\n");
    for (name, value) in &canonical {
        text.push_str(name);
        text.push(':');
        text.push_str(value);
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&signed_headers);
    text.push('\n');
    text.push_str(payload_hash);
    (text, signed_headers)
}

/// The string to sign for a canonical request.
pub fn string_to_sign(
    timestamp: i64,
    date: &str,
    service: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/{TERMINATOR}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The derived signing key: depends only on (secret key, date, service), so it can be kept for a day.
pub fn derive_key(secret_key: &str, date: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = hmac_sha256(&k_date, service.as_bytes());
    hmac_sha256(&k_service, TERMINATOR.as_bytes())
}

/// Lowercase hex signature of `string_to_sign` with a derived key.
pub fn signature(derived_key: &[u8; 32], string_to_sign: &str) -> String {
    hex::encode(hmac_sha256(derived_key, string_to_sign.as_bytes()))
}

/// The `Authorization` header value.
pub fn authorization(
    secret_id: &str,
    date: &str,
    service: &str,
    signed_headers: &str,
    signature: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={secret_id}/{date}/{service}/{TERMINATOR}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

/// An `Authorization` header taken apart, for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedAuthorization {
    pub secret_id: String,
    pub date: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `TC3-HMAC-SHA256 Credential=ID/DATE/SERVICE/tc3_request, SignedHeaders=a;b, Signature=HEX`.
pub fn parse_authorization(value: &str) -> Option<ParsedAuthorization> {
    let rest = value.strip_prefix(ALGORITHM)?.strip_prefix(' ')?;
    let mut credential = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(", ") {
        let (key, val) = part.split_once('=')?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => sig = Some(val),
            _ => return None,
        }
    }
    let mut scope = credential?.splitn(4, '/');
    let (secret_id, date, service, terminator) =
        (scope.next()?, scope.next()?, scope.next()?, scope.next()?);
    if terminator != TERMINATOR || secret_id.is_empty() {
        return None;
    }
    Some(ParsedAuthorization {
        secret_id: secret_id.to_owned(),
        date: date.to_owned(),
        service: service.to_owned(),
        signed_headers: signed?.split(';').map(str::to_owned).collect(),
        signature: sig?.to_owned(),
    })
}

/// Which headers a request signs. The SDKs sign `content-type;host`; Tencent's docs also sign the
/// action, which binds the signature to the action as well as to the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedHeaderSet {
    ContentTypeHost,
    ContentTypeHostAction,
}

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    pub host: &'a str,
    pub action: &'a str,
    pub content_type: &'a str,
    pub timestamp: i64,
    pub payload: &'a [u8],
}

/// Signs requests for one credential and one service, caching the derived key for the current
/// UTC day (it is three HMACs that only change at midnight).
pub struct Signer {
    secret_id: String,
    secret_key: SecretString,
    service: String,
    headers: SignedHeaderSet,
    day_key: Mutex<Option<(String, [u8; 32])>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"[REDACTED]")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(
        secret_id: impl Into<String>,
        secret_key: SecretString,
        service: impl Into<String>,
        headers: SignedHeaderSet,
    ) -> Self {
        Self {
            secret_id: secret_id.into(),
            secret_key,
            service: service.into(),
            headers,
            day_key: Mutex::new(None),
        }
    }

    /// The `Authorization` header value for `req`.
    ///
    /// # Panics
    /// When `req.timestamp` is outside the years 0..=9999 (a clock far off; not a caller input).
    pub fn authorization(&self, req: &RequestToSign<'_>) -> String {
        let date = utc_date(req.timestamp).expect("timestamp within years 0..=9999");
        let payload_hash = sha256_hex(req.payload);
        let mut headers = vec![("content-type", req.content_type), ("host", req.host)];
        if self.headers == SignedHeaderSet::ContentTypeHostAction {
            headers.push(("x-tc-action", req.action));
        }
        let (canonical, signed_headers) = canonical_request(&headers, &payload_hash);
        let to_sign = string_to_sign(req.timestamp, &date, &self.service, &canonical);
        let key = self.key_for(&date);
        let signature = signature(&key, &to_sign);
        authorization(
            &self.secret_id,
            &date,
            &self.service,
            &signed_headers,
            &signature,
        )
    }

    fn key_for(&self, date: &str) -> [u8; 32] {
        let mut cached = self.day_key.lock().unwrap_or_else(|e| e.into_inner());
        match &*cached {
            Some((day, key)) if day == date => *key,
            _ => {
                let key = derive_key(self.secret_key.expose_secret(), date, &self.service);
                *cached = Some((date.to_owned(), key));
                key
            }
        }
    }

    /// The signature without the day-key cache, for the benchmark that measures what it saves.
    pub fn authorization_uncached(&self, req: &RequestToSign<'_>) -> String {
        *self.day_key.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.authorization(req)
    }
}

#[cfg(test)]
mod tests {
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
}
