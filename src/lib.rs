//! partner-gateway: a REST gateway in front of the Tencent Cloud International partner API.
//!
//! Internal frontends and services call friendly routes; the gateway validates the input, keeps
//! the whole fleet within Tencent's per-action quota, signs with TC3-HMAC-SHA256, forwards, maps
//! the answer to a clear HTTP response (RFC 9457 problems on failure), and logs what happened.
//!
//! Data flows one way: route → domain types → quota → tencent client → problem/response.
//!
//! | module | role |
//! |---|---|
//! | [`cli`] | the `partner-gateway` commands |
//! | [`config`] | typed settings (files + `GATEWAY__…` variables) and credentials |
//! | [`env`] | every environment variable name |
//! | [`app`] | router, middleware, graceful shutdown |
//! | [`serve`] | the accept loop: header and idle timeouts, the connection cap, draining |
//! | [`state`] | `AppState`: what handlers share |
//! | [`routes`] | one module per resource; the extractors |
//! | [`auth`] | API keys, JWTs, scopes, per-caller rates |
//! | [`audit`] | the audit record of every credit allocation |
//! | [`credit`] | allocations applied exactly once: the state machine, markers, history search |
//! | [`idempotency`], [`store`] | Idempotency-Key records, invitation cooldowns, their store |
//! | [`domain`] | newtypes that parse: `Email`, `ClientUin`, `CreditAmount`, `Remark` |
//! | [`problem`] | the one HTTP error type and its problem+json rendering |
//! | [`quota`] | the reservation-log limiter: in-process and in Redis |
//! | [`redis_link`] | the shared Redis connection and whether it answers |
//! | [`tencent`] | signing, typed actions, error codes, transport |
//! | [`sandbox`] | the upstream simulator |
//! | [`openapi`] | the OpenAPI document: shared problem responses, headers |
//! | [`health`], [`metrics`], [`context`], [`telemetry`], [`clock`] | cross-cutting pieces |
#![forbid(unsafe_code)]

pub mod app;
pub(crate) mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod context;
pub mod credit;
pub mod domain;
pub(crate) mod env;
pub mod idempotency;
pub mod metrics;
pub mod middleware;
pub(crate) mod openapi;
pub mod problem;
pub mod quota;
pub mod readiness;
pub mod redis_link;
pub mod routes;
pub mod sandbox;
pub(crate) mod serve;
pub(crate) mod state;
pub mod store;
pub mod telemetry;
pub mod tencent;
