//! Elasticsearch adapter configuration.

use std::fmt;
use std::time::Duration;

use oc_model::TenantId;

/// Where the cluster is and how indexes are named.
#[derive(Clone)]
pub struct EsConfig {
    /// Base URL, e.g. `http://127.0.0.1:9200` (`https://` needs the `rustls-tls` feature).
    pub url: String,
    /// Prefix of every index and alias name, e.g. `oc-` → `oc-orders-acme`.
    pub index_prefix: String,
    /// Analyzer of `product_names`. `standard` by default; for Chinese product names an
    /// operator may pick the built-in `cjk` (bigrams, closest to the embedded index) or an
    /// installed plugin's `ik_smart` / `smartcn`. Changing it needs a reindex.
    pub product_analyzer: String,
    pub number_of_shards: u32,
    pub number_of_replicas: u32,
    pub request_timeout: Duration,
    /// Basic auth (user, password); never printed.
    pub basic_auth: Option<(String, String)>,
}

impl EsConfig {
    pub fn new(url: impl Into<String>) -> EsConfig {
        EsConfig {
            url: url.into(),
            index_prefix: "oc-".into(),
            product_analyzer: "standard".into(),
            number_of_shards: 1,
            number_of_replicas: 1,
            request_timeout: Duration::from_secs(10),
            basic_auth: None,
        }
    }

    /// The alias every request of `tenant` goes through: `{prefix}orders-{tenant}`.
    pub fn alias(&self, tenant: &TenantId) -> String {
        format!("{}orders-{tenant}", self.index_prefix)
    }

    /// The physical index behind the alias, generation `n`: `{alias}-v{n}`. A reindex builds
    /// generation n+1 and moves the alias.
    pub fn physical_index(&self, tenant: &TenantId, generation: u32) -> String {
        format!("{}-v{generation}", self.alias(tenant))
    }

    /// Every order index of this deployment (for refresh).
    pub fn all_aliases_pattern(&self) -> String {
        format!("{}orders-*", self.index_prefix)
    }
}

impl fmt::Debug for EsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsConfig")
            .field("url", &self.url)
            .field("index_prefix", &self.index_prefix)
            .field("product_analyzer", &self.product_analyzer)
            .field("number_of_shards", &self.number_of_shards)
            .field("number_of_replicas", &self.number_of_replicas)
            .field("request_timeout", &self.request_timeout)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(user, _)| (user, "***")),
            )
            .finish()
    }
}
