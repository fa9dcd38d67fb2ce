//! The sandbox provider (`ordercenter sandbox-pay`): a small HTTP server speaking the generic
//! protocol ([`crate::protocol`]) for the accounts of a secrets file, for demos and as the
//! external party of the tests. It keeps payments in memory, lets a "buyer" pay one
//! (`POST /sandbox/pay/{payment_id}`, optionally with another amount to provoke a mismatch),
//! sends the signed callback to the payment's `notify_url`, and can be told to misbehave as
//! real providers do (`PUT /sandbox/faults`): drop callbacks, delay them, send duplicates,
//! deliver a stale report after the fresh one (reorder), fail queries. Refunds of captured
//! payments are decided when they are submitted (succeeded, unless they exceed what is left of
//! the payment or the `fail_refunds` fault is on) and reported by a refund callback under the
//! same faults.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/payments/create`, `POST /v1/payments/query` | the protocol (signed) |
//! | `POST /v1/refunds/create`, `POST /v1/refunds/query` | the protocol (signed) |
//! | `GET /sandbox/refunds/{refund_id}` | the refund as the sandbox holds it |
//! | `POST /sandbox/pay/{payment_id}` | the buyer pays (body optional: `{"amount": {...}}`) |
//! | `GET /sandbox/pay/{payment_id}` | the payment as the sandbox holds it |
//! | `POST /sandbox/fail/{payment_id}` | the buyer's payment fails (body optional: `{"reason": "..."}`) |
//! | `GET`, `PUT /sandbox/faults` | the faults in force ([`Faults`]) |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use oc_model::payment::{ProviderCredentials, ProviderRefundStatus};
use oc_model::{Money, PaymentId, RefundId};

use crate::protocol::{
    self, CreateAnswer, CreateBody, PaymentReport, QueryBody, RefundBody, RefundQueryBody,
    RefundReport, ReportStatus,
};
use crate::sandbox_kit::{self, WithFaults, lock, problem};

/// How far a merchant request's signing time may be from the sandbox's clock.
const REQUEST_WINDOW: time::Duration = time::Duration::minutes(5);

/// Deliveries of one callback copy when the merchant does not answer 2xx (5xx or no answer).
const DELIVERY_ATTEMPTS: u32 = 3;

/// How the sandbox misbehaves. Default: it behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Send no callback at all (the merchant must find the payment by querying).
    pub drop_callbacks: bool,
    /// Wait this long before sending a callback.
    pub delay_ms: u64,
    /// Send this many extra copies of every callback, all at once.
    pub duplicates: u32,
    /// After the callback, deliver a stale one (the payment's earlier `pending` state).
    pub reorder: bool,
    /// Answer every query (payment and refund) 503.
    pub fail_queries: bool,
    /// Every refund attempt fails (as a provider refusing it would).
    pub fail_refunds: bool,
}

#[derive(Debug, Clone)]
struct HeldRefund {
    account: String,
    request: RefundBody,
    status: ProviderRefundStatus,
    reason: Option<String>,
}

