//! TC3-HMAC-SHA256, the request signature of Tencent Cloud API 3.0, as pure functions.
//!
//! The gateway signs with [`Signer`]; the sandbox verifies with the same functions, so the two can
//! only agree when both follow the published algorithm (the unit tests pin it to Tencent's own
//! vectors). Nothing here does I/O or reads a clock: the timestamp is an input.

use parking_lot::Mutex;

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
            .field("secret_id", &crate::config::redact_id(&self.secret_id))
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
        let mut cached = self.day_key.lock();
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
        *self.day_key.lock() = None;
        self.authorization(req)
    }
}

#[cfg(test)]
mod tests;
