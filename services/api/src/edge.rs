//! The edge: the tower layers every request passes, outermost first.
//!
//! 1. **Body limit** (`DefaultBodyLimit`, 256 KiB): larger bodies are refused before parsing.
//! 2. **Load shedding** (`load_shed`): when the concurrency limit is reached the request is
//!    answered 503 at once (with `Retry-After`) instead of queueing without bound.
//! 3. **Concurrency limit** (`concurrency_limit`): at most `max_in_flight` requests are inside.
//! 4. **Timeout** (`timeout`): a request that takes longer is answered 503 and its work is
//!    dropped (a store transaction in flight rolls back).
//! 5. **Authentication + per-tenant rate limit** (`authenticate_and_limit`, on `/v1/*`): the
//!    bearer key gives tenant and role; the key's own limit (if configured) and then the
//!    tenant's limit are checked with `governor` token buckets from the tenant config; over
//!    the limit answers 429 with `Retry-After`. Unauthenticated requests never consume a
//!    tenant's tokens.
//!
//! Shedding sits outside the limiter so that an overloaded instance refuses cheaply; the rate
//! limit sits inside the timeout so that a throttled answer is never delayed.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{BoxError, Router};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use oc_model::{DomainError, ErrorCode, TenantId};
use oc_tenant_config::RateLimit;

use crate::AppState;
use crate::access::authenticate;
use crate::problem::ApiError;
use oc_core::Caller;

/// Limits of the edge layers.
#[derive(Debug, Clone, Copy)]
pub struct EdgeConfig {
    pub request_timeout: Duration,
    pub max_in_flight: usize,
    /// `false` leaves layers 1–4 out (no body limit, shedding, concurrency limit or
    /// timeout). Only for measuring what they cost (`loadtest bench`, `OC_EDGE_LAYERS=off`);
    /// never in production. Authentication and rate limits stay either way.
    pub layers: bool,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            request_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            layers: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    Tenant(TenantId),
    Key(TenantId, String),
}

/// Token buckets per tenant and per API key, built lazily from the live tenant config and
/// rebuilt when a reload changes a quota.
#[derive(Debug, Default)]
pub struct RateLimiters {
    buckets: RwLock<HashMap<LimitKey, (RateLimit, Arc<DefaultDirectRateLimiter>)>>,
}

fn quota(limit: &RateLimit) -> Quota {
    let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per_second).allow_burst(burst)
}

impl RateLimiters {
    fn bucket(&self, key: LimitKey, limit: &RateLimit) -> Arc<DefaultDirectRateLimiter> {
        if let Some((current, bucket)) = self
            .buckets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            && current == limit
        {
            return Arc::clone(bucket);
        }
        let bucket = Arc::new(RateLimiter::direct(quota(limit)));
        self.buckets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (*limit, Arc::clone(&bucket)));
        bucket
    }

    /// `Err(wait)` when the caller is over its key's or its tenant's limit.
    pub fn check(
        &self,
        caller: &Caller,
        limits: &oc_tenant_config::RateLimits,
    ) -> Result<(), Duration> {
        let clock = DefaultClock::default();
        if let Some(key_limit) = limits.for_key(&caller.key_id) {
            let bucket = self.bucket(
                LimitKey::Key(caller.tenant.clone(), caller.key_id.clone()),
                key_limit,
            );
            bucket
                .check()
                .map_err(|not_until| not_until.wait_time_from(clock.now()))?;
        }
        let bucket = self.bucket(LimitKey::Tenant(caller.tenant.clone()), &limits.tenant());
        bucket
            .check()
            .map_err(|not_until| not_until.wait_time_from(clock.now()))
    }
}

/// Middleware: authenticate, rate-limit, and hand the caller to the handler.
pub async fn authenticate_and_limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match authenticate(request.headers(), &state) {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    // the request span names the tenant from here on (the metrics layer names it only when
    // no caller was authenticated: recording twice prints `tenant=` twice)
    tracing::Span::current().record("tenant", caller.tenant.as_str());
    if let Err(wait) = state
        .limiters
        .check(&caller, caller.tenant_config().rate_limits())
    {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = ApiError::from(DomainError::new(
            ErrorCode::RateLimited,
            format!(
                "rate limit of tenant {} exceeded; retry in {seconds} s",
                caller.tenant
            ),
        ))
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
            .extensions_mut()
            .insert(crate::metrics::ServedTenant(caller.tenant.clone()));
        return response;
    }
    let tenant = caller.tenant.clone();
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    response
        .extensions_mut()
        .insert(crate::metrics::ServedTenant(tenant));
    response
}

