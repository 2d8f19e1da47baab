//! The upstream: Tencent Cloud API 3.0, product `intlpartnersmgt`, version 2022-09-28.
//!
//! [`sign`] is the pure TC3 signature (shared with the sandbox's verifier), [`actions`] the typed
//! requests and answers, [`error`] what Tencent's error codes mean to the gateway, [`wire`] the
//! connections (ready before a quota slot, never after), and [`client`] the call: quota,
//! signing, timeouts, the narrow retry policy and answer parsing.

pub mod actions;
pub mod client;
pub mod error;
pub mod sign;
pub mod wire;

/// Service name in the credential scope.
pub const SERVICE: &str = "intlpartnersmgt";
/// API version sent as `X-TC-Version`.
pub const VERSION: &str = "2022-09-28";
/// The body's media type, sent and signed byte for byte.
pub const CONTENT_TYPE: &str = "application/json";

pub use client::{Answer, CallContext, Priority, TencentClient, summary};
pub use error::{CallError, Effect, ErrorClass, UpstreamError};
