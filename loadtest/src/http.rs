//! The HTTP client every scenario (and the bench) uses: hyper with a keep-alive pool, TCP
//! no-delay, loopback targets only.

use anyhow::bail;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A base URL and a pooled client.
#[derive(Debug, Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

/// A response: status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The `id` member of a JSON answer.
    pub fn id(&self) -> Option<String> {
        self.json()["id"].as_str().map(str::to_owned)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

/// Refuse anything but a loopback target.
pub fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url.trim_start_matches("http://");
    let host = if rest.starts_with('[') {
        rest.split(']')
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
    } else {
        rest.split(['/', ':']).next().unwrap_or_default()
    };
    if !(host == "localhost" || host == "::1" || host.starts_with("127.")) {
        bail!("refusing to load {host:?}: only loopback targets are allowed");
    }
    Ok(())
}

impl Http {
    /// The base URL (`http://127.0.0.1:<port>`).
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn new(base: &str) -> anyhow::Result<Http> {
        check_loopback(base)?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1024)
            .build(connector);
        Ok(Http {
            client,
            base: base.trim_end_matches('/').to_owned(),
        })
    }

    /// Send `method path` with the bearer `key`, optional JSON body and extra headers.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if !key.is_empty() {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?,
            None => request.body(Full::new(Bytes::new()))?,
        };
        let response = self.client.request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Answer { status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:1/x",
            "http://[::1]:80",
            "http://127.9.0.1",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://128.0.0.1",
            "http://localhost.evil.com",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }
}
