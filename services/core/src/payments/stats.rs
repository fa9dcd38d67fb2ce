//! The payments domain's counters, rendered at `/metrics` of the process it runs in.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// Counters since start: what provider reports did, by where they came from (`callback`,
/// `query`), and the callbacks refused, by reason.
#[derive(Debug, Default)]
pub struct PaymentStats {
    applied: Mutex<Pairs>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    refunds: Mutex<Pairs>,
}

impl PaymentStats {
    pub(crate) fn applied(&self, source: &'static str, outcome: &'static str) {
        bump(&self.applied, (source, outcome));
    }

    pub(crate) fn refused(&self, reason: &'static str) {
        bump(&self.refused, reason);
    }

    pub(crate) fn refund(&self, source: &'static str, outcome: &'static str) {
        bump(&self.refunds, (source, outcome));
    }

    /// How many refund steps from `source` ended as `outcome` since start.
    pub fn refund_count(&self, source: &str, outcome: &str) -> u64 {
        read(&self.refunds, source, outcome)
    }

    /// How many reports from `source` ended as `outcome` since start.
    pub fn count(&self, source: &str, outcome: &str) -> u64 {
        read(&self.applied, source, outcome)
    }

    /// `oc_payment_reports_total{source,outcome}`, `oc_payment_mismatches_total` (the
    /// mismatch outcomes of both sources, the figure to alert on), `oc_payment_failed_total`
    /// and `oc_payment_expired_total` (payments settled failed / expired unpaid) and
    /// `oc_payment_callbacks_refused_total{reason}`; for refunds
    /// `oc_payment_refunds_total{source,outcome}` (source `request`, `callback`, `query`) and
    /// `oc_payment_refunds_failed_total` (refunds raised for manual handling, to alert on).
    pub fn render(&self, out: &mut String) {
        let applied = snapshot(&self.applied);
        render_pairs(out, "oc_payment_reports_total", &applied);
        render_total(out, "oc_payment_mismatches_total", &applied, "mismatch");
        render_total(out, "oc_payment_failed_total", &applied, "failed");
        render_total(out, "oc_payment_expired_total", &applied, "expired");
        let refused = snapshot(&self.refused);
        out.push_str("# TYPE oc_payment_callbacks_refused_total counter\n");
        for (reason, count) in &refused {
            let _ = writeln!(
                out,
                "oc_payment_callbacks_refused_total{{reason=\"{reason}\"}} {count}"
            );
        }
        let refunds = snapshot(&self.refunds);
        render_pairs(out, "oc_payment_refunds_total", &refunds);
        render_total(out, "oc_payment_refunds_failed_total", &refunds, "failed");
    }
}

type Pairs = BTreeMap<(&'static str, &'static str), u64>;

fn bump<K: Ord>(counters: &Mutex<BTreeMap<K, u64>>, key: K) {
    *counters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default() += 1;
}

fn read(counters: &Mutex<Pairs>, source: &str, outcome: &str) -> u64 {
    let counters = counters.lock().unwrap_or_else(|p| p.into_inner());
    counters.get(&(source, outcome)).copied().unwrap_or(0)
}

fn snapshot<K: Clone>(counters: &Mutex<BTreeMap<K, u64>>) -> BTreeMap<K, u64> {
    counters.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `name{source,outcome}`, one line per pair counted.
fn render_pairs(out: &mut String, name: &str, counters: &Pairs) {
    let _ = writeln!(out, "# TYPE {name} counter");
    for ((source, outcome), count) in counters {
        let _ = writeln!(
            out,
            "{name}{{source=\"{source}\",outcome=\"{outcome}\"}} {count}"
        );
    }
}

/// `name`: the sum of `outcome` over every source.
fn render_total(out: &mut String, name: &str, counters: &Pairs, outcome: &str) {
    let total: u64 = counters
        .iter()
        .filter(|((_, counted), _)| *counted == outcome)
        .map(|(_, count)| count)
        .sum();
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {total}");
}
