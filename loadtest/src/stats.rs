//! Latency histograms (HDR, microseconds, 3 significant digits), per-label tallies and the
//! JSON report of a run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded: one minute (larger values are clamped).
const MAX_MICROS: u64 = 60_000_000;

/// An HDR histogram of latencies in microseconds.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("static histogram bounds are valid"),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        // saturating: in bounds by the clamp above
        self.histogram.saturating_record(micros);
    }

    /// Add every sample of `other` (same bounds, so nothing is lost).
    pub fn merge(&mut self, other: &Latencies) {
        // equal bounds: `add` cannot fail
        let _ = self.histogram.add(&other.histogram);
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at percentile `p` (0–100), in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        self.histogram.value_at_quantile(p / 100.0) as f64 / 1000.0
    }

    pub fn summary(&self) -> Percentiles {
        Percentiles {
            p50: self.percentile_ms(50.0),
            p90: self.percentile_ms(90.0),
            p99: self.percentile_ms(99.0),
            p999: self.percentile_ms(99.9),
            p9999: self.percentile_ms(99.99),
            max: self.histogram.max() as f64 / 1000.0,
            mean: self.histogram.mean() / 1000.0,
        }
    }
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    pub mean: f64,
}

/// What one request (or scenario step) gave.
#[derive(Debug)]
pub struct Outcome {
    /// The operation: `create`, `get`, `search`, `transition`, `visibility`, `tx`…
    pub label: &'static str,
    /// The tenant, when the scenario reports per tenant.
    pub tenant: Option<&'static str>,
    /// HTTP status; 0 when the request failed below HTTP (connection refused, reset…).
    pub status: u16,
    /// The latency when it is not the step's own duration (visibility: commit → found).
    pub latency: Option<Duration>,
    /// A short description of a failure, kept once per label for the report.
    pub detail: Option<String>,
}

impl Outcome {
    pub fn status(label: &'static str, status: u16) -> Outcome {
        Outcome {
            label,
            tenant: None,
            status,
            latency: None,
            detail: None,
        }
    }

    pub fn failed(label: &'static str, detail: impl std::fmt::Display) -> Outcome {
        Outcome {
            label,
            tenant: None,
            status: 0,
            latency: None,
            detail: Some(detail.to_string()),
        }
    }

    pub fn for_tenant(mut self, tenant: &'static str) -> Outcome {
        self.tenant = Some(tenant);
        self
    }
}

#[derive(Debug, Default)]
struct LabelTally {
    latencies: Latencies,
    ok: u64,
    errors: u64,
    throttled: u64,
    statuses: BTreeMap<u16, u64>,
    first_error: Option<String>,
}

impl LabelTally {
    fn add(&mut self, status: u16, latency: Duration, detail: Option<&str>) {
        *self.statuses.entry(status).or_default() += 1;
        if (200..300).contains(&status) {
            self.ok += 1;
            self.latencies.record(latency);
        } else if status == 429 {
            self.throttled += 1;
        } else {
            self.errors += 1;
            if self.first_error.is_none() {
                self.first_error = Some(detail.unwrap_or("").chars().take(300).collect());
            }
        }
    }
}

/// Everything recorded during the measured part of a run.
#[derive(Debug, Default)]
pub struct Tally {
    labels: Mutex<BTreeMap<String, LabelTally>>,
    all: Mutex<LabelTally>,
    /// Counters for the progress line.
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub dropped: AtomicU64,
}

impl Tally {
    pub fn record(&self, outcome: &Outcome, elapsed: Duration) {
        let latency = outcome.latency.unwrap_or(elapsed);
        let detail = outcome
            .detail
            .as_deref()
            .map(|d| format!("{} {}: {d}", outcome.status, outcome.label));
        let detail = detail.as_deref();
        self.done.fetch_add(1, Ordering::Relaxed);
        if !(200..300).contains(&outcome.status) {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
            let mut add = |key: &str| match labels.get_mut(key) {
                Some(tally) => tally.add(outcome.status, latency, detail),
                None => {
                    let mut tally = LabelTally::default();
                    tally.add(outcome.status, latency, detail);
                    labels.insert(key.to_owned(), tally);
                }
            };
            add(outcome.label);
            if let Some(tenant) = outcome.tenant {
                add(tenant);
                add(&format!("{tenant}/{}", outcome.label));
            }
        }
        self.all
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(outcome.status, latency, detail);
    }

