//! This server's key ring report, and what `keys retire` makes of every server's.
//!
//! A server seals new values under the newest data-key version it holds. It learns of a
//! rotation when told (SIGHUP) or when it reads a value under a version it lacks; a server
//! that missed both keeps sealing under the old version. Retiring that version from the key
//! ring file would make what it writes next unreadable after a restart. So every `serve`
//! reports, in shard 0 (`oc_store_sql::KeyRingReport`), the version it seals under per tenant:
//! at start (before it serves), within a second of a change, and every few seconds as a
//! heartbeat; it removes its report when it stops gracefully. `keys retire v` goes ahead only
//! when every live server seals under a version newer than `v` and has done so for longer
//! than its requests last (a request that began before the switch may still be writing a
//! value sealed under `v`). A report older than [`LIVE_FOR`] is of a process that is gone
//! (killed, crashed); so a server cut off from shard 0 for that long is taken for gone too.
//! Clocks are the processes' own: hosts are expected to be NTP-synchronised (seconds apart at
//! most, against a minute of [`LIVE_FOR`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use oc_crypto::KeyRing;
use oc_store_sql::{KeyRingReport, SqlOrderStore};

/// How often the reporter looks at the key ring for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A report is written at least this often.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// A report older than this is of a process that is gone.
pub const LIVE_FOR: Duration = Duration::from_secs(60);
/// Beyond its request timeout, how long a request may still write after its answer was given
/// up on (a create queued for group commit, a commit in flight).
const SETTLE_MARGIN: Duration = Duration::from_secs(2);

/// Milliseconds since the epoch, this process's clock.
pub fn now_ms() -> i64 {
    oc_model::UnixMillis::now().get()
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// The active version of every tenant of `ring`.
fn active_versions(ring: &KeyRing) -> BTreeMap<String, u32> {
    ring.tenants()
        .into_iter()
        .filter_map(|tenant| {
            let version = ring.current_version(&tenant).ok()?;
            Some((tenant, version))
        })
        .collect()
}

/// Reports the key versions `ring` seals under, as this process.
#[derive(Debug)]
pub struct Reporter {
    store: Arc<SqlOrderStore>,
    ring: Arc<KeyRing>,
    report: KeyRingReport,
}

impl Reporter {
    /// `what` names the process for the operator (e.g. `serve on 10.0.0.5:8080`);
    /// `request_timeout` bounds how long its requests write.
    pub fn new(
        store: Arc<SqlOrderStore>,
        ring: Arc<KeyRing>,
        what: &str,
        request_timeout: Duration,
    ) -> Reporter {
        let host = host_name();
        let pid = std::process::id();
        let now = now_ms();
        let settle = request_timeout + SETTLE_MARGIN;
        Reporter {
            report: KeyRingReport {
                process_id: format!("{host}:{pid}:{now}"),
                description: format!("{what} (host {host}, pid {pid})"),
                active_versions: active_versions(&ring),
                active_since_ms: now,
                settle_ms: i64::try_from(settle.as_millis()).unwrap_or(i64::MAX),
                reported_at_ms: now,
            },
            store,
            ring,
        }
    }

    /// Writes the first report (an error: the server must not start, `keys retire` could not
    /// see it), then keeps it current until `stop`, and removes it then.
    pub async fn start(
        mut self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        self.store
            .put_key_ring_report(&self.report)
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))
            .context("reporting this server's key versions to shard 0")?;
        Ok(tokio::spawn(async move {
            let mut last_written = Instant::now();
            let mut ticks = tokio::time::interval(CHECK_EVERY);
            tokio::pin!(stop);
            loop {
                tokio::select! {
                    () = &mut stop => break,
                    _ = ticks.tick() => {}
                }
                let versions = active_versions(&self.ring);
                let changed = versions != self.report.active_versions;
                if changed {
                    // noticed up to CHECK_EVERY late: the later time only makes retire wait longer
                    self.report.active_versions = versions;
                    self.report.active_since_ms = now_ms();
                }
                if changed || last_written.elapsed() >= HEARTBEAT {
                    self.report.reported_at_ms = now_ms();
                    match self.store.put_key_ring_report(&self.report).await {
                        Ok(()) => last_written = Instant::now(),
                        Err(error) => {
                            tracing::warn!(error = %error.message, "cannot report this server's key versions to shard 0; retrying");
                        }
                    }
                }
            }
            if let Err(error) = self
                .store
                .remove_key_ring_report(&self.report.process_id)
                .await
            {
                tracing::warn!(error = %error.message, "cannot remove this server's key report; it expires by itself");
            }
        }))
    }
}