/// Wrap a router in the edge layers 1–4 (the order is documented at the top of this module);
/// unchanged when `limits.layers` is off.
pub fn apply<S: Clone + Send + Sync + 'static>(router: Router<S>, limits: EdgeConfig) -> Router<S> {
    if !limits.layers {
        return router;
    }
    router
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(handle_layer_error))
                .load_shed()
                .concurrency_limit(limits.max_in_flight)
                .timeout(limits.request_timeout),
        )
        .layer(DefaultBodyLimit::max(crate::extract::MAX_BODY_BYTES))
}

/// Errors of the tower layers (overload, timeout) as problem+json.
pub async fn handle_layer_error(error: BoxError) -> Response {
    let (message, status) = if error.is::<tower::load_shed::error::Overloaded>() {
        (
            "the server is at capacity; retry shortly",
            StatusCode::SERVICE_UNAVAILABLE,
        )
    } else if error.is::<tower::timeout::error::Elapsed>() {
        (
            "the request took too long and was abandoned",
            StatusCode::SERVICE_UNAVAILABLE,
        )
    } else {
        tracing::error!(error = %error, "edge layer failure");
        (
            "the server could not complete the request",
            StatusCode::INTERNAL_SERVER_ERROR,
        )
    };
    let code = if status == StatusCode::SERVICE_UNAVAILABLE {
        ErrorCode::Unavailable
    } else {
        ErrorCode::Internal
    };
    ApiError::from(DomainError::new(code, message))
        .with_status(status)
        .with_header(header::RETRY_AFTER, "1")
        .into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    /// A router whose one handler takes `delay`, behind the edge layers.
    fn slow(delay: Duration, limits: EdgeConfig) -> Router {
        let router: Router = Router::new().route(
            "/slow",
            get(move || async move {
                tokio::time::sleep(delay).await;
                "done"
            }),
        );
        // with_state turns handlers into routes once; without it axum would apply the
        // layers per request and every request would get its own semaphore
        apply(router, limits).with_state(())
    }

    async fn status(router: &Router) -> (StatusCode, Option<HeaderValue>) {
        let response = router
            .clone()
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        (
            response.status(),
            response.headers().get(header::RETRY_AFTER).cloned(),
        )
    }

    #[tokio::test]
    async fn a_request_over_its_time_budget_gets_503() {
        let router = slow(
            Duration::from_millis(500),
            EdgeConfig {
                request_timeout: Duration::from_millis(20),
                max_in_flight: 8,
                layers: true,
            },
        );
        let (code, retry_after) = status(&router).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(retry_after.is_some());
        let fast = slow(
            Duration::ZERO,
            EdgeConfig {
                request_timeout: Duration::from_secs(5),
                max_in_flight: 8,
                layers: true,
            },
        );
        assert_eq!(status(&fast).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn without_layers_nothing_is_timed_out() {
        let limits = EdgeConfig {
            request_timeout: Duration::from_millis(20),
            max_in_flight: 8,
            layers: false,
        };
        let router = slow(Duration::from_millis(200), limits);
        assert_eq!(status(&router).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn requests_beyond_the_concurrency_limit_are_shed_not_queued() {
        let router = slow(
            Duration::from_millis(300),
            EdgeConfig {
                request_timeout: Duration::from_secs(5),
                max_in_flight: 2,
                layers: true,
            },
        );
        let calls: Vec<_> = (0..6)
            .map(|_| {
                tokio::spawn({
                    let router = router.clone();
                    async move { status(&router).await.0 }
                })
            })
            .collect();
        let mut codes = Vec::new();
        for call in calls {
            codes.push(call.await.unwrap());
        }
        let ok = codes.iter().filter(|c| **c == StatusCode::OK).count();
        let shed = codes
            .iter()
            .filter(|c| **c == StatusCode::SERVICE_UNAVAILABLE)
            .count();
        assert_eq!(ok + shed, 6, "{codes:?}");
        assert!(
            (1..=2).contains(&ok),
            "at most the limit is served: {codes:?}"
        );
        assert!(shed >= 4, "{codes:?}");
    }
}
