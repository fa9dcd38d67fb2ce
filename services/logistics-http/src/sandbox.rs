//! The sandbox carrier (`ordercenter sandbox-logistics`): a small HTTP server speaking the
//! generic pickup protocol ([`crate::protocol`]), for demos and as the external party of the
//! pickup tests. It keeps its waybills in memory by idempotency key (the same key answers the
//! same waybill) and can be told to misbehave as real carriers do (`PUT /sandbox/faults`,
//! [`Faults`]).
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/pickups`, `GET /v1/pickups/{key}` | the protocol |
//! | `GET /sandbox/pickups` | every waybill made, with its request (contact left out) and the bookings that asked for it |
//! | `GET /sandbox/stats` | booking requests received, failed by a fault, waybills made |
//! | `GET`, `PUT /sandbox/faults` | the faults in force |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use oc_model::logistics::{PickupItem, PickupRequest};
use oc_pay_http::sandbox_kit::{self, WithFaults, lock, problem};

use crate::protocol::{HEADER_IDEMPOTENCY_KEY, WaybillAnswer};

/// The carrier name the sandbox's waybills carry.
pub const CARRIER: &str = "sandbox";

/// How the sandbox misbehaves. Default: it behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Answer the next N bookings 503 without making anything (counts down).
    pub fail_next: u32,
    /// Answer every booking 503 without making anything.
    pub fail_all: bool,
    /// Make the waybill, then wait this long before answering (an answer a caller that gives
    /// up or dies meanwhile never sees).
    pub delay_ms: u64,
}

/// A waybill the sandbox made, as `GET /sandbox/pickups` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeWaybill {
    pub idempotency_key: String,
    pub waybill_no: String,
    pub order_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub pickup_at: time::OffsetDateTime,
    pub items: Vec<PickupItem>,
    pub total_weight_grams: u64,
    /// Whether the request named a contact with an address (never shown).
    pub has_address: bool,
    /// Booking requests answered with this waybill (1 + the retries that found it).
    pub bookings: u64,
}

/// What the sandbox saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Booking requests received (`POST /v1/pickups`), failed or not.
    pub requests: u64,
    /// Of them, answered 503 by a fault.
    pub failed: u64,
    /// Waybills made.
    pub waybills: u64,
}

#[derive(Debug, Default)]
struct Inner {
    token: Option<String>,
    waybills: Mutex<BTreeMap<String, MadeWaybill>>,
    faults: Mutex<Faults>,
    stats: Mutex<Stats>,
}

/// The sandbox carrier. Cheap to clone.
#[derive(Debug, Clone, Default)]
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
    /// A sandbox that wants `token` as bearer token (none: any caller).
    pub fn new(token: Option<String>) -> Sandbox {
        Sandbox {
            inner: Arc::new(Inner {
                token,
                ..Inner::default()
            }),
        }
    }

    /// Serve on `listener` until the returned task is aborted; answers the bound address.
    pub async fn serve(
        token: Option<String>,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<(Sandbox, SocketAddr, tokio::task::JoinHandle<()>)> {
        let sandbox = Sandbox::new(token);
        let (address, task) = sandbox_kit::serve(listener, sandbox.router(), "sandbox carrier")?;
        Ok((sandbox, address, task))
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/pickups", post(book))
            .route("/v1/pickups/{key}", get(read))
            .route("/sandbox/pickups", get(list))
            .route("/sandbox/stats", get(stats))
            .route("/sandbox/faults", sandbox_kit::faults_route())
            .with_state(self.clone())
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner.stats).clone()
    }

    /// Every waybill made, by idempotency key.
    pub fn waybills(&self) -> Vec<MadeWaybill> {
        lock(&self.inner.waybills).values().cloned().collect()
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.inner.token else {
            return true;
        };
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|given| given == token)
    }

    /// The waybill of `key`: the one made before, or a new one; `None` when a fault fails the
    /// booking.
    fn book(&self, key: &str, request: &PickupRequest) -> Option<MadeWaybill> {
        {
            let mut faults = lock(&self.inner.faults);
            let mut stats = lock(&self.inner.stats);
            stats.requests += 1;
            if faults.fail_all || faults.fail_next > 0 {
                faults.fail_next = faults.fail_next.saturating_sub(1);
                stats.failed += 1;
                return None;
            }
        }
        let mut waybills = lock(&self.inner.waybills);
        let made = waybills.len() as u64;
        let entry = waybills.entry(key.to_owned()).or_insert_with(|| {
            lock(&self.inner.stats).waybills += 1;
            MadeWaybill {
                idempotency_key: key.to_owned(),
                waybill_no: format!("SBX{:010}", made + 1),
                order_id: request.order_id.to_string(),
                pickup_at: request.pickup_at,
                items: request.items.clone(),
                total_weight_grams: request.total_weight_grams,
                has_address: !request.contact.address.trim().is_empty(),
                bookings: 0,
            }
        });
        entry.bookings += 1;
        Some(entry.clone())
    }
}

fn answer(made: &MadeWaybill) -> Response {
    axum::Json(WaybillAnswer {
        idempotency_key: made.idempotency_key.clone(),
        waybill_no: made.waybill_no.clone(),
        carrier: CARRIER.to_owned(),
    })
    .into_response()
}

async fn book(State(sandbox): State<Sandbox>, headers: HeaderMap, body: Bytes) -> Response {
    if !sandbox.authorized(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "bearer token required");
    }
    let request: PickupRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return problem(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let key = headers
        .get(HEADER_IDEMPOTENCY_KEY)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if key.is_empty() || key != request.idempotency_key {
        return problem(
            StatusCode::BAD_REQUEST,
            "an Idempotency-Key header equal to the body's idempotency_key is required",
        );
    }
    let Some(made) = sandbox.book(&key, &request) else {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "bookings fail (sandbox fault)",
        );
    };
    let delay = lock(&sandbox.inner.faults).delay_ms;
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    answer(&made)
}

async fn read(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    if !sandbox.authorized(&headers) {
        return problem(StatusCode::UNAUTHORIZED, "bearer token required");
    }
    match lock(&sandbox.inner.waybills).get(&key) {
        Some(made) => answer(made),
        None => problem(StatusCode::NOT_FOUND, "no pickup with this key"),
    }
}

async fn list(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.waybills()).into_response()
}

async fn stats(State(sandbox): State<Sandbox>) -> Response {
    axum::Json(sandbox.stats()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpLogistics;
    use oc_model::logistics::{LogisticsProvider, PickupContact};

    fn request(key: &str) -> PickupRequest {
        PickupRequest {
            idempotency_key: key.to_owned(),
            tenant: oc_model::TenantId::parse("retail").unwrap(),
            order_id: oc_model::OrderId::from_raw(1 << 20).unwrap(),
            pickup_at: time::OffsetDateTime::UNIX_EPOCH,
            contact: PickupContact {
                name: "Li Lei".into(),
                phone: "13900001111".into(),
                address: "1 Nanjing Road".into(),
                region: None,
            },
            items: Vec::new(),
            total_weight_grams: 0,
        }
    }

    #[tokio::test]
    async fn the_same_key_answers_the_same_waybill_through_failures_and_a_wrong_token() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (sandbox, address, task) = Sandbox::serve(Some("t0ken".into()), listener)
            .await
            .unwrap();
        let base = format!("http://{address}");
        let carrier = HttpLogistics::new(&base, Some("t0ken".into()), Duration::from_secs(5));
        let intruder = HttpLogistics::new(&base, Some("other".into()), Duration::from_secs(5));
        let refused = intruder.create_pickup(&request("k-1")).await.unwrap_err();
        assert_eq!(
            refused.code,
            oc_model::ErrorCode::InvalidInput,
            "{refused:?}"
        );
        sandbox.set_faults(Faults {
            fail_next: 2,
            ..Faults::default()
        });
        for _ in 0..2 {
            let failed = carrier.create_pickup(&request("k-1")).await.unwrap_err();
            assert_eq!(failed.code, oc_model::ErrorCode::Unavailable);
        }
        let first = carrier.create_pickup(&request("k-1")).await.unwrap();
        let again = carrier.create_pickup(&request("k-1")).await.unwrap();
        let other = carrier.create_pickup(&request("k-2")).await.unwrap();
        assert_eq!(first, again);
        assert_ne!(first.waybill_no, other.waybill_no);
        assert_eq!(carrier.query_pickup("k-1").await.unwrap(), Some(first));
        assert_eq!(carrier.query_pickup("k-3").await.unwrap(), None);
        assert_eq!(
            sandbox.stats(),
            Stats {
                requests: 5,
                failed: 2,
                waybills: 2
            }
        );
        task.abort();
    }
}