/// Why `version` of `tenants` cannot be retired yet, one line per live server in the way:
/// it seals under that version (or an older one), or it moved to a newer one too recently.
/// Empty: no live server can write under `version` any more.
pub fn retire_blockers(
    reports: &[KeyRingReport],
    tenants: &[String],
    version: u32,
    now_ms: i64,
) -> Vec<String> {
    let live_for = LIVE_FOR.as_millis() as i64;
    let mut blockers = Vec::new();
    for report in reports {
        let age_s = (now_ms - report.reported_at_ms).max(0) / 1000;
        if now_ms - report.reported_at_ms > live_for {
            continue;
        }
        let old: Vec<String> = tenants
            .iter()
            .filter_map(|tenant| {
                let active = *report.active_versions.get(tenant)?;
                (active <= version).then(|| format!("version {active} of tenant {tenant:?}"))
            })
            .collect();
        if !old.is_empty() {
            blockers.push(format!(
                "{} still seals under {} (reported {age_s} s ago): send it SIGHUP to reload the \
                 key ring (it also reloads by itself when it reads a value under a newer version)",
                report.description,
                old.join(", ")
            ));
            continue;
        }
        let settled_at = report.active_since_ms.saturating_add(report.settle_ms);
        if now_ms < settled_at {
            blockers.push(format!(
                "{} moved to newer key versions {} s ago: a request it began before may still \
                 write under version {version} for {} s more",
                report.description,
                (now_ms - report.active_since_ms).max(0) / 1000,
                (settled_at - now_ms + 999) / 1000
            ));
        }
    }
    blockers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &str, versions: &[(&str, u32)], since: i64, at: i64) -> KeyRingReport {
        KeyRingReport {
            process_id: name.into(),
            description: format!("serve {name}"),
            active_versions: versions
                .iter()
                .map(|(tenant, version)| ((*tenant).to_owned(), *version))
                .collect(),
            active_since_ms: since,
            settle_ms: 12_000,
            reported_at_ms: at,
        }
    }

    const NOW: i64 = 1_790_000_000_000;

    fn retail() -> Vec<String> {
        vec!["retail".to_owned()]
    }

    #[test]
    fn a_live_server_on_the_version_blocks_it() {
        let reports = [
            report("a", &[("retail", 2)], NOW - 60_000, NOW - 1_000),
            report(
                "b",
                &[("retail", 1), ("express", 3)],
                NOW - 60_000,
                NOW - 2_000,
            ),
        ];
        let blockers = retire_blockers(&reports, &retail(), 1, NOW);
        assert_eq!(blockers.len(), 1, "{blockers:?}");
        assert!(
            blockers[0].starts_with("serve b still seals under version 1 of tenant \"retail\""),
            "{blockers:?}"
        );
        // another tenant's versions do not matter, nor a tenant the server has no key for
        assert!(retire_blockers(&reports, &["express".to_owned()], 2, NOW).is_empty());
        assert!(retire_blockers(&reports, &["outlet".to_owned()], 1, NOW).is_empty());
    }

    #[test]
    fn a_recent_switch_blocks_until_its_requests_are_over() {
        let reports = [report("a", &[("retail", 2)], NOW - 5_000, NOW - 1_000)];
        let blockers = retire_blockers(&reports, &retail(), 1, NOW);
        assert_eq!(blockers.len(), 1, "{blockers:?}");
        assert!(blockers[0].contains("for 7 s more"), "{blockers:?}");
        assert!(retire_blockers(&reports, &retail(), 1, NOW + 7_000).is_empty());
    }

    #[test]
    fn reports_of_gone_processes_are_ignored() {
        let gone = [report("a", &[("retail", 1)], NOW - 600_000, NOW - 61_000)];
        assert!(retire_blockers(&gone, &retail(), 1, NOW).is_empty());
        let live = [report("a", &[("retail", 1)], NOW - 600_000, NOW - 59_000)];
        assert_eq!(retire_blockers(&live, &retail(), 1, NOW).len(), 1);
    }
}
