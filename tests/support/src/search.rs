//! An index-name prefix per test on the OpenSearch / Elasticsearch of [`search_url`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::prefix::{prefix_created_at, unique_prefix};
use crate::{bounded, search_url};

/// Every index a test makes starts with this (the adapter puts its own names after it).
const INDEX_NAME_PREFIX: &str = "oct_";

/// Test indices older than this are deleted by the sweep of the first [`SearchPrefix::new`]
/// of each process (left behind by a test that panicked or was killed).
pub const STALE_INDEX_AGE: Duration = Duration::from_secs(60 * 60);

static STARTUP_SWEEP_DONE: AtomicBool = AtomicBool::new(false);

/// A unique index prefix `oct_<unique_prefix>-` for one test: give it to the adapter as its
/// index prefix, and every index and alias it makes is removed by [`SearchPrefix::cleanup`].
#[derive(Debug, Clone)]
pub struct SearchPrefix {
    prefix: String,
    url: String,
}

impl SearchPrefix {
    /// A fresh prefix for the test named by `label`, after checking that the engine answers
    /// (an error naming the URL and the command that starts it, never a skip).
    pub async fn new(label: &str) -> anyhow::Result<Self> {
        let url = search_url();
        let (status, body) = search_request(&url, "GET", "/", None)
            .await
            .with_context(|| {
                format!(
                    "the search engine at {url} does not answer (run `deploy/local/services.sh up`)"
                )
            })?;
        anyhow::ensure!(status == 200, "GET {url}/ answered {status}: {body}");
        if !STARTUP_SWEEP_DONE.swap(true, Ordering::SeqCst)
            && let Err(error) = sweep_stale_indices(&url, STALE_INDEX_AGE).await
        {
            eprintln!("oc-test-support: stale index sweep failed: {error:#}");
        }
        Ok(Self {
            prefix: format!("{INDEX_NAME_PREFIX}{}-", unique_prefix(label)),
            url,
        })
    }

    /// The prefix: `[a-z0-9_]` then `-`, a valid start of an index name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The engine's base URL, e.g. `http://127.0.0.1:9200`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a request to the engine (path relative to its root, e.g. `/_cat/indices`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        json_body: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        search_request(&self.url, method, path, json_body).await
    }

    /// Deletes every index whose name starts with the prefix (their aliases go with them).
    pub async fn cleanup(self) -> anyhow::Result<()> {
        delete_indices(&self.url, &format!("{}*", self.prefix)).await
    }
}

async fn delete_indices(url: &str, pattern: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        pattern.starts_with(INDEX_NAME_PREFIX),
        "refusing to delete {pattern:?}: not a test index"
    );
    // expand_wildcards=all: closed or hidden test indices go too; no match is not an error
    let path = format!("/{pattern}?expand_wildcards=all&allow_no_indices=true");
    let (status, body) = search_request(url, "DELETE", &path, None).await?;
    anyhow::ensure!(
        status == 200 || status == 404,
        "DELETE {pattern} answered {status}: {body}"
    );
    Ok(())
}

async fn sweep_stale_indices(url: &str, max_age: Duration) -> anyhow::Result<()> {
    let (status, body) = search_request(
        url,
        "GET",
        &format!("/_cat/indices/{INDEX_NAME_PREFIX}*?h=index&expand_wildcards=all"),
        None,
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "listing test indices answered {status}: {body}"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    for index in body.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let stale = index
            .strip_prefix(INDEX_NAME_PREFIX)
            .and_then(prefix_created_at)
            .is_some_and(|created_at| now.saturating_sub(created_at) > max_age.as_secs());
        if stale {
            delete_indices(url, index).await?;
        }
    }
    Ok(())
}

/// One HTTP/1.1 request to the engine at `base_url` (`http://host:port`), bounded by
/// [`SERVICE_TIMEOUT`](crate::SERVICE_TIMEOUT): status and body. Enough for test set-up and
/// clean-up without an HTTP client dependency; the code under test uses its own client.
pub async fn search_request(
    base_url: &str,
    method: &str,
    path: &str,
    json_body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let authority = base_url
        .strip_prefix("http://")
        .with_context(|| format!("{base_url}: only http:// search URLs are supported in tests"))?
        .trim_end_matches('/')
        .to_owned();
    let body = json_body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    bounded("a search engine request", async {
        let mut stream = TcpStream::connect(&authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        parse_response(&answer).with_context(|| format!("{method} {path}"))
    })
    .await
}

fn parse_response(answer: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of the HTTP head")?;
    let status: u16 = head
        .split(' ')
        .nth(1)
        .context("no status code")?
        .parse()
        .context("bad status code")?;
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> anyhow::Result<String> {
    let mut body = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n").context("bad chunk size line")?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .context("bad chunk size")?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).context("short chunk")?);
        rest = after.get(size + 2..).context("short chunk end")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_plain_and_chunked() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (200, "{}".to_owned()));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap(), (404, "abcde".to_owned()));
    }
}
