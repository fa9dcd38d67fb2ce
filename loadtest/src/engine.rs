//! The load engine: open loop (constant arrival rate, latency from the *scheduled* start, so
//! a stalled server cannot hide its queueing: no coordinated omission) or closed loop (N
//! workers back to back, to find a ceiling). A one-line progress report goes to stderr once
//! a second.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::stats::{Outcome, Report, Tally};

/// How requests are sent.
#[derive(Debug, Clone, Copy)]
pub enum Load {
    /// Requests per second, each on its own task.
    Open { rate: f64, max_in_flight: u64 },
    /// Workers sending back to back.
    Closed { workers: u32 },
}

impl Load {
    pub fn describe(&self) -> String {
        match self {
            Load::Open { rate, .. } => format!("open loop at {rate:.0}/s"),
            Load::Closed { workers } => format!("closed loop with {workers} workers"),
        }
    }
}

/// One run: the load, warm-up (same load, not recorded) and measured time.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub load: Load,
    pub warmup: Duration,
    pub duration: Duration,
    pub progress: bool,
}

/// One step of a scenario: request number `n` → what it gave.
pub trait Step: Send + Sync + 'static {
    fn step(&self, n: u64) -> impl Future<Output = Outcome> + Send;

    /// How many steps there are, for a step that consumes prepared items (payments to call
    /// back, after-sales to refund): the run ends when they are used up instead of failing
    /// each further step at once, which in a closed loop is a busy loop counting millions
    /// of instant "failures" against a handful of real answers.
    fn limit(&self) -> Option<u64> {
        None
    }
}

/// Run `step` under `plan` and report the measured part.
pub async fn run<S: Step>(step: Arc<S>, plan: &Plan) -> Report {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let total = plan.warmup + plan.duration;
    let counter = Arc::new(AtomicU64::new(0));
    let limit = step.limit().unwrap_or(u64::MAX);
    let progress = plan
        .progress
        .then(|| tokio::spawn(progress_line(plan.clone(), Arc::clone(&tally), started)));
    match plan.load {
        Load::Open {
            rate,
            max_in_flight,
        } => {
            let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
            let in_flight = Arc::new(AtomicU64::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            let mut n: u64 = 0;
            loop {
                let scheduled = started + interval.mul_f64(n as f64);
                if scheduled.duration_since(started) >= total {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let measuring = scheduled.duration_since(started) >= plan.warmup;
                n += 1;
                if in_flight.load(Ordering::Relaxed) >= max_in_flight {
                    if measuring {
                        tally.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    continue;
                }
                let number = counter.fetch_add(1, Ordering::Relaxed);
                if number >= limit {
                    break;
                }
                in_flight.fetch_add(1, Ordering::Relaxed);
                let (step, tally, in_flight) = (
                    Arc::clone(&step),
                    Arc::clone(&tally),
                    Arc::clone(&in_flight),
                );
                tasks.spawn(async move {
                    let outcome = step.step(number).await;
                    if measuring {
                        tally.record(&outcome, scheduled.elapsed());
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        }
        Load::Closed { workers } => {
            let mut tasks = tokio::task::JoinSet::new();
            let warmup = plan.warmup;
            for _ in 0..workers.max(1) {
                let (step, tally, counter) =
                    (Arc::clone(&step), Arc::clone(&tally), Arc::clone(&counter));
                tasks.spawn(async move {
                    while started.elapsed() < total {
                        let sent_at = Instant::now();
                        let measuring = sent_at.duration_since(started) >= warmup;
                        let number = counter.fetch_add(1, Ordering::Relaxed);
                        if number >= limit {
                            break;
                        }
                        let outcome = step.step(number).await;
                        if measuring {
                            tally.record(&outcome, sent_at.elapsed());
                        }
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }
    if let Some(progress) = progress {
        progress.abort();
        eprintln!();
    }
    if counter.load(Ordering::Relaxed) >= limit {
        eprintln!(
            "{}: all {limit} prepared items used after {:.1} s; the run ends there (prepare more to run longer)",
            plan.name,
            started.elapsed().as_secs_f64()
        );
    }
    // the measured time ends when the run did, also when the prepared items ran out early
    let measured = started.elapsed().saturating_sub(plan.warmup);
    tally.report(&plan.name, &plan.load.describe(), measured)
}

async fn progress_line(plan: Plan, tally: Arc<Tally>, started: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let total = (plan.warmup + plan.duration).as_secs();
    let mut last = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs();
        let done = tally.done.load(Ordering::Relaxed);
        let failed = tally.failed.load(Ordering::Relaxed);
        let phase = if started.elapsed() < plan.warmup {
            "warm-up"
        } else {
            "measuring"
        };
        let line = format!(
            "{} [{elapsed:>3}/{total} s {phase}] {done} recorded, {}/s, {failed} failed, {} dropped",
            plan.name,
            done - last,
            tally.dropped.load(Ordering::Relaxed)
        );
        last = done;
        let mut stderr = std::io::stderr().lock();
        if terminal {
            let _ = write!(stderr, "\r{line:<100}");
        } else if elapsed.is_multiple_of(5) {
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step over `items` prepared items that fails, like the payments step did, once they
    /// are used up.
    struct Prepared {
        items: u64,
        calls: AtomicU64,
    }

    impl Step for Prepared {
        async fn step(&self, n: u64) -> Outcome {
            self.calls.fetch_add(1, Ordering::Relaxed);
            if n >= self.items {
                return Outcome::failed("item", "ran out of prepared items");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            Outcome::status("item", 200)
        }

        fn limit(&self) -> Option<u64> {
            Some(self.items)
        }
    }

    fn plan(load: Load) -> Plan {
        Plan {
            name: "prepared".to_owned(),
            load,
            warmup: Duration::ZERO,
            // far longer than the items last: the run must end when they are used up
            duration: Duration::from_secs(600),
            progress: false,
        }
    }

    #[tokio::test]
    async fn a_run_over_prepared_items_ends_when_they_are_used_up() {
        for load in [
            Load::Closed { workers: 4 },
            Load::Open {
                rate: 1000.0,
                max_in_flight: 64,
            },
        ] {
            let step = Arc::new(Prepared {
                items: 20,
                calls: AtomicU64::new(0),
            });
            let report =
                tokio::time::timeout(Duration::from_secs(30), run(Arc::clone(&step), &plan(load)))
                    .await
                    .expect("the run ends once the prepared items are used up");
            assert_eq!(step.calls.load(Ordering::Relaxed), 20, "{load:?}");
            assert_eq!(report.ok, 20, "{load:?}: {:?}", report.first_error);
            assert_eq!(report.errors, 0, "{load:?}: {:?}", report.first_error);
        }
    }
}
