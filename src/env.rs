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

/// OpenTelemetry: where traces go (OTLP/HTTP); `/v1/traces` is appended. Traces are exported
/// only when this or [`OTEL_TRACES_ENDPOINT`] is set. (The exporter reads the headers and the
/// compression itself, after the gateway checked them; the SDK reads `OTEL_TRACES_SAMPLER(_ARG)`,
/// `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`.)
pub const OTEL_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// OpenTelemetry: where traces go, used as given; wins over [`OTEL_ENDPOINT`].
pub const OTEL_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// OpenTelemetry: `true` turns every signal off.
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// OpenTelemetry: `otlp` (the default) or `none`.
pub const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
/// OpenTelemetry: `http/protobuf` (the default) or `http/json`; `grpc` is refused.
pub const OTEL_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
/// OpenTelemetry: the protocol for traces; wins over [`OTEL_PROTOCOL`].
pub const OTEL_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
/// OpenTelemetry: headers sent with every export (`key=value,…`; a collector's key: never logged).
pub const OTEL_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// OpenTelemetry: headers for traces; wins over [`OTEL_HEADERS`].
pub const OTEL_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// OpenTelemetry: `gzip` or `none`, for every signal.
pub const OTEL_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
/// OpenTelemetry: `gzip` or `none`, for traces; wins over [`OTEL_COMPRESSION`].
pub const OTEL_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
/// OpenTelemetry: the export's timeout in ms (traces-specific, then general; 10000 by default).
pub const OTEL_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// OpenTelemetry: the export's timeout in ms, for every signal.
pub const OTEL_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// OpenTelemetry span queue: spans waiting at most.
pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// OpenTelemetry span queue: spans per export at most.
pub const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
/// OpenTelemetry span queue: the longest a span waits for its batch, in ms.
pub const OTEL_BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// OpenTelemetry span queue: the longest one export may take, in ms.
pub const OTEL_BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