impl HeldRefund {
    fn report(&self) -> RefundReport {
        RefundReport {
            account: self.account.clone(),
            refund_id: self.request.refund_id,
            payment_id: self.request.payment_id,
            attempt: self.request.attempt,
            status: self.status,
            amount: Some(self.request.amount),
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Held {
    account: String,
    request: CreateBody,
    provider_txn_id: String,
    status: ReportStatus,
    captured: Option<Money>,
    paid_at: Option<OffsetDateTime>,
    /// Why it failed (`failed`).
    reason: Option<String>,
}

impl Held {
    fn report(&self) -> PaymentReport {
        PaymentReport {
            account: self.account.clone(),
            payment_id: self.request.payment_id,
            status: self.status,
            provider_txn_id: Some(self.provider_txn_id.clone()),
            amount: self.captured,
            paid_at: self.paid_at,
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner {
    accounts: BTreeMap<String, ProviderCredentials>,
    public_url: String,
    payments: Mutex<BTreeMap<PaymentId, Held>>,
    refunds: Mutex<BTreeMap<RefundId, HeldRefund>>,
    refund_attempts: AtomicU64,
    faults: Mutex<Faults>,
    client: Client<HttpConnector, Full<Bytes>>,
    callbacks_sent: AtomicU64,
    callbacks_dropped: AtomicU64,
}

/// The sandbox provider. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

impl WithFaults for Sandbox {
    type Faults = Faults;

    fn faults(&self) -> &Mutex<Faults> {
        &self.inner.faults
    }
}

impl Sandbox {
    /// A sandbox for `accounts` (account name → credentials), whose pay URLs start with
    /// `public_url`.
    pub fn new(
        accounts: BTreeMap<String, ProviderCredentials>,
        public_url: impl Into<String>,
    ) -> Sandbox {
        Sandbox {
            inner: Arc::new(Inner {
                accounts,
                public_url: public_url.into().trim_end_matches('/').to_owned(),
                payments: Mutex::default(),
                refunds: Mutex::default(),
                refund_attempts: AtomicU64::new(0),
                faults: Mutex::default(),
                client: Client::builder(TokioExecutor::new()).build_http(),
                callbacks_sent: AtomicU64::new(0),
                callbacks_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// Serve on `listener` until the returned task is aborted; answers the bound address.
    pub async fn serve(
        accounts: BTreeMap<String, ProviderCredentials>,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<(Sandbox, SocketAddr, tokio::task::JoinHandle<()>)> {
        let address = listener.local_addr()?;
        let sandbox = Sandbox::new(accounts, format!("http://{address}"));
        let (address, task) = sandbox_kit::serve(listener, sandbox.router(), "sandbox provider")?;
        Ok((sandbox, address, task))
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/payments/create", post(create))
            .route("/v1/payments/query", post(query))
            .route("/v1/refunds/create", post(refund))
            .route("/v1/refunds/query", post(refund_query))
            .route("/sandbox/pay/{payment_id}", post(pay).get(show))
            .route("/sandbox/fail/{payment_id}", post(fail))
            .route("/sandbox/refunds/{refund_id}", get(show_refund))
            .route("/sandbox/faults", sandbox_kit::faults_route())
            .with_state(self.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
    }

    /// Callback copies sent (each duplicate and stale copy counted) and callbacks dropped.
    pub fn callbacks(&self) -> (u64, u64) {
        (
            self.inner.callbacks_sent.load(Ordering::Relaxed),
            self.inner.callbacks_dropped.load(Ordering::Relaxed),
        )
    }

    /// Refund attempts the sandbox decided (each retry after a failure counted).
    pub fn refund_attempts(&self) -> u64 {
        self.inner.refund_attempts.load(Ordering::Relaxed)
    }

    /// The buyer pays `payment_id` (`amount`: what is captured, default what was asked):
    /// the payment succeeds at the sandbox and its callback goes out as the faults say.
    /// `None` if the sandbox does not know the payment; paying twice changes nothing (the
    /// callback is sent again, as a provider's retry would be).
    pub fn pay(&self, payment_id: PaymentId, amount: Option<Money>) -> Option<PaymentReport> {
        self.buyer_step(
            payment_id,
            |held| {
                held.status = ReportStatus::Succeeded;
                held.captured = Some(amount.unwrap_or(held.request.amount));
                held.paid_at = Some(OffsetDateTime::now_utc());
                held.reason = None;
            },
            |report| PaymentReport {
                status: ReportStatus::Pending,
                amount: None,
                paid_at: None,
                ..report.clone()
            },
        )
    }

    /// The buyer's payment of `payment_id` fails (a declined card, a closed wallet order): the
    /// payment is `failed` at the sandbox and its callback goes out as the faults say. `None`
    /// if the sandbox does not know the payment. A payment already paid stays paid (its
    /// report is sent again); a failed one can still be paid later (a late success).
    pub fn fail(&self, payment_id: PaymentId, reason: &str) -> Option<PaymentReport> {
        self.buyer_step(
            payment_id,
            |held| {
                held.status = ReportStatus::Failed;
                held.reason = Some(reason.to_owned());
            },
            |report| PaymentReport {
                status: ReportStatus::Pending,
                reason: None,
                ..report.clone()
            },
        )
    }

    /// A buyer's step on `payment_id`: `change` the held payment unless it is already paid
    /// (a paid payment stays paid), then send its report with `stale` of it as the earlier
    /// copy, as the faults say. `None` if the sandbox does not know the payment.
    fn buyer_step(
        &self,
        payment_id: PaymentId,
        change: impl FnOnce(&mut Held),
        stale: impl FnOnce(&PaymentReport) -> PaymentReport,
    ) -> Option<PaymentReport> {
        let (report, notify_url) = {
            let mut payments = lock(&self.inner.payments);
            let held = payments.get_mut(&payment_id)?;
            if held.status != ReportStatus::Succeeded {
                change(held);
            }
            (held.report(), held.request.notify_url.clone())
        };
        let faults = lock(&self.inner.faults).clone();
        self.dispatch(notify_url, report.clone(), stale(&report), faults);
        Some(report)
    }

    /// A callback (`fresh`, signed for its account) under `faults`: dropped, or sent —
    /// delayed, duplicated, and with `reorder` the `stale` copy (the earlier `pending` state)
    /// after it. Payment and refund callbacks go out the same way.
    fn dispatch<T: Serialize + Signed>(
        &self,
        notify_url: String,
        fresh: T,
        stale: T,
        faults: Faults,
    ) {
        if faults.drop_callbacks {
            self.inner.callbacks_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let sandbox = self.clone();
        let fresh = Arc::new(fresh);
        tokio::spawn(async move {
            if faults.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
            }
            // the copies of a duplicated callback arrive at once, as concurrent retries do
            let mut copies = tokio::task::JoinSet::new();
            for _ in 0..=faults.duplicates {
                let (sandbox, url, fresh) = (sandbox.clone(), notify_url.clone(), fresh.clone());
                copies.spawn(async move { sandbox.send(&url, &*fresh).await });
            }
            while copies.join_next().await.is_some() {}
            if faults.reorder {
                sandbox.send(&notify_url, &stale).await;
            }
        });
    }

    /// Decide a submitted refund attempt: succeeded unless the fault says fail, or the
    /// payment is not captured here, or it exceeds what is left of the payment.
    fn decide_refund(&self, request: &RefundBody, account: &str, faults: &Faults) -> HeldRefund {
        self.inner.refund_attempts.fetch_add(1, Ordering::Relaxed);
        let captured = lock(&self.inner.payments)
            .get(&request.payment_id)
            .filter(|held| held.account == account && held.status == ReportStatus::Succeeded)
            .and_then(|held| held.captured);
        let refunded: i64 = lock(&self.inner.refunds)
            .values()
            .filter(|held| {
                held.request.payment_id == request.payment_id
                    && held.request.refund_id != request.refund_id
                    && held.status == ProviderRefundStatus::Succeeded
            })
            .map(|held| held.request.amount.minor)
            .sum();
        let reason = if faults.fail_refunds {
            Some("refused (sandbox fault fail_refunds)".to_owned())
        } else {
            match captured {
                None => Some("the payment is not captured".to_owned()),
                Some(captured) if captured.currency != request.amount.currency => {
                    Some("another currency than the payment's".to_owned())
                }
                Some(captured) if refunded + request.amount.minor > captured.minor => {
                    Some("exceeds what is left of the payment".to_owned())
                }
                Some(_) => None,
            }
        };
        HeldRefund {
            account: account.to_owned(),
            request: request.clone(),
            status: if reason.is_some() {
                ProviderRefundStatus::Failed
            } else {
                ProviderRefundStatus::Succeeded
            },
            reason,
        }
    }

    async fn send<T: Serialize + Signed>(&self, notify_url: &str, message: &T) {
        let Some(credentials) = self.inner.accounts.get(message.account()) else {
            return;
        };
        let Ok(body) = serde_json::to_vec(message) else {
            return;
        };
        for attempt in 1..=DELIVERY_ATTEMPTS {
            let mut request = hyper::Request::post(notify_url)
                .header(hyper::header::CONTENT_TYPE, "application/json");
            for (name, value) in protocol::sign(
                &credentials.account,
                credentials.secret(),
                OffsetDateTime::now_utc().unix_timestamp(),
                &body,
            ) {
                request = request.header(name, value);
            }
            let Ok(request) = request.body(Full::new(Bytes::from(body.clone()))) else {
                return;
            };
            self.inner.callbacks_sent.fetch_add(1, Ordering::Relaxed);
            match self.inner.client.request(request).await {
                Ok(response) if !response.status().is_server_error() => return,
                Ok(response) => {
                    tracing::debug!(status = %response.status(), attempt, "sandbox callback answered 5xx")
                }
                Err(error) => tracing::debug!(%error, attempt, "sandbox callback not delivered"),
            }
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
    }

    /// A signed message's account, verified; or the refusal to answer.
    fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<ProviderCredentials, Refused> {
        let headers = protocol::header_map(headers);
        let credentials = protocol::account_of(&headers)
            .and_then(|account| self.inner.accounts.get(&account).cloned())
            .ok_or_else(|| Refused::new(StatusCode::UNAUTHORIZED, "unknown account"))?;
        protocol::verify(
            &headers,
            body,
            credentials.secret(),
            OffsetDateTime::now_utc(),
            REQUEST_WINDOW,
        )
        .map_err(|refusal| Refused::new(StatusCode::UNAUTHORIZED, refusal.to_string()))?;
        Ok(credentials)
    }

    /// Whether queries are answered (the `fail_queries` fault answers them 503).
    fn queries_answer(&self) -> Result<(), Refused> {
        if lock(&self.inner.faults).fail_queries {
            return Err(Refused::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "queries fail (sandbox fault)",
            ));
        }
        Ok(())
    }
}

/// A protocol request refused (unsigned, malformed, or failed by a fault): the problem
/// answered instead.
struct Refused(Box<Response>);

impl Refused {
    fn new(status: StatusCode, detail: impl Into<String>) -> Refused {
        Refused(Box::new(problem(status, detail)))
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// A request's body as the protocol message `T`; 400 if it is not one.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refused> {
    serde_json::from_slice(body).map_err(|e| Refused::new(StatusCode::BAD_REQUEST, e.to_string()))
}

/// A message signed for the account it names (a callback is signed with that account's
/// secret).
trait Signed: Send + Sync + 'static {
    fn account(&self) -> &str;
}

impl Signed for PaymentReport {
    fn account(&self) -> &str {
        &self.account
    }
}

impl Signed for RefundReport {
    fn account(&self) -> &str {
        &self.account
    }
}

/// A JSON answer signed for `credentials`' account.
fn signed<T: Serialize>(credentials: &ProviderCredentials, value: &T) -> Response {
    let Ok(body) = serde_json::to_vec(value) else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "encode");
    };
    let mut response = (StatusCode::OK, body.clone()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in protocol::sign(
        &credentials.account,
        credentials.secret(),
        OffsetDateTime::now_utc().unix_timestamp(),
        &body,
    ) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

async fn create(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let credentials = sandbox.verify(&headers, &body)?;
    let request: CreateBody = decode(&body)?;
    let id = request.payment_id;
    let held = {
        let mut payments = lock(&sandbox.inner.payments);
        match payments.get(&id) {
            // idempotent by payment id, within its account
            Some(held) if held.account == credentials.account => held.clone(),
            Some(_) => {
                return Err(Refused::new(
                    StatusCode::CONFLICT,
                    "payment id of another account",
                ));
            }
            None => {
                let held = Held {
                    account: credentials.account.clone(),
                    provider_txn_id: format!("sbx-{id}"),
                    request,
                    status: ReportStatus::Pending,
                    captured: None,
                    paid_at: None,
                    reason: None,
                };
                payments.insert(id, held.clone());
                held
            }
        }
    };
    let pay_url = format!("{}/sandbox/pay/{id}", sandbox.inner.public_url);
    Ok(signed(
        &credentials,
        &CreateAnswer {
            provider_txn_id: held.provider_txn_id,
            qr_payload: format!(
                "sandboxpay://pay?payment={id}&amount={}",
                held.request.amount.minor
            ),
            pay_url,
        },
    ))
}

async fn query(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let credentials = sandbox.verify(&headers, &body)?;
    sandbox.queries_answer()?;
    let request: QueryBody = decode(&body)?;
    let report = lock(&sandbox.inner.payments)
        .get(&request.payment_id)
        .filter(|held| held.account == credentials.account)
        .map(Held::report)
        .unwrap_or(PaymentReport {
            account: credentials.account.clone(),
            payment_id: request.payment_id,
            status: ReportStatus::Unknown,
            provider_txn_id: None,
            amount: None,
            paid_at: None,
            reason: None,
        });
    Ok(signed(&credentials, &report))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PayBody {
    amount: Option<Money>,
}

/// A buyer's request (`/sandbox/pay`, `/sandbox/fail`): the payment id of the path and the
/// optional body (none, or blank: `T::default()`); 404 for an id the sandbox cannot hold, 400
/// for a body that is not a `T`.
fn buyer_request<T: Default + serde::de::DeserializeOwned>(
    payment_id: &str,
    body: &[u8],
) -> Result<(PaymentId, T), Refused> {
    let id = payment_id
        .parse::<PaymentId>()
        .map_err(|_| Refused::new(StatusCode::NOT_FOUND, "no such payment"))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok((id, T::default()));
    }
    Ok((id, decode(body)?))
}

/// What the buyer's step answered: the payment's report, or 404 if the sandbox does not know
/// it.
fn buyer_answer(report: Option<PaymentReport>) -> Result<Response, Refused> {
    report
        .map(|report| axum::Json(report).into_response())
        .ok_or_else(|| Refused::new(StatusCode::NOT_FOUND, "no such payment"))
}

async fn pay(
    State(sandbox): State<Sandbox>,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Result<Response, Refused> {
    let (id, request): (_, PayBody) = buyer_request(&payment_id, &body)?;
    buyer_answer(sandbox.pay(id, request.amount))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    reason: Option<String>,
}

async fn fail(
    State(sandbox): State<Sandbox>,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Result<Response, Refused> {
    let (id, request): (_, FailBody) = buyer_request(&payment_id, &body)?;
    let reason = request
        .reason
        .unwrap_or_else(|| "declined by the buyer's bank (sandbox)".to_owned());
    buyer_answer(sandbox.fail(id, &reason))
}

async fn show(
    State(sandbox): State<Sandbox>,
    Path(payment_id): Path<String>,
) -> Result<Response, Refused> {
    let report = payment_id
        .parse::<PaymentId>()
        .ok()
        .and_then(|id| lock(&sandbox.inner.payments).get(&id).map(Held::report));
    buyer_answer(report)
}

async fn refund(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let credentials = sandbox.verify(&headers, &body)?;
    let request: RefundBody = decode(&body)?;
    if request.attempt == 0 || request.amount.minor <= 0 {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "attempt and amount are positive",
        ));
    }
    let faults = lock(&sandbox.inner.faults).clone();
    let held = lock(&sandbox.inner.refunds)
        .get(&request.refund_id)
        .cloned();
    let held = match held {
        Some(held) if held.account != credentials.account => {
            return Err(Refused::new(
                StatusCode::CONFLICT,
                "refund id of another account",
            ));
        }
        // the same attempt again, or a later one while the last did not fail: where it stands
        Some(held)
            if request.attempt <= held.request.attempt
                || held.status != ProviderRefundStatus::Failed =>
        {
            return Ok(signed(&credentials, &held.report()));
        }
        _ => {
            let decided = sandbox.decide_refund(&request, &credentials.account, &faults);
            lock(&sandbox.inner.refunds).insert(request.refund_id, decided.clone());
            decided
        }
    };
    let stale = RefundReport {
        status: ProviderRefundStatus::Pending,
        reason: None,
        ..held.report()
    };
    sandbox.dispatch(
        held.request.notify_url.clone(),
        held.report(),
        stale,
        faults,
    );
    // accepted; the result follows as a callback (or a query answer), as with real providers
    let accepted = RefundReport {
        status: ProviderRefundStatus::Pending,
        reason: None,
        ..held.report()
    };
    Ok(signed(&credentials, &accepted))
}

async fn refund_query(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refused> {
    let credentials = sandbox.verify(&headers, &body)?;
    sandbox.queries_answer()?;
    let request: RefundQueryBody = decode(&body)?;
    let report = lock(&sandbox.inner.refunds)
        .get(&request.refund_id)
        .filter(|held| held.account == credentials.account)
        .map(HeldRefund::report);
    match report {
        Some(report) => Ok(signed(&credentials, &report)),
        None => Err(Refused::new(StatusCode::NOT_FOUND, "no such refund")),
    }
}

async fn show_refund(State(sandbox): State<Sandbox>, Path(refund_id): Path<String>) -> Response {
    let report = refund_id.parse::<RefundId>().ok().and_then(|id| {
        lock(&sandbox.inner.refunds)
            .get(&id)
            .map(HeldRefund::report)
    });
    match report {
        Some(report) => axum::Json(report).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no such refund"),
    }
}
