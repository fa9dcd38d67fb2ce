//! Pacing a walk to at most a rate a second: the archive passes and `keys reencrypt`.

use std::time::Duration;

/// Paces calls to at most `rate` a second: each waits for its slot.
#[derive(Debug)]
pub struct Pacer {
    interval: Option<Duration>,
    next: tokio::time::Instant,
}

impl Pacer {
    /// At most `rate_per_sec` calls a second; `0`: unpaced.
    pub fn new(rate_per_sec: u32) -> Pacer {
        Pacer {
            interval: (rate_per_sec > 0).then(|| Duration::from_secs(1) / rate_per_sec),
            next: tokio::time::Instant::now(),
        }
    }

    /// Waits for this call's slot.
    pub async fn wait(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = tokio::time::Instant::now();
        if self.next > now {
            tokio::time::sleep_until(self.next).await;
        }
        // no credit for idle time: a slow pass does not earn a burst
        self.next = self.next.max(now) + interval;
    }
}
