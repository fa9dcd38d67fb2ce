//! [`HttpLogistics`]: the [`LogisticsProvider`] adapter of the generic pickup protocol
//! ([`crate::protocol`]) over HTTP/1.1 — the sandbox speaks it, and so can a carrier gateway.

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use oc_model::logistics::{LogisticsProvider, PickupRequest, Waybill};
use oc_model::{DomainError, DomainResult};

use crate::protocol::{HEADER_IDEMPOTENCY_KEY, WaybillAnswer};

/// A carrier speaking the generic protocol at `base_url`.
#[derive(Clone)]
pub struct HttpLogistics {
    base_url: String,
    token: Option<String>,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for HttpLogistics {
    // the token never prints
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpLogistics")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl HttpLogistics {
    /// The carrier at `base_url` (`http://127.0.0.1:8091`), its bearer token if it wants one,
    /// and the time budget of one call.
    pub fn new(base_url: impl Into<String>, token: Option<String>, timeout: Duration) -> Self {
        HttpLogistics {
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            token,
            timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn unavailable(what: impl std::fmt::Display) -> DomainError {
        DomainError::unavailable(format!("logistics provider: {what}"))
    }

    async fn call(
        &self,
        request: hyper::http::request::Builder,
        body: Vec<u8>,
    ) -> DomainResult<(StatusCode, Bytes)> {
        let mut request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| DomainError::internal(format!("logistics request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(Self::unavailable)?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(Self::unavailable)?
                .to_bytes();
            Ok::<_, DomainError>((status, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Self::unavailable("no answer in time"))?
    }

    fn answer(key: &str, status: StatusCode, bytes: &Bytes) -> DomainResult<Waybill> {
        let excerpt = || String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Self::unavailable(format!(
                "answered {status}: {}",
                excerpt()
            )));
        }
        if !status.is_success() {
            return Err(DomainError::invalid(
                "",
                format!(
                    "logistics provider refused the pickup ({status}): {}",
                    excerpt()
                ),
            ));
        }
        let answer: WaybillAnswer =
            serde_json::from_slice(bytes).map_err(|e| Self::unavailable(format!("answer: {e}")))?;
        if answer.idempotency_key != key {
            return Err(Self::unavailable("answered about another pickup"));
        }
        Ok(Waybill {
            waybill_no: answer.waybill_no,
            carrier: answer.carrier,
        })
    }
}

#[async_trait]
impl LogisticsProvider for HttpLogistics {
    fn name(&self) -> &str {
        "http"
    }

    async fn create_pickup(&self, request: &PickupRequest) -> DomainResult<Waybill> {
        let body = serde_json::to_vec(request)
            .map_err(|e| DomainError::internal(format!("encode pickup request: {e}")))?;
        let (status, bytes) = self
            .call(
                hyper::Request::post(format!("{}/v1/pickups", self.base_url))
                    .header(HEADER_IDEMPOTENCY_KEY, request.idempotency_key.as_str()),
                body,
            )
            .await?;
        Self::answer(&request.idempotency_key, status, &bytes)
    }

    async fn query_pickup(&self, idempotency_key: &str) -> DomainResult<Option<Waybill>> {
        let (status, bytes) = self
            .call(
                hyper::Request::get(format!("{}/v1/pickups/{idempotency_key}", self.base_url)),
                Vec::new(),
            )
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Self::answer(idempotency_key, status, &bytes).map(Some)
    }
}
