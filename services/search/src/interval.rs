//! How a search URL says how soon a write becomes searchable (`commit_ms` for the embedded
//! index, `refresh_ms` for Elasticsearch): one parse for both.

use std::time::Duration;

use oc_model::{DomainError, DomainResult};

/// `value` of URL parameter `name` as a positive number of milliseconds.
pub(crate) fn millis(engine: &str, name: &str, value: &str) -> DomainResult<Duration> {
    match value.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(DomainError::invalid(
            "/search/url",
            format!(
                "{engine} url: {name} must be a number of milliseconds, at least 1, not {value:?}"
            ),
        )),
    }
}
