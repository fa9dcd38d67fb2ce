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
    /// The indexes' `refresh_interval`: how soon a write becomes searchable, traded against
    /// the cost of a refresh (a new segment) that often. `None` leaves the engine's default
    /// (1 s on an index that is searched). Set on creation and on every `ensure_index`.
    pub refresh_interval: Option<Duration>,
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
            refresh_interval: None,
            request_timeout: Duration::from_secs(10),
            basic_auth: None,
        }
    }

    /// The config of an Elasticsearch URL as the binary takes it (`OC_SEARCH_URL`):
    /// `http://host:9200`, optionally with query parameters `prefix` (index prefix),
    /// `replicas`, `shards`, `analyzer` (product names) and `refresh_ms` (the indexes'
    /// refresh interval in milliseconds, [`EsConfig::refresh_interval`]); the rest are the defaults of
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
                "refresh_ms" => {
                    config.refresh_interval = Some(crate::interval::millis(
                        "elasticsearch",
                        "refresh_ms",
                        &value,
                    )?)
                }
                other => {
                    return Err(DomainError::invalid(
                        "/search/url",
                        format!(
                            "elasticsearch url: unknown parameter {other:?} (prefix, replicas, shards, analyzer, refresh_ms)"
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

    /// The physical index behind the alias, generation `n`: `{alias}.v{n}`. A reindex builds
    /// generation n+1 and moves the alias.
    ///
    /// The generation is set off by `.`, which a tenant id cannot contain (`[a-z0-9_-]`):
    /// with `-`, tenant `x-v1`'s alias `oc-orders-x-v1` was tenant `x`'s index. Now no alias
    /// contains a `.` (unless the prefix does) and every index name ends in `.v{n}` after its
    /// tenant's alias, so no name of one tenant is a name of another's.
    pub fn physical_index(&self, tenant: &TenantId, generation: u32) -> String {
        format!("{}.v{generation}", self.alias(tenant))
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
            .field("refresh_interval", &self.refresh_interval)
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
    use std::collections::BTreeMap;

    use super::*;

    fn tenant(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    /// Tenant ids chosen so that one's name continues another's: `x` and `x-v1`, `x-v1` and
    /// `x-v1-v2`, separators `-` and `_` (both allowed in a tenant id).
    const TRICKY: &[&str] = &[
        "x", "x-v1", "x-v2", "x-v1-v2", "x_v1", "x-", "x--v1", "orders", "0", "a-b", "a", "b",
        "a-b-v1",
    ];

    #[test]
    fn no_tenant_alias_or_index_is_another_tenants_name() {
        let config = EsConfig::new("http://127.0.0.1:9200");
        assert_ne!(
            config.alias(&tenant("x-v1")),
            config.physical_index(&tenant("x"), 1),
            "tenant x-v1's alias is tenant x's index"
        );
        let mut owners: BTreeMap<String, (String, &str)> = BTreeMap::new();
        for name in TRICKY.iter().copied() {
            let tenant = tenant(name);
            let names = [
                (config.alias(&tenant), "alias".to_owned()),
                (config.physical_index(&tenant, 1), "v1".to_owned()),
                (config.physical_index(&tenant, 2), "v2".to_owned()),
                (config.physical_index(&tenant, 12), "v12".to_owned()),
            ];
            for (index, what) in names {
                if let Some((other_what, other_tenant)) =
                    owners.insert(index.clone(), (what.clone(), name))
                {
                    panic!("{index:?} is {name}'s {what} and {other_tenant}'s {other_what}");
                }
            }
        }
    }

    #[test]
    fn names_are_valid_index_names() {
        let config = EsConfig::new("http://127.0.0.1:9200");
        let longest = "t".repeat(32);
        for name in TRICKY.iter().copied().chain([longest.as_str()]) {
            let tenant = tenant(name);
            for index in [
                config.alias(&tenant),
                config.physical_index(&tenant, 1),
                config.physical_index(&tenant, u32::MAX),
            ] {
                // Elasticsearch and OpenSearch: lowercase, none of \ / * ? " < > | space , # :,
                // not starting with - _ +, not . or .., at most 255 bytes
                assert_eq!(index, index.to_lowercase(), "{index}");
                assert!(
                    !index.contains(['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':']),
                    "{index}"
                );
                assert!(!index.starts_with(['-', '_', '+', '.']), "{index}");
                assert!(index.len() <= 255, "{index}");
            }
        }
    }

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
        assert_eq!(tuned.refresh_interval, None);
        let quick = EsConfig::from_url("http://h:9200?refresh_ms=250").unwrap();
        assert_eq!(quick.refresh_interval, Some(Duration::from_millis(250)));
        for bad in [
            "http://h:9200?refresh_ms=0",
            "http://h:9200?refresh_ms=soon",
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
