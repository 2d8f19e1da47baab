//! The OpenAPI 3.1 document: the routes' own annotations (registered through `utoipa-axum`, so
//! the document cannot drift from the router), the problem responses every forwarding route
//! shares, and the `X-Request-Id` header on every operation and response.

use std::collections::BTreeMap;

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, ContentBuilder, Header, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{IntoResponses, OpenApi};

use crate::domain::FieldError;
use crate::problem::{CONTENT_TYPE as PROBLEM, Problem};
use crate::readiness::Readiness;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "partner-gateway",
        description = "REST gateway to the Tencent Cloud International partner API (intlpartnersmgt 2022-09-28).\n\n\
                       Errors are RFC 9457 `application/problem+json`; each problem `type` is a page served by the gateway \
                       (`GET /problems/{type}`). Every response carries `X-Request-Id`.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "customers", description = "Invite customers, allocate and read their credit"),
        (name = "partner", description = "The partner's own account"),
        (name = "operations", description = "Liveness, readiness and metrics"),
        (name = "problems", description = "Pages explaining each problem type"),
    ),
    components(schemas(Problem, FieldError, Readiness))
)]
struct ApiDoc;

/// The whole document: the base above merged with the routes' paths.
pub fn document(routes: openapi::OpenApi) -> openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(routes);
    doc.components.get_or_insert_with(Default::default).add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key (services; `partner-gateway hash-key` makes one) or a JWT from the configured \
                     identity provider (users). Scopes: `invitations:send`, `credit:allocate`.",
                ))
                .build(),
        ),
    );
    for item in doc.paths.paths.values_mut() {
        for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
            add_request_id(operation);
        }
    }
    doc
}

fn string_schema(max_length: usize) -> RefOr<openapi::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max_length))
        .into()
}

fn integer_schema() -> RefOr<openapi::Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .into()
}

fn header(schema: RefOr<openapi::Schema>, description: &str) -> Header {
    let mut header = Header::new(schema);
    header.description = Some(description.to_owned());
    header
}

fn add_request_id(operation: &mut Operation) {
    operation.parameters.get_or_insert_with(Vec::new).push(
        ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Your id for this request. Used when it is 1–128 characters of A–Z a–z 0–9 . _ : -; \
                 anything else is replaced by a new UUID v7 (never rejected).",
            ))
            .schema(Some(RefOr::from(ObjectBuilder::new().schema_type(Type::String).build())))
            .build(),
    );
    for response in operation.responses.responses.values_mut() {
        if let RefOr::T(response) = response {
            response.headers.insert(
                "X-Request-Id".into(),
                header(
                    string_schema(128),
                    "The request id: yours if it was sane, otherwise a new UUID v7.",
                ),
            );
        }
    }
}

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

fn retry_after() -> Header {
    header(integer_schema(), "Seconds to wait before retrying.")
}

/// The problems every route that forwards to Tencent can answer.
pub struct ForwardingProblems;

impl IntoResponses for ForwardingProblems {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        let rows = [
            (
                "400",
                problem("`malformed-request`: the body is not valid JSON. `idempotency-key-required`: the Idempotency-Key is missing (credit) or malformed."),
            ),
            (
                "401",
                problem(
                    "`unauthenticated`: no credential, not `Bearer <credential>`, an unknown API key, or a token that is \
                     expired, for another issuer or audience, or signed by an untrusted key.",
                )
                .header("WWW-Authenticate", header(string_schema(512), "The Bearer challenge, with `error` and `error_description` for a rejected credential.")),
            ),
            ("413", problem("`payload-too-large`: the body is larger than `server.max_body_bytes`.")),
            ("415", problem("`unsupported-media-type`: the body was not sent as application/json.")),
            (
                "422",
                problem(
                    "`validation-failed`: a field breaks an input rule (listed in `errors`; nothing was sent to Tencent). \
                     `upstream-rejected-input`: Tencent rejected a parameter. `insufficient-credit` (credit): the partner lacks allocable credit. \
                     `operation-refused`: Tencent refused the operation in the account's current state (`FailedOperation`). \
                     `idempotency-key-reused`: the key was used for a different request.",
                ),
            ),
            (
                "429",
                problem(
                    "`quota-exceeded`: the next quota slot is beyond the wait budget; nothing was sent. \
                     `caller-rate-limited`: this caller is over its own rate. `upstream-rate-limited`: Tencent refused \
                     even after retries. `invitation-cooldown` (invitations): the address got a link less than 180 s ago.",
                )
                .header("Retry-After", retry_after())
                .header("RateLimit-Policy", header(string_schema(256), "IETF draft: the quota policy, e.g. `\"AllocateCustomerCredit\";q=5;w=1`."))
                .header("RateLimit", header(string_schema(256), "IETF draft: what is left, e.g. `\"AllocateCustomerCredit\";r=0;t=1`.")),
            ),
            ("500", problem("`internal`: the gateway failed unexpectedly; logged with the request id.")),
            (
                "502",
                problem(
                    "`upstream-error`: Tencent failed or answered something unreadable. `upstream-auth-failed`: Tencent rejected \
                     the gateway's credentials. `credit-outcome-unknown` (credit): the allocation may or may not have been applied.",
                ),
            ),
            (
                "503",
                problem("`upstream-unavailable`: Tencent is busy. `store-unavailable`: the idempotency store cannot record the key; nothing was sent.")
                    .header("Retry-After", retry_after()),
            ),
            (
                "504",
                problem(
                    "`upstream-timeout` or `request-timeout`: no answer in time. `credit-outcome-unknown` (credit): \
                     the allocation may or may not have been applied.",
                ),
            ),
        ];
        rows.into_iter()
            .map(|(status, response)| (status.to_owned(), response.build().into()))
            .collect()
    }
}
