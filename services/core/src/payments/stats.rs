//! The payments domain's counters, rendered at `/metrics` of the process it runs in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters since start: what provider reports did, by where they came from (`callback`,
/// `query`), and the callbacks refused, by reason.
#[derive(Debug, Default)]
pub struct PaymentStats {
    applied: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    refunds: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl PaymentStats {
    pub(crate) fn applied(&self, source: &'static str, outcome: &'static str) {
        let mut map = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((source, outcome)).or_default() += 1;
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        let mut map = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(reason).or_default() += 1;
    }

    pub(crate) fn refund(&self, source: &'static str, outcome: &'static str) {
        let mut map = self.refunds.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((source, outcome)).or_default() += 1;
    }

    /// How many refund steps from `source` ended as `outcome` since start.
    pub fn refund_count(&self, source: &str, outcome: &str) -> u64 {
        let map = self.refunds.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(source, outcome)).copied().unwrap_or(0)
    }

    /// How many reports from `source` ended as `outcome` since start.
    pub fn count(&self, source: &str, outcome: &str) -> u64 {
        let map = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&(source, outcome)).copied().unwrap_or(0)
    }

    /// `oc_payment_reports_total{source,outcome}`, `oc_payment_mismatches_total` (the
    /// mismatch outcomes of both sources, the figure to alert on) and
    /// `oc_payment_callbacks_refused_total{reason}`; for refunds
    /// `oc_payment_refunds_total{source,outcome}` (source `request`, `callback`, `query`) and
    /// `oc_payment_refunds_failed_total` (refunds raised for manual handling, to alert on).
    pub fn render(&self, out: &mut String) {
        let applied = self
            .applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str("# TYPE oc_payment_reports_total counter\n");
        for ((source, outcome), count) in &applied {
            let _ = writeln!(
                out,
                "oc_payment_reports_total{{source=\"{source}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let mismatches: u64 = applied
            .iter()
            .filter(|((_, outcome), _)| *outcome == "mismatch")
            .map(|(_, count)| count)
            .sum();
        out.push_str("# TYPE oc_payment_mismatches_total counter\n");
        let _ = writeln!(out, "oc_payment_mismatches_total {mismatches}");
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str("# TYPE oc_payment_callbacks_refused_total counter\n");
        for (reason, count) in &refused {
            let _ = writeln!(
                out,
                "oc_payment_callbacks_refused_total{{reason=\"{reason}\"}} {count}"
            );
        }
        let refunds = self
            .refunds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str("# TYPE oc_payment_refunds_total counter\n");
        for ((source, outcome), count) in &refunds {
            let _ = writeln!(
                out,
                "oc_payment_refunds_total{{source=\"{source}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        let failed: u64 = refunds
            .iter()
            .filter(|((_, outcome), _)| *outcome == "failed")
            .map(|(_, count)| count)
            .sum();
        out.push_str("# TYPE oc_payment_refunds_failed_total counter\n");
        let _ = writeln!(out, "oc_payment_refunds_failed_total {failed}");
    }
}
