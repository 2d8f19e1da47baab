//! Every problem type the gateway answers, with its stable slug, status, title and page text.

use http::StatusCode;

macro_rules! problem_types {
    ($($variant:ident => $slug:literal, $status:literal, $title:literal, $meaning:literal, $todo:literal;)*) => {
        /// Every kind of problem the gateway answers. The `type` URI, `title` and default status
        /// of each never change: callers may match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemType { $($variant,)* }

        impl ProblemType {
            pub const ALL: &'static [ProblemType] = &[$(Self::$variant,)*];

            /// The last segment of the `type` URI, e.g. `quota-exceeded`.
            pub fn slug(self) -> &'static str { match self { $(Self::$variant => $slug,)* } }
            pub fn title(self) -> &'static str { match self { $(Self::$variant => $title,)* } }
            pub fn status(self) -> StatusCode {
                match self { $(Self::$variant => StatusCode::from_u16($status).expect("valid status"),)* }
            }
            /// What the problem means, for its page.
            pub fn meaning(self) -> &'static str { match self { $(Self::$variant => $meaning,)* } }
            /// What a caller should do about it, for its page.
            pub fn what_to_do(self) -> &'static str { match self { $(Self::$variant => $todo,)* } }
        }
    };
}

problem_types! {
    MalformedRequest => "malformed-request", 400, "Malformed request",
        "The body is not valid JSON, or a required header is missing or malformed.",
        "Send a JSON object matching the route's schema (see /docs).";
    UnsupportedMediaType => "unsupported-media-type", 415, "Unsupported media type",
        "The request body was not sent as application/json.",
        "Send the body with Content-Type: application/json.";
    PayloadTooLarge => "payload-too-large", 413, "Payload too large",
        "The request body is larger than the gateway accepts (server.max_body_bytes).",
        "Send a smaller body; these routes need only a few hundred bytes.";
    ValidationFailed => "validation-failed", 422, "Validation failed",
        "One or more fields are invalid. Nothing was sent to Tencent Cloud.",
        "Fix the fields listed in `errors` and send the request again.";
    NotFound => "not-found", 404, "Not found",
        "No route matches this path.",
        "Check the path against the API document at /openapi.json.";
    MethodNotAllowed => "method-not-allowed", 405, "Method not allowed",
        "The route exists but does not accept this HTTP method.",
        "Use the method listed for the route in /openapi.json.";
    Unauthenticated => "unauthenticated", 401, "Authentication required",
        "The request carries no credential the gateway accepts: no Authorization header, not `Bearer <credential>`, an unknown API key, or a token that is expired, from another issuer or audience, or signed by an untrusted key.",
        "Send `Authorization: Bearer <API key or token>` with a valid credential; the WWW-Authenticate header says what was wrong.";
    InsufficientScope => "insufficient-scope", 403, "Insufficient scope",
        "The caller is authenticated but lacks the scope this route needs (invitations:send or credit:allocate).",
        "Ask the gateway's operators for a credential with that scope.";
    CallerRateLimited => "caller-rate-limited", 429, "Caller rate limit",
        "This caller sent more requests than its own per-caller rate allows (auth.caller_requests_per_minute), which keeps one caller from taking the whole Tencent quota from the others. Nothing was sent to Tencent Cloud.",
        "Retry after the number of seconds in the Retry-After header, and spread your requests.";
    IdempotencyKeyRequired => "idempotency-key-required", 400, "Idempotency-Key required",
        "This route needs an Idempotency-Key header (1 to 255 visible ASCII characters), or the one sent is malformed. The key names one intended operation, so a retry after a lost answer cannot apply it twice.",
        "Generate a unique key (a UUID) per intended allocation, send it, and send the same key again on every retry of that allocation.";
    IdempotencyKeyInUse => "idempotency-key-in-use", 409, "Idempotency-Key in use",
        "A request with this Idempotency-Key is still being processed.",
        "Retry with the same key after a moment; you will get the first request's answer.";
    IdempotencyKeyReused => "idempotency-key-reused", 422, "Idempotency-Key reused",
        "This Idempotency-Key was already used for a different request (another customer, amount or remark).",
        "Use a new key for a new intent; reuse a key only to retry exactly the same request.";
    StoreUnavailable => "store-unavailable", 503, "Idempotency store unavailable",
        "The gateway cannot record the idempotency key right now, and never allocates credit without that record. Nothing was sent to Tencent Cloud.",
        "Retry after the number of seconds in the Retry-After header.";
    QuotaExceeded => "quota-exceeded", 429, "Quota exceeded",
        "Tencent Cloud admits only a fixed number of calls per second for this action, shared by every caller of this gateway. The next free slot is further away than the gateway lets a call wait. Nothing was sent to Tencent Cloud.",
        "Retry after the number of seconds in the Retry-After header.";
    UpstreamRateLimited => "upstream-rate-limited", 429, "Upstream rate limit",
        "Tencent Cloud refused the call with RequestLimitExceeded even after the gateway retried; another client may be using the same partner account. The call was not executed.",
        "Retry after the number of seconds in the Retry-After header.";
    MailCooldown => "invitation-cooldown", 429, "Invitation cooldown",
        "An invitation was sent to this address less than 180 seconds ago; Tencent Cloud allows one per address every 180 seconds. No mail was sent.",
        "Retry after the number of seconds in the Retry-After header.";
    UpstreamUnavailable => "upstream-unavailable", 503, "Tencent Cloud is busy",
        "Tencent Cloud answered that the service is busy or unavailable. The call was not executed.",
        "Retry after the number of seconds in the Retry-After header.";
    UpstreamRejectedInput => "upstream-rejected-input", 422, "Rejected by Tencent Cloud",
        "Tencent Cloud rejected a parameter; its message is in `detail` and its code in `upstreamCode`.",
        "Correct the input as the message says. If the input looks right, report it with the upstreamRequestId.";
    InsufficientCredit => "insufficient-credit", 422, "Insufficient partner credit",
        "The partner account does not have enough allocable credit for this allocation. Nothing was allocated.",
        "Allocate a smaller amount, or raise the partner account's credit with Tencent Cloud first.";
    OperationRefused => "operation-refused", 422, "Refused by Tencent Cloud",
        "Tencent Cloud refused the operation in the account's current state (FailedOperation), for example an allocation that would take a customer's credit below 0; its message is in `detail`. Nothing was applied.",
        "Change the request (a smaller amount, say) or the account's state first; retrying the same request gets the same answer.";
    EmailAlreadyRegistered => "email-already-registered", 409, "E-mail already registered",
        "This address already belongs to a Tencent Cloud account, so it cannot be invited.",
        "Ask the customer for their account id and manage them through it instead.";
    CustomerNotAuthorized => "customer-not-authorized", 403, "Not your customer",
        "Tencent Cloud says the partner account may not act on this customer (for example UnauthorizedOperation.UinNoAuth).",
        "Check the customer UIN; only customers bound to this partner account can be managed.";
    UpstreamAuthFailed => "upstream-auth-failed", 502, "Gateway credentials rejected",
        "Tencent Cloud rejected the gateway's own API credentials (AuthFailure). The call was not executed. Operators are alerted through /readyz.",
        "Nothing to change on your side; retry later. Operators: check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY.";
    UpstreamError => "upstream-error", 502, "Upstream error",
        "Tencent Cloud answered with an error the gateway cannot map, a non-200 status, or an answer it could not read.",
        "Retry later; if it persists, report it with the requestId and upstreamRequestId.";
    UpstreamTimeout => "upstream-timeout", 504, "Upstream timeout",
        "Tencent Cloud did not answer in time.",
        "Retry later. For invitations a retry may send a second mail.";
    CreditOutcomeUnknown => "credit-outcome-unknown", 502, "Credit outcome unknown",
        "The allocation may or may not have been applied: the request may have reached Tencent Cloud, but no definite answer came back. The gateway never retries it blindly.",
        "Retry with the same Idempotency-Key until you get a definite answer: the gateway looks the allocation up in Tencent's history and answers with its result, or sends it again once it is known not to have been applied. Never retry with a new key.";
    RequestTimeout => "request-timeout", 504, "Request timeout",
        "The gateway could not finish the request within its deadline (server.request_timeout_ms), for example because the request body arrived too slowly.",
        "Retry; send the body promptly.";
    Internal => "internal", 500, "Internal error",
        "The gateway failed unexpectedly. The failure is logged with the request id.",
        "Retry; if it persists, report the requestId.";
}

impl ProblemType {
    /// The stable relative URI callers match on, e.g. `/problems/quota-exceeded`.
    pub fn uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.slug() == slug)
    }
}
