//! The archive's counters and lag, rendered at `/metrics` of the process it runs in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use oc_model::{ShardId, StatusCode, TenantId};

use super::Archived;

/// Counters since start and the last lag seen per (tenant, shard, status).
#[derive(Debug, Default)]
pub struct ArchiveStats {
    passes: AtomicU64,
    errors: AtomicU64,
    bytes: AtomicU64,
    outcomes: Mutex<BTreeMap<Archived, u64>>,
    lag_ms: Mutex<BTreeMap<(TenantId, ShardId, StatusCode), u64>>,
}

impl ArchiveStats {
    pub(crate) fn pass(&self) {
        self.passes.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn outcome(&self, outcome: Archived, bytes: u64) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        *outcomes.entry(outcome).or_default() += 1;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn set_lag(&self, tenant: &TenantId, shard: ShardId, status: &StatusCode, lag: u64) {
        let mut lags = self.lag_ms.lock().unwrap_or_else(|p| p.into_inner());
        lags.insert((tenant.clone(), shard, status.clone()), lag);
    }

    /// Orders moved to the cold store since start.
    pub fn archived_total(&self) -> u64 {
        let outcomes = self.outcomes.lock().unwrap_or_else(|p| p.into_inner());
        outcomes.get(&Archived::Moved).copied().unwrap_or(0)
    }

    /// The largest lag behind the policy of any tenant, shard and status, in milliseconds.
    pub fn max_lag_ms(&self) -> u64 {
        let lags = self.lag_ms.lock().unwrap_or_else(|p| p.into_inner());
        lags.values().copied().max().unwrap_or(0)
    }

    /// The counters in the Prometheus text format: candidates by outcome
    /// (`oc_archive_orders_total{outcome}`; `moved` are the orders archived), bytes copied
    /// (`oc_archive_bytes_total`), the lag behind the policy per tenant
    /// (`oc_archive_lag_ms{tenant}`: how long the oldest due order has been due when the
    /// worker last looked, the largest over shards and statuses), passes and errors.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP oc_archive_orders_total Orders the archive handled, by outcome (moved: archived).\n# TYPE oc_archive_orders_total counter\n");
        let outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for outcome in Archived::ALL {
            let count = outcomes.get(&outcome).copied().unwrap_or(0);
            let _ = writeln!(
                out,
                "oc_archive_orders_total{{outcome=\"{}\"}} {count}",
                outcome.as_str()
            );
        }
        out.push_str("# HELP oc_archive_bytes_total Bytes of canonical JSON (order and history) copied to the cold store by archived orders.\n# TYPE oc_archive_bytes_total counter\n");
        let _ = writeln!(
            out,
            "oc_archive_bytes_total {}",
            self.bytes.load(Ordering::Relaxed)
        );
        out.push_str("# HELP oc_archive_lag_ms How long the oldest order due for the archive has been due, per tenant.\n# TYPE oc_archive_lag_ms gauge\n");
        let mut per_tenant: BTreeMap<TenantId, u64> = BTreeMap::new();
        for ((tenant, _, _), lag) in self.lag_ms.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let entry = per_tenant.entry(tenant.clone()).or_default();
            *entry = (*entry).max(*lag);
        }
        for (tenant, lag) in per_tenant {
            let _ = writeln!(out, "oc_archive_lag_ms{{tenant=\"{tenant}\"}} {lag}");
        }
        out.push_str("# HELP oc_archive_passes_total Archive passes completed.\n# TYPE oc_archive_passes_total counter\n");
        let _ = writeln!(
            out,
            "oc_archive_passes_total {}",
            self.passes.load(Ordering::Relaxed)
        );
        out.push_str("# HELP oc_archive_errors_total Archive steps that failed (retried on a later pass).\n# TYPE oc_archive_errors_total counter\n");
        let _ = writeln!(
            out,
            "oc_archive_errors_total {}",
            self.errors.load(Ordering::Relaxed)
        );
    }
}
