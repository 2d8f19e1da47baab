//! partner-gateway: a REST gateway in front of the Tencent Cloud International partner API.
//!
//! Internal frontends and services call friendly routes; the gateway validates the input, keeps
//! the whole fleet within Tencent's per-action quota, signs with TC3-HMAC-SHA256, forwards, maps
//! the answer to a clear HTTP response (RFC 9457 problems on failure), and logs what happened.
//!
//! The house is one-way: each layer below uses only its own layer and those above it in this
//! list (bottom first), never one further down; `tests/architecture.rs` holds the same list and
//! fails on any import that points up.
//!
//! | layer | modules | role |
//! |---|---|---|
//! | values | [`domain`], [`clock`], [`env`] | newtypes that parse (`Email`, `ClientUin`, `CreditAmount`, `Remark`, `Scope`); time; every environment variable name |
//! | settings, records | [`config`], [`telemetry`], [`metrics`], [`readiness`], `context`, `audit` | typed settings and credentials; logs; the metric catalog; what `/readyz` answers from; the request's id and deadline, and the summaries handed forward to the access log; the audit line of every allocation |
//! | Redis | [`redis_link`] | the shared connection, whether it answers, its own `LinkError` |
//! | credentials | [`credentials`] | the SDKs' chain of sources (environment, profile file, CVM role), kept current in the background |
//! | shared state | [`store`], [`quota`] | idempotency key states and cooldowns; the reservation-log limiter, in-process and in Redis |
//! | upstream | [`tencent`] | signing, typed actions, `CallError` and its one classification (`Effect`), the wire |
//! | errors | [`problem`] | `ApiError` and its problem+json; `problem/from_call.rs` is where a Tencent error code becomes an HTTP status |
//! | rules | [`idempotency`], [`credit`], [`auth`], [`reads`] | Idempotency-Key claims and replays; allocations applied exactly once; API keys, JWTs, per-caller rates; reads batched, coalesced and cached |
//! | API surface | `openapi`, `state`, [`routes`] | the document; `AppState`; one module per resource, and the extractors (`routes/extract.rs`) |
//! | server | [`middleware`], [`app`], `serve` | every layer in order; wiring and graceful shutdown; the accept loop with its timeouts and cap |
//! | edges | [`sandbox`], [`cli`] | the upstream simulator (and its embedded start); the commands |
#![forbid(unsafe_code)]

pub mod app;
pub(crate) mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod context;
pub mod credentials;
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
pub mod reads;
pub mod redis_link;
pub mod routes;
pub mod sandbox;
pub(crate) mod serve;
pub(crate) mod state;
pub mod store;
pub mod telemetry;
pub mod tencent;
