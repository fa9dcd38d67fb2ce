//! Elasticsearch adapter configuration.

use std::fmt;
use std::time::Duration;

use elasticsearch::http::Url;
use oc_model::{DomainError, DomainResult, TenantId};

/// The analyzer every index defines for itself (see [`EsConfig::product_analyzer`]): at
/// index time `standard` tokens, CJK width folding, lowercase, then CJK bigrams plus
/// unigrams; its search-time twin ([`ORDERCENTER_CJK_SEARCH_ANALYZER`]) emits the bigrams
/// only (a lone CJK character stays a unigram). So `冻品` finds `冻品 A` but not `品冻`, and
/// `冻` finds both, as in the embedded index. Built-in `standard` splits CJK text into
/// single characters (`冻品` would also find `品冻`); built-in `cjk` indexes bigrams only
/// (`冻` would find neither).
pub const ORDERCENTER_CJK_ANALYZER: &str = "ordercenter_cjk";
/// The search-time analyzer paired with [`ORDERCENTER_CJK_ANALYZER`].
pub const ORDERCENTER_CJK_SEARCH_ANALYZER: &str = "ordercenter_cjk_search";

/// Where the cluster is and how indexes are named.
#[derive(Clone)]
pub struct EsConfig {
    /// Base URL, e.g. `http://127.0.0.1:9200` (`https://` needs the `rustls-tls` feature).
    pub url: String,
    /// Prefix of every index and alias name, e.g. `oc-` → `oc-orders-acme`.
    pub index_prefix: String,
    /// Analyzer of `product_names`. By default [`ORDERCENTER_CJK_ANALYZER`], defined in every
    /// index's settings to match the embedded index: CJK runs indexed as unigrams and
    /// bigrams and searched by bigrams (a lone character by itself), other words lowercased.
    /// An operator may pick a built-in analyzer (`standard`, `cjk`) or an installed plugin's
    /// (`ik_smart`, `smartcn`) instead. Changing it needs a reindex.
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
            product_analyzer: ORDERCENTER_CJK_ANALYZER.into(),
            number_of_shards: 1,
            number_of_replicas: 1,
            request_timeout: Duration::from_secs(10),
            basic_auth: None,
        }
    }

    /// The config of an Elasticsearch URL as the binary takes it (`OC_SEARCH_URL`):
    /// `http://host:9200`, optionally with query parameters `prefix` (index prefix),
    /// `replicas`, `shards` and `analyzer` (product names); the rest are the defaults of
    /// [`EsConfig::new`]. A one-node test cluster, for instance:
    /// `http://127.0.0.1:9200?prefix=test-&replicas=0`.
    pub fn from_url(url: &str) -> DomainResult<EsConfig> {
        let parsed = Url::parse(url).map_err(|error| {
            DomainError::invalid("/search/url", format!("bad elasticsearch url: {error}"))
        })?;
        let mut base = parsed.clone();
        base.set_query(None);
        let mut config = EsConfig::new(base.as_str().trim_end_matches('/'));
        for (name, value) in parsed.query_pairs() {
            let count = |what: &str| {
                value.parse::<u32>().map_err(|_| {
                    DomainError::invalid(
                        "/search/url",
                        format!("elasticsearch url: {what} must be a number, not {value:?}"),
                    )
                })
            };
            match name.as_ref() {
                "prefix" => config.index_prefix = value.into_owned(),
                "replicas" => config.number_of_replicas = count("replicas")?,
                "shards" => config.number_of_shards = count("shards")?,
                "analyzer" => config.product_analyzer = value.into_owned(),
                other => {
                    return Err(DomainError::invalid(
                        "/search/url",
                        format!(
                            "elasticsearch url: unknown parameter {other:?} (prefix, replicas, shards, analyzer)"
                        ),
                    ));
                }
            }
        }
        let prefix_ok = config
            .index_prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
            && !config.index_prefix.starts_with(['-', '_', '.']);
        if !prefix_ok {
            return Err(DomainError::invalid(
                "/search/url",
                format!(
                    "elasticsearch index prefix {:?}: lowercase letters, digits, - _ . only",
                    config.index_prefix
                ),
            ));
        }
        Ok(config)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_prefix_replicas_shards_and_analyzer() {
        let plain = EsConfig::from_url("http://127.0.0.1:9200").unwrap();
        assert_eq!(plain.url, "http://127.0.0.1:9200");
        assert_eq!(plain.index_prefix, "oc-");
        assert_eq!(plain.number_of_replicas, 1);
        let tuned = EsConfig::from_url(
            "http://es.internal:9200/?prefix=test_1-&replicas=0&shards=3&analyzer=standard",
        )
        .unwrap();
        assert_eq!(tuned.url, "http://es.internal:9200");
        assert_eq!(tuned.index_prefix, "test_1-");
        assert_eq!((tuned.number_of_replicas, tuned.number_of_shards), (0, 3));
        assert_eq!(tuned.product_analyzer, "standard");
        for bad in [
            "not a url",
            "http://h:9200?replicas=x",
            "http://h:9200?prefix=Upper",
            "http://h:9200?colour=red",
        ] {
            let error = EsConfig::from_url(bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("/search/url"), "{bad}");
        }
    }
}
