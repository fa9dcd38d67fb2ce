#![doc = include_str!("../README.md")]

pub mod access;
pub mod after_sale_lists;
pub mod after_sales;
pub mod dto;
pub mod edge;
pub mod exports;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod payments;
pub mod problem;
pub mod ready;
pub mod routes;
#[cfg(test)]
mod tests_support;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};

pub use oc_core::Core;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application core: every use case. Behind an `Arc`: axum clones the state for
    /// every request and every `from_fn` layer, and the core's services hold dozens of
    /// `Arc`s (one atomic increment and decrement each per clone; ~5% of single-node
    /// create's CPU in a profile, `loadtest/PROFILE.md`).
    pub core: Arc<Core>,
    /// Per-tenant and per-key token buckets of the edge.
    pub limiters: Arc<edge::RateLimiters>,
    /// Prometheus registry behind `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// The optional dependencies `/readyz` reports (the shards are always checked).
    pub readiness: Arc<ready::Readiness>,
    /// Analytics exports (`POST /v1/exports`); `None` when the server has no export
    /// directory.
    pub exports: Option<oc_core::exports::Exporter>,
}

impl AppState {
    pub fn new(core: Core) -> AppState {
        AppState {
            core: Arc::new(core),
            limiters: Arc::default(),
            metrics: metrics::Metrics::new(),
            readiness: Arc::default(),
            exports: None,
        }
    }

    /// Serve `POST /v1/exports` with `exporter`.
    pub fn with_exports(mut self, exporter: oc_core::exports::Exporter) -> AppState {
        self.exports = Some(exporter);
        self
    }
}

/// The HTTP API with the default edge limits.
pub fn router(state: AppState) -> Router {
    router_with(state, edge::EdgeConfig::default())
}

/// The HTTP API behind the edge layers (see [`edge`] for their order).
pub fn router_with(state: AppState, limits: edge::EdgeConfig) -> Router {
    let orders = Router::new()
        .route(
            "/v1/orders",
            post(routes::create_order).get(routes::list_orders),
        )
        .route(
            "/v1/orders/{id}",
            get(routes::get_order).patch(routes::update_order),
        )
        .route("/v1/orders/search", get(routes::search_orders))
        .route("/v1/orders/{id}/cancel", post(routes::cancel_order))
        .route(
            "/v1/orders/{id}/transitions",
            post(routes::transition_order),
        )
        .route("/v1/orders/{id}/history", get(routes::order_history))
        .route(
            "/v1/orders/{id}/payments",
            post(payments::create_payment).get(payments::list_payments),
        )
        .route(
            "/v1/orders/{id}/after-sales",
            post(after_sales::apply).get(after_sales::list_of_order),
        )
        .route("/v1/after-sales", get(after_sale_lists::list))
        .route("/v1/after-sales/{id}", get(after_sales::get))
        .route("/v1/after-sales/{id}/review", post(after_sales::review))
        .route("/v1/after-sales/{id}/appeal", post(after_sales::appeal))
        .route("/v1/after-sales/{id}/refund", post(after_sales::refund))
        .route("/v1/after-sales/{id}/transitions", post(after_sales::step))
        .route(
            "/v1/orders/{id}/payments/{payment_id}/refunds",
            post(payments::create_refund).get(payments::list_refunds),
        )
        .route("/v1/payments/refunds/failed", get(payments::failed_refunds))
        .route("/v1/exports", post(exports::create))
        .route("/v1/exports/{id}", get(exports::get))
        .route(
            "/v1/stock/{sku}",
            get(routes::get_stock).put(routes::set_stock),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            edge::authenticate_and_limit,
        ));
    let router = Router::new()
        .merge(orders)
        // signed by the provider, not by an API key: outside the authentication middleware
        .route(
            "/v1/payments/callbacks/{provider}",
            post(payments::payment_callback),
        )
        .route(
            "/v1/payments/refund-callbacks/{provider}",
            post(payments::refund_callback),
        )
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(ready::readyz))
        .route("/openapi.json", get(routes::openapi))
        .route("/metrics", get(metrics::scrape))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed);
    let router = router.route_layer(middleware::from_fn_with_state(
        state.clone(),
        metrics::record,
    ));
    edge::apply(router, limits).with_state(state)
}
