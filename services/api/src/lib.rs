#![doc = include_str!("../README.md")]

pub mod access;
pub mod dto;
pub mod extract;
pub mod openapi;
pub mod pii;
pub mod problem;
pub mod routes;
pub mod service;
#[cfg(test)]
mod tests_support;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use crate::service::OrderService;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    pub service: OrderService,
}

/// The HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/v1/orders",
            post(routes::create_order).get(routes::list_orders),
        )
        .route(
            "/v1/orders/{id}",
            get(routes::get_order).patch(routes::update_order),
        )
        .route("/v1/orders/{id}/cancel", post(routes::cancel_order))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/openapi.json", get(routes::openapi))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}
