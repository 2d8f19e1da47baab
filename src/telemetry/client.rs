//! The trace exporter's HTTP client: the gateway's own reqwest (rustls, the system's roots, the
//! process's proxy settings) behind the exporter's `HttpClient` trait, run on the export thread's
//! runtime. Answers are capped, and errors never carry the URL (it may hold user info).

use bytes::Bytes;

/// The longest a collector's answer may be (it is a few bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends the exporter's requests.
#[derive(Debug)]
pub struct Exporting(reqwest::Client);

impl Exporting {
    pub fn new(client: reqwest::Client) -> Self {
        Self(client)
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Exporting {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let request = reqwest::Request::try_from(request).map_err(reqwest::Error::without_url)?;
        let mut response = self
            .0
            .execute(request)
            .await
            .map_err(reqwest::Error::without_url)?;
        let mut answer = http::Response::builder().status(response.status());
        if let Some(headers) = answer.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(reqwest::Error::without_url)?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(Box::new(opentelemetry_http::ResponseBodyTooLarge::new()));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(answer.body(Bytes::from(body))?)
    }
}
