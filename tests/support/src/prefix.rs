//! Names that are unique per test and per process, safe for databases, keys and topics.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest label kept in a prefix, so database names stay under MariaDB's 64 characters.
const MAX_LABEL_CHARS: usize = 12;

/// Returns a name unique per call and per process: `t{unix_secs}_{pid}_{counter}_{random}_{label}`.
///
/// Only `[a-z0-9_]` is used, so the result works as a database name part, a Redis key prefix
/// and a Kafka topic name. The label is lowercased, other characters become `_`, and it is
/// cut to 12 characters; it is there for people reading a listing. The leading unix timestamp
/// lets a sweep find leftovers from crashed runs by age (see
/// [`sweep_stale_databases`](crate::sweep_stale_databases)).
///
/// ```
/// let prefix = oc_test_support::unique_prefix("Orders-Split");
/// assert!(prefix.starts_with('t'));
/// assert!(prefix.ends_with("_orders_split"));
/// assert_ne!(prefix, oc_test_support::unique_prefix("Orders-Split"));
/// ```
pub fn unique_prefix(label: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let process_id = std::process::id();

    // std's RandomState is seeded from the OS per thread and advanced per instance: enough
    // randomness to keep two machines or two reused pids from colliding, without a rand dep.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(since_epoch.as_nanos());
    hasher.write_u32(process_id);
    hasher.write_u64(counter);
    let random = hasher.finish() & 0xff_ffff;

    format!(
        "t{}_{process_id}_{counter}_{random:06x}_{}",
        since_epoch.as_secs(),
        sanitize_label(label)
    )
}

/// Reads back the unix timestamp that [`unique_prefix`] put at the start of `prefix`.
pub(crate) fn prefix_created_at(prefix: &str) -> Option<u64> {
    let rest = prefix.strip_prefix('t')?;
    let seconds = rest.split('_').next()?;
    seconds.parse().ok()
}

fn sanitize_label(label: &str) -> String {
    let sanitized: String = label
        .chars()
        .map(|character| match character.to_ascii_lowercase() {
            lower @ ('a'..='z' | '0'..='9') => lower,
            _ => '_',
        })
        .take(MAX_LABEL_CHARS)
        .collect();
    if sanitized.is_empty() {
        "test".to_owned()
    } else {
        sanitized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_uses_only_lowercase_digits_and_underscore() {
        let prefix = unique_prefix("Hello World/ÄÖ-123 and a long tail");
        assert!(
            prefix
                .chars()
                .all(|character| matches!(character, 'a'..='z' | '0'..='9' | '_')),
            "{prefix}"
        );
        assert!(prefix.ends_with("_hello_world_"), "{prefix}");
    }

    #[test]
    fn prefixes_are_unique_within_a_process() {
        let prefixes: std::collections::HashSet<String> =
            (0..1000).map(|_| unique_prefix("same")).collect();
        assert_eq!(prefixes.len(), 1000);
    }

    #[test]
    fn timestamp_round_trips() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let created_at = prefix_created_at(&unique_prefix("x")).unwrap();
        assert!(created_at >= before && created_at <= before + 5);
        assert_eq!(prefix_created_at("nonsense"), None);
    }

    #[test]
    fn empty_label_gets_a_placeholder() {
        assert!(unique_prefix("").ends_with("_test"));
    }
}
