//! `/readyz`: readiness per dependency. The shards are required (without them nothing can be
//! written or read: 503); the read models and the bus are optional (the service degrades
//! without them: 200, and they report `down` or `degraded`). `/healthz` stays liveness only.
//!
//! Each dependency reports `up`, `down` or `degraded`:
//! * with a probe (Redis PING, the index's health call): `down` when the probe fails,
//!   `degraded` when it answers but the circuit breaker is not closed yet, else `up`;
//! * without a probe (cold store, bus): from the breaker alone: closed `up`, half-open
//!   `degraded`, open `down`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use oc_model::DomainResult;
use oc_resilience::{BreakerState, CircuitBreaker};
use serde::Serialize;

use crate::AppState;

/// Longest a probe may take before the dependency counts as down.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A health probe of one dependency.
pub type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = DomainResult<()>> + Send>> + Send + Sync>;

/// One optional dependency as `/readyz` sees it.
#[derive(Clone)]
pub struct Dependency {
    /// `cache`, `search`, `cold`, `bus`.
    pub name: &'static str,
    pub breaker: Option<Arc<CircuitBreaker>>,
    pub probe: Option<Probe>,
}

impl std::fmt::Debug for Dependency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dependency")
            .field("name", &self.name)
            .field("breaker", &self.breaker)
            .field("probe", &self.probe.is_some())
            .finish()
    }
}

/// The optional dependencies the binary wired.
#[derive(Debug, Default)]
pub struct Readiness {
    dependencies: Mutex<Vec<Dependency>>,
}

impl Readiness {
    pub fn register(&self, dependency: Dependency) {
        let mut dependencies = self
            .dependencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        dependencies.retain(|d| d.name != dependency.name);
        dependencies.push(dependency);
    }

    fn dependencies(&self) -> Vec<Dependency> {
        self.dependencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What `/readyz` says about one dependency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DependencyStatus {
    /// `up`, `down` or `degraded`.
    pub status: &'static str,
    pub required: bool,
    /// `closed`, `half_open` or `open`, when a breaker guards the dependency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<&'static str>,
    /// The probe's error, else the last error the breaker saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

async fn probe(probe: &Probe) -> DomainResult<()> {
    match tokio::time::timeout(PROBE_TIMEOUT, probe()).await {
        Ok(result) => result,
        Err(_) => Err(oc_model::DomainError::unavailable(format!(
            "no answer within {} ms",
            PROBE_TIMEOUT.as_millis()
        ))),
    }
}

async fn check(dependency: &Dependency) -> DependencyStatus {
    let snapshot = dependency.breaker.as_ref().map(|b| b.snapshot());
    let breaker_state = snapshot.as_ref().map(|s| s.state);
    let breaker_error = snapshot.and_then(|s| s.last_error);
    let probed = match &dependency.probe {
        Some(p) => Some(probe(p).await),
        None => None,
    };
    let (status, last_error) = match (probed, breaker_state) {
        (Some(Err(error)), _) => ("down", Some(error.message)),
        (Some(Ok(())), Some(BreakerState::Closed) | None) => ("up", None),
        (Some(Ok(())), Some(_)) => ("degraded", breaker_error),
        (None, Some(BreakerState::Closed) | None) => ("up", None),
        (None, Some(BreakerState::HalfOpen)) => ("degraded", breaker_error),
        (None, Some(BreakerState::Open)) => ("down", breaker_error),
    };
    DependencyStatus {
        status,
        required: false,
        breaker: breaker_state.map(BreakerState::as_str),
        last_error,
    }
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let shards = match tokio::time::timeout(PROBE_TIMEOUT, state.core.store.health()).await {
        Ok(result) => result,
        Err(_) => Err(oc_model::DomainError::unavailable(format!(
            "no answer within {} ms",
            PROBE_TIMEOUT.as_millis()
        ))),
    };
    let ready = shards.is_ok();
    let mut dependencies = serde_json::Map::new();
    let shard_status = DependencyStatus {
        status: if ready { "up" } else { "down" },
        required: true,
        breaker: None,
        last_error: shards.err().map(|e| e.message),
    };
    dependencies.insert(
        "shards".to_owned(),
        serde_json::to_value(shard_status).unwrap_or_default(),
    );
    for dependency in state.readiness.dependencies() {
        let status = check(&dependency).await;
        dependencies.insert(
            dependency.name.to_owned(),
            serde_json::to_value(status).unwrap_or_default(),
        );
    }
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "dependencies": dependencies,
        "tenant_config": format!("{} tenants", state.core.config.current().tenants().count()),
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
