//! [`HttpProvider`]: the [`PaymentProvider`] adapter of the generic protocol
//! ([`crate::protocol`]) over HTTP/1.1 — the sandbox speaks it, and so can any provider
//! gateway that implements its messages (payment create and query, refund create and query,
//! and the two callbacks).

use std::time::Duration;

use async_trait::async_trait;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use oc_model::payment::{
    CallbackRefusal, PaymentProvider, ProviderCredentials, ProviderNotification,
    ProviderPaymentRequest, ProviderPaymentState, ProviderRefundReport, ProviderRefundRequest,
    RawCallback,
};
use oc_model::{Checkout, DomainError, DomainResult, PaymentId, ProviderName, RefundId};

use crate::protocol::{
    self, CreateAnswer, PaymentReport, QueryBody, RefundQueryBody, RefundReport,
};

/// How far the provider's answer's signing time may be from ours.
const ANSWER_WINDOW: time::Duration = time::Duration::minutes(5);

/// A provider speaking the generic protocol at `base_url`.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    name: ProviderName,
    base_url: String,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl HttpProvider {
    /// `name` as the order center knows it (`sandbox`), the provider's base URL
    /// (`http://127.0.0.1:8090`) and the time budget of one call.
    pub fn new(name: ProviderName, base_url: impl Into<String>, timeout: Duration) -> HttpProvider {
        HttpProvider {
            name,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> DomainError {
        DomainError::unavailable(format!("payment provider {}: {what}", self.name))
    }

    /// One signed call; the answer's signature verified before it is decoded.
    async fn call<B: Serialize, A: DeserializeOwned>(
        &self,
        credentials: &ProviderCredentials,
        path: &str,
        body: &B,
    ) -> DomainResult<A> {
        let body = serde_json::to_vec(body)
            .map_err(|e| DomainError::internal(format!("encode provider request: {e}")))?;
        let now = OffsetDateTime::now_utc();
        let mut request = hyper::Request::post(format!("{}{path}", self.base_url))
            .header(hyper::header::CONTENT_TYPE, "application/json");
        for (name, value) in protocol::sign(
            &credentials.account,
            credentials.secret(),
            now.unix_timestamp(),
            &body,
        ) {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| DomainError::internal(format!("provider request: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| self.unavailable(e))?;
            let status = response.status();
            let headers = protocol::header_map(response.headers());
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unavailable(e))?
                .to_bytes();
            Ok::<_, DomainError>((status, headers, bytes))
        };
        let (status, headers, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.unavailable("no answer in time"))??;
        if !status.is_success() {
            return Err(self.unavailable(format!(
                "answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            )));
        }
        protocol::verify(
            &headers,
            &bytes,
            credentials.secret(),
            OffsetDateTime::now_utc(),
            ANSWER_WINDOW,
        )
        .map_err(|refusal| self.unavailable(format!("answer refused: {refusal}")))?;
        serde_json::from_slice(&bytes).map_err(|e| self.unavailable(format!("answer: {e}")))
    }

    /// A refund create's or query's answer, if it is about `refund_id` of this account.
    fn refund_answer(
        &self,
        credentials: &ProviderCredentials,
        refund_id: RefundId,
        report: RefundReport,
    ) -> DomainResult<ProviderRefundReport> {
        if report.refund_id != refund_id || report.account != credentials.account {
            return Err(self.unavailable("answered about another refund"));
        }
        Ok(report.report())
    }
}

/// A callback's body, once its signature verifies with `credentials` and the account the
/// body names (`account_of`) is theirs: signed with one account's secret, a body cannot
/// speak for another's.
fn verified_callback<T: DeserializeOwned>(
    credentials: &ProviderCredentials,
    callback: &RawCallback,
    now: OffsetDateTime,
    window: time::Duration,
    account_of: impl Fn(&T) -> &String,
) -> Result<T, CallbackRefusal> {
    protocol::verify(
        &callback.headers,
        &callback.body,
        credentials.secret(),
        now,
        window,
    )?;
    let message: T = serde_json::from_slice(&callback.body)
        .map_err(|e| CallbackRefusal::Malformed(e.to_string()))?;
    if *account_of(&message) != credentials.account {
        return Err(CallbackRefusal::BadSignature);
    }
    Ok(message)
}

#[async_trait]
impl PaymentProvider for HttpProvider {
    fn name(&self) -> &ProviderName {
        &self.name
    }

    async fn create(
        &self,
        credentials: &ProviderCredentials,
        request: &ProviderPaymentRequest,
    ) -> DomainResult<Checkout> {
        let answer: CreateAnswer = self
            .call(credentials, "/v1/payments/create", request)
            .await?;
        Ok(Checkout {
            provider_txn_id: Some(answer.provider_txn_id),
            pay_url: Some(answer.pay_url),
            qr_payload: Some(answer.qr_payload),
        })
    }

    async fn query(
        &self,
        credentials: &ProviderCredentials,
        payment_id: PaymentId,
    ) -> DomainResult<ProviderPaymentState> {
        let report: PaymentReport = self
            .call(credentials, "/v1/payments/query", &QueryBody { payment_id })
            .await?;
        if report.payment_id != payment_id || report.account != credentials.account {
            return Err(self.unavailable("answered about another payment"));
        }
        report.state().map_err(|e| self.unavailable(e))
    }

    fn callback_account(&self, callback: &RawCallback) -> Option<String> {
        protocol::account_of(&callback.headers)
    }

    fn verify_callback(
        &self,
        credentials: &ProviderCredentials,
        callback: &RawCallback,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> Result<ProviderNotification, CallbackRefusal> {
        let report: PaymentReport =
            verified_callback(credentials, callback, now, window, |r: &PaymentReport| {
                &r.account
            })?;
        Ok(ProviderNotification {
            payment_id: report.payment_id,
            state: report.state().map_err(CallbackRefusal::Malformed)?,
        })
    }

    async fn refund(
        &self,
        credentials: &ProviderCredentials,
        request: &ProviderRefundRequest,
    ) -> DomainResult<ProviderRefundReport> {
        let report = self
            .call(credentials, "/v1/refunds/create", request)
            .await?;
        self.refund_answer(credentials, request.refund_id, report)
    }

    async fn refund_query(
        &self,
        credentials: &ProviderCredentials,
        refund_id: RefundId,
    ) -> DomainResult<ProviderRefundReport> {
        let report = self
            .call(
                credentials,
                "/v1/refunds/query",
                &RefundQueryBody { refund_id },
            )
            .await?;
        self.refund_answer(credentials, refund_id, report)
    }

    fn verify_refund_callback(
        &self,
        credentials: &ProviderCredentials,
        callback: &RawCallback,
        now: OffsetDateTime,
        window: time::Duration,
    ) -> Result<ProviderRefundReport, CallbackRefusal> {
        let report: RefundReport =
            verified_callback(credentials, callback, now, window, |r: &RefundReport| {
                &r.account
            })?;
        Ok(report.report())
    }
}
