//! Prometheus metrics at `/metrics` (text exposition format 0.0.4): requests and latency per
//! tenant, route and status, plus gauges that the binary registers for the parts it wires
//! (cache hit counts, relay lag). Labels never carry personal data: the tenant id, the route
//! *template* (`/v1/orders/{id}`, never the id) and the status.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use oc_model::TenantId;
use tracing::Instrument;

use crate::AppState;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The tenant a response was served for, left by the authentication middleware so that the
/// (outer) metrics middleware can label the request.
#[derive(Debug, Clone)]
pub struct ServedTenant(pub TenantId);

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

type Labels = (String, String);

/// A gauge source: appends complete exposition lines for what it measures.
pub type GaugeSource = Box<dyn Fn(&mut String) + Send + Sync>;

/// The registry.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<Labels, Histogram>>,
    gauges: Mutex<Vec<GaugeSource>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Escape a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// Register a gauge source (called on every scrape).
    pub fn register(&self, source: GaugeSource) {
        self.gauges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(source);
    }

    pub fn observe(&self, tenant: &str, route: &str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((tenant.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let mut latency = self.latency.lock().unwrap_or_else(PoisonError::into_inner);
        let histogram = latency
            .entry((tenant.to_owned(), route.to_owned()))
            .or_default();
        for (bucket, bound) in histogram.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_seconds += seconds;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP oc_http_requests_total HTTP requests by tenant, route template and status.\n",
        );
        out.push_str("# TYPE oc_http_requests_total counter\n");
        for ((tenant, route, status), count) in self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "oc_http_requests_total{{tenant=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                label(tenant),
                label(route)
            );
        }
        out.push_str("# HELP oc_http_request_duration_seconds HTTP request latency by tenant and route template.\n");
        out.push_str("# TYPE oc_http_request_duration_seconds histogram\n");
        for ((tenant, route), histogram) in self
            .latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            let labels = format!("tenant=\"{}\",route=\"{}\"", label(tenant), label(route));
            for (bound, count) in BUCKETS.iter().zip(histogram.buckets) {
                let _ = writeln!(
                    out,
                    "oc_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "oc_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "oc_http_request_duration_seconds_sum{{{labels}}} {}",
                histogram.sum_seconds
            );
            let _ = writeln!(
                out,
                "oc_http_request_duration_seconds_count{{{labels}}} {}",
                histogram.count
            );
        }
        for source in self
            .gauges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            source(&mut out);
        }
        out
    }
}

/// The header that carries a request's id (taken from the caller when well-formed, else new).
pub const REQUEST_ID: &str = "x-request-id";

fn caller_request_id(request: &Request) -> Option<String> {
    let value = request.headers().get(REQUEST_ID)?.to_str().ok()?;
    let well_formed = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    well_formed.then(|| value.to_owned())
}

/// Middleware: give every request an id (echoed in `x-request-id`), run it inside a tracing
/// span that carries the id, route template and tenant (never personal data), log one line
/// when it finishes, and count it under its tenant, route template and status.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id =
        caller_request_id(&request).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        route = %route,
        tenant = tracing::field::Empty,
    );
    let mut response = next.run(request).instrument(span.clone()).await;
    let served = response.extensions().get::<ServedTenant>();
    if served.is_none() {
        // the edge records the tenant of an authenticated caller; the text log format
        // appends every record, so only an unauthenticated request is named here
        span.record("tenant", "-");
    }
    let tenant = served
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| "-".to_owned());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    tracing::info!(parent: &span, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished");
    state
        .metrics
        .observe(&tenant, &route, status, elapsed.as_secs_f64());
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Metrics::new();
        metrics.observe("retail", "/v1/orders", 201, 0.003);
        metrics.observe("retail", "/v1/orders", 201, 0.2);
        metrics.observe("-", "/v1/orders/{id}", 401, 0.0001);
        metrics.register(Box::new(|out: &mut String| {
            out.push_str("oc_test_gauge 7\n")
        }));
        let text = metrics.render();
        assert!(
            text.contains(
                "oc_http_requests_total{tenant=\"retail\",route=\"/v1/orders\",status=\"201\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "oc_http_requests_total{tenant=\"-\",route=\"/v1/orders/{id}\",status=\"401\"} 1"
        ));
        assert!(text.contains("oc_http_request_duration_seconds_bucket{tenant=\"retail\",route=\"/v1/orders\",le=\"0.005\"} 1"));
        assert!(text.contains("oc_http_request_duration_seconds_bucket{tenant=\"retail\",route=\"/v1/orders\",le=\"0.25\"} 2"));
        assert!(text.contains(
            "oc_http_request_duration_seconds_count{tenant=\"retail\",route=\"/v1/orders\"} 2"
        ));
        assert!(text.contains("oc_test_gauge 7"));
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
