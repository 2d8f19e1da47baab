//! Every environment variable the gateway reads, in one greppable place.

/// Tencent Cloud API key id (the name the official SDKs use).
pub const SECRET_ID: &str = "TENCENTCLOUD_SECRET_ID";
/// Tencent Cloud API secret key.
pub const SECRET_KEY: &str = "TENCENTCLOUD_SECRET_KEY";
/// Optional temporary (STS) token, sent as `X-TC-Token` (the CLI's name).
pub const TOKEN: &str = "TENCENTCLOUD_TOKEN";
/// The same token under the Node.js SDK's name, read when `TENCENTCLOUD_TOKEN` is not set.
pub const SESSION_TOKEN: &str = "TENCENTCLOUD_SESSION_TOKEN";
/// A profile file to read credentials from, before `~/.tencentcloud/credentials`.
/// (Each credential variable above may also be given as `NAME_FILE`: a file holding it.)
pub const CREDENTIALS_FILE: &str = "TENCENTCLOUD_CREDENTIALS_FILE";
/// TKE workload identity (OIDC): the region STS is asked in.
pub const TKE_REGION: &str = "TKE_REGION";
/// TKE workload identity: the CAM identity provider's name.
pub const TKE_PROVIDER_ID: &str = "TKE_PROVIDER_ID";
/// TKE workload identity: the file the kubelet keeps the pod's web-identity token (a JWT) in.
pub const TKE_WEB_IDENTITY_TOKEN_FILE: &str = "TKE_WEB_IDENTITY_TOKEN_FILE";
/// TKE workload identity: the CAM role assumed.
pub const TKE_ROLE_ARN: &str = "TKE_ROLE_ARN";
/// Prefix of configuration overrides: `GATEWAY__SECTION__KEY`.
pub const CONFIG_PREFIX: &str = "GATEWAY";
/// Separator between prefix, section and key in configuration overrides.
pub const CONFIG_SEPARATOR: &str = "__";
/// Log filter in `tracing_subscriber::EnvFilter` syntax; overrides `log.level`.
pub const LOG_FILTER: &str = "RUST_LOG";

/// The Redis URL, used when `store.redis_url` is not set.
pub const REDIS_URL: &str = "REDIS_URL";
