//! `Idempotency-Key` (IETF httpapi draft): parsing, scoping by caller, request fingerprints,
//! the life of a key ([`Keys`]: begin → send | replay | settle; finish), and capturing and
//! replaying stored answers.
//!
//! A key's record goes:
//!
//! ```text
//!  (none) --begin--> in_flight --finish(definite answer)--> completed --(TTL)--> (none)
//!                        |  \--finish(not executed)--> (none): a retry simply sends again
//!                        \--finish(credit: may have applied)--> unknown --settle--> completed
//!                                                                         \--> retryable --begin--> in_flight
//! ```
//!
//! `begin` creates `in_flight` only if no record exists (atomically, in Redis too), so one key
//! makes one upstream call however many requests carry it. An `in_flight` record older than any
//! request can live was left by a replica that died: it is taken over (credit adopts it as
//! `unknown`, see [`crate::credit`]). A create whose answer was lost (a Redis timeout) is checked
//! by reading the key back: a claimant recognises its own record by its unique `claim` id.

mod claim;

pub use claim::{Begin, Keys, store_problem};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use crate::problem::{ApiError, ProblemType};
use crate::store::StoredResponse;

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";
/// The most a stored answer may weigh; the gateway's answers are a few hundred bytes.
const MAX_STORED_BODY: usize = 64 * 1024;

/// A key as the caller sent it: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Option<Self> {
        ((1..=255).contains(&raw.len()) && raw.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads the header: `Ok(None)` when absent and optional, a 400 problem when required and
    /// absent or when malformed.
    pub fn from_headers(headers: &HeaderMap, required: bool) -> Result<Option<Self>, ApiError> {
        let problem = |detail: &str| ApiError::new(ProblemType::IdempotencyKeyRequired, detail);
        match headers.get(HEADER) {
            None if required => Err(problem(
                "this route needs an Idempotency-Key header: a unique id per intended allocation",
            )),
            None => Ok(None),
            Some(value) => value
                .to_str()
                .ok()
                .and_then(Self::parse)
                .map(Some)
                .ok_or_else(|| {
                    problem("Idempotency-Key must be 1 to 255 visible ASCII characters")
                }),
        }
    }

    /// The store key: a key means something only for one caller (its namespaced id, e.g.
    /// `key:billing` or `jwt:ISSUER#SUB`) on one route.
    pub fn scoped(&self, caller_id: &str, route: &str) -> String {
        format!(
            "idem:{route}:{}:{}",
            hex::encode(Sha256::digest(caller_id.as_bytes())),
            self.0
        )
    }
}

/// A fingerprint of the request's meaning (route and parsed values, so `10` and `10.0` agree).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Turns a response into what is stored, and gives the response back unchanged.
pub async fn capture(response: Response) -> (StoredResponse, Response) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_STORED_BODY)
        .await
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| {
            matches!(
                name.as_str(),
                "content-type" | "retry-after" | "www-authenticate"
            )
        })
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let stored = StoredResponse {
        status: parts.status.as_u16(),
        headers,
        body: bytes.to_vec(),
    };
    (stored, Response::from_parts(parts, Body::from(bytes)))
}

/// The stored answer again, marked `Idempotent-Replayed: true`.
pub fn replay(stored: &StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body.clone()));
    *response.status_mut() =
        http::StatusCode::from_u16(stored.status).unwrap_or(http::StatusCode::OK);
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("0190f0c2-7b3a-7cc1").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        for bad in ["", "has space", "tab\t", "ünicode", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn scoping_separates_callers_and_routes() {
        let key = IdempotencyKey::parse("k1").unwrap();
        assert_ne!(key.scoped("alice", "credit"), key.scoped("bob", "credit"));
        assert_ne!(
            key.scoped("alice", "credit"),
            key.scoped("alice", "invitations")
        );
    }

    #[test]
    fn fingerprints_separate_parts() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["a", "b"]), fingerprint(&["a", "b"]));
    }

    #[tokio::test]
    async fn a_replay_is_byte_identical_and_marked() {
        let original = Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .header("x-request-id", "not-kept")
            .body(Body::from(r#"{"a":1}"#))
            .unwrap();
        let (stored, back) = capture(original).await;
        assert_eq!(back.status(), 201);
        let replayed = replay(&stored);
        assert_eq!(replayed.headers()[REPLAYED], "true");
        assert!(replayed.headers().get("x-request-id").is_none());
        let body = axum::body::to_bytes(replayed.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"a":1}"#);
    }
}