    /// The report of a run that measured for `duration`.
    pub fn report(&self, scenario: &str, mode: &str, duration: Duration) -> Report {
        let seconds = duration.as_secs_f64().max(1e-9);
        let all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        let labels = self.labels.lock().unwrap_or_else(|e| e.into_inner());
        let by_label = labels
            .iter()
            .map(|(name, tally)| (name.clone(), LabelReport::of(tally, seconds)))
            .collect();
        let histograms = labels
            .iter()
            .map(|(name, tally)| (name.clone(), tally.latencies.clone()))
            .collect();
        Report {
            scenario: scenario.to_owned(),
            mode: mode.to_owned(),
            duration_s: seconds,
            sent: all.ok + all.errors + all.throttled,
            ok: all.ok,
            errors: all.errors,
            throttled: all.throttled,
            dropped: self.dropped.load(Ordering::Relaxed),
            throughput_per_s: all.ok as f64 / seconds,
            latency_ms: all.latencies.summary(),
            first_error: all.first_error.clone(),
            by_label,
            all_latencies: all.latencies.clone(),
            histograms,
        }
    }
}

/// One label of a report.
#[derive(Debug, Clone, Serialize)]
pub struct LabelReport {
    pub ok: u64,
    pub errors: u64,
    pub throttled: u64,
    pub throughput_per_s: f64,
    pub latency_ms: Percentiles,
    pub statuses: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl LabelReport {
    fn of(tally: &LabelTally, seconds: f64) -> LabelReport {
        LabelReport {
            ok: tally.ok,
            errors: tally.errors,
            throttled: tally.throttled,
            throughput_per_s: tally.ok as f64 / seconds,
            latency_ms: tally.latencies.summary(),
            statuses: tally
                .statuses
                .iter()
                .map(|(status, count)| (status.to_string(), *count))
                .collect(),
            first_error: tally.first_error.clone(),
        }
    }
}

/// The result of one run, as printed and written with `--out`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub mode: String,
    pub duration_s: f64,
    pub sent: u64,
    pub ok: u64,
    pub errors: u64,
    /// Answered 429 (over the tenant's or key's rate limit).
    pub throttled: u64,
    /// Open loop: not sent because too many requests were in flight.
    pub dropped: u64,
    pub throughput_per_s: f64,
    pub latency_ms: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    /// Per operation and, in the multi-tenant scenario, per tenant and tenant/operation.
    pub by_label: BTreeMap<String, LabelReport>,
    #[serde(skip)]
    pub all_latencies: Latencies,
    #[serde(skip)]
    pub histograms: BTreeMap<String, Latencies>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(range: std::ops::RangeInclusive<u64>) -> Latencies {
        let mut latencies = Latencies::default();
        for ms in range {
            latencies.record(Duration::from_millis(ms));
        }
        latencies
    }

    #[test]
    fn merging_gives_the_percentiles_of_the_union() {
        let mut low = filled(1..=100);
        let high = filled(101..=200);
        assert!((low.percentile_ms(50.0) - 50.0).abs() < 0.1);
        low.merge(&high);
        assert_eq!(low.count(), 200);
        assert!(
            (low.percentile_ms(50.0) - 100.0).abs() < 0.1,
            "{}",
            low.percentile_ms(50.0)
        );
        assert!(
            (low.percentile_ms(99.0) - 198.0).abs() < 0.3,
            "{}",
            low.percentile_ms(99.0)
        );
        assert!((low.summary().max - 200.0).abs() < 0.3);
    }

    #[test]
    fn out_of_range_latencies_are_clamped_not_lost() {
        let mut latencies = Latencies::default();
        latencies.record(Duration::ZERO);
        latencies.record(Duration::from_secs(3_600));
        assert_eq!(latencies.count(), 2);
        assert!(latencies.summary().max >= 59_000.0);
    }

    #[test]
    fn tallies_split_by_label_and_tenant_and_count_throttling_apart() {
        let tally = Tally::default();
        let ms = Duration::from_millis;
        tally.record(&Outcome::status("create", 201).for_tenant("retail"), ms(2));
        tally.record(&Outcome::status("get", 200).for_tenant("express"), ms(1));
        tally.record(&Outcome::status("create", 429).for_tenant("express"), ms(1));
        tally.record(
            &Outcome::failed("get", "connection reset").for_tenant("retail"),
            ms(1),
        );
        let report = tally.report("multi-tenant", "test", Duration::from_secs(2));
        assert_eq!(
            (report.ok, report.errors, report.throttled, report.sent),
            (2, 1, 1, 4)
        );
        assert_eq!(report.throughput_per_s, 1.0);
        assert_eq!(report.by_label["retail"].ok, 1);
        assert_eq!(report.by_label["retail"].errors, 1);
        assert_eq!(report.by_label["express"].throttled, 1);
        assert_eq!(report.by_label["retail/create"].ok, 1);
        assert_eq!(report.by_label["create"].statuses["429"], 1);
        assert!(report.first_error.unwrap().contains("connection reset"));
    }
}
