//! Opening the search index named by a URL of the service config: the one way the binary
//! gets a [`SearchIndex`], so no other crate matches these schemes.

use std::sync::Arc;

use oc_model::ports::{SearchFields, SearchIndex};
use oc_model::{DomainError, DomainResult};

use crate::elastic::{EsConfig, EsSearchIndex, MappedEsIndex};
use crate::embedded::{CommitPolicy, TantivyConfig, TantivySearchIndex};

/// Which search index to open, from a URL:
///
/// - `tantivy://<dir>` (relative) or `tantivy:///var/lib/oc/search` (absolute): the embedded
///   index in that directory, committing every 500 ms, or every `N` ms with
///   `?commit_ms=N` (how soon a write becomes searchable, traded against a commit and a new
///   segment that often);
/// - `http://host:9200[?prefix=…&replicas=…&shards=…&analyzer=…]`: Elasticsearch or
///   OpenSearch ([`EsConfig::from_url`]; `https://` needs this crate's `rustls-tls` feature);
///   each tenant's index and mapping follow its searchable fields ([`MappedEsIndex`]).
#[derive(Debug, Clone)]
pub enum SearchConfig {
    Tantivy(TantivyConfig),
    Elasticsearch(EsConfig),
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid("/search/url", message)
}

impl SearchConfig {
    /// Parse a URL (no I/O).
    pub fn parse(url: &str) -> DomainResult<SearchConfig> {
        if let Some(rest) = url.strip_prefix("tantivy://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(invalid("tantivy:// needs a directory"));
            }
            let mut config = TantivyConfig::on_disk(path);
            for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                match name {
                    "commit_ms" => {
                        let every = crate::interval::millis("tantivy", name, value)?;
                        config = config.with_commit(CommitPolicy::Interval(every));
                    }
                    _ => {
                        return Err(invalid(format!(
                            "tantivy url: unknown parameter {name:?} (commit_ms)"
                        )));
                    }
                }
            }
            return Ok(SearchConfig::Tantivy(config));
        }
        if url.starts_with("https://") && !cfg!(feature = "rustls-tls") {
            return Err(invalid(format!(
                "{url:?}: this build has no TLS for Elasticsearch (oc-search's `rustls-tls` feature); use http:// inside the cluster network or a TLS-terminating sidecar"
            )));
        }
        if let Some(host) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        {
            if host.trim_end_matches('/').is_empty() {
                return Err(invalid("an Elasticsearch URL needs host:port"));
            }
            return Ok(SearchConfig::Elasticsearch(EsConfig::from_url(url)?));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(invalid(format!(
            "unsupported search index scheme {scheme:?}: use tantivy://<dir> or http://<elasticsearch host>:9200"
        )))
    }

    /// Open the index behind the port. `fields` names each tenant's searchable fields as
    /// configured now (Elasticsearch puts them into the tenant's mapping; tantivy needs none).
    pub async fn open(self, fields: Arc<dyn SearchFields>) -> DomainResult<Arc<dyn SearchIndex>> {
        Ok(match self {
            SearchConfig::Tantivy(config) => Arc::new(TantivySearchIndex::open(config)?),
            SearchConfig::Elasticsearch(config) => {
                Arc::new(MappedEsIndex::new(EsSearchIndex::connect(config)?, fields))
            }
        })
    }
}

/// [`SearchConfig::parse`] then [`SearchConfig::open`].
pub async fn open(url: &str, fields: Arc<dyn SearchFields>) -> DomainResult<Arc<dyn SearchIndex>> {
    SearchConfig::parse(url)?.open(fields).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn urls_choose_the_adapter() {
        let SearchConfig::Tantivy(tantivy) = SearchConfig::parse("tantivy://data/search").unwrap()
        else {
            panic!("not tantivy");
        };
        assert_eq!(
            tantivy.path.as_deref(),
            Some(std::path::Path::new("data/search"))
        );
        let SearchConfig::Elasticsearch(es) = SearchConfig::parse("http://es:9200").unwrap() else {
            panic!("not elasticsearch");
        };
        assert_eq!(es.url, "http://es:9200");
        // the query parameters of `EsConfig::from_url` are the binary's too
        let SearchConfig::Elasticsearch(tuned) =
            SearchConfig::parse("http://es:9200?prefix=t-&replicas=0").unwrap()
        else {
            panic!("not elasticsearch");
        };
        assert_eq!(
            (tuned.index_prefix.as_str(), tuned.number_of_replicas),
            ("t-", 0)
        );
        let SearchConfig::Tantivy(quick) =
            SearchConfig::parse("tantivy://data/search?commit_ms=200").unwrap()
        else {
            panic!("not tantivy");
        };
        assert_eq!(
            (quick.path.as_deref(), quick.commit),
            (
                Some(std::path::Path::new("data/search")),
                CommitPolicy::Interval(Duration::from_millis(200))
            )
        );
        assert_eq!(
            tantivy.commit,
            CommitPolicy::Interval(Duration::from_millis(500))
        );
        for bad in [
            "tantivy://",
            "tantivy://data?commit_ms=0",
            "tantivy://data?commit_ms=soon",
            "tantivy://data?merge=no",
            "http://",
            "s3://bucket",
            "es:9200",
            "http://es:9200?colour=red",
        ] {
            let error = SearchConfig::parse(bad).unwrap_err();
            assert_eq!(error.code, oc_model::ErrorCode::InvalidInput, "{bad}");
        }
        if !cfg!(feature = "rustls-tls") {
            let error = SearchConfig::parse("https://es:9200").unwrap_err();
            assert!(error.message.contains("rustls-tls"), "{}", error.message);
        }
    }

    #[tokio::test]
    async fn open_gives_the_embedded_index_behind_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("tantivy://{}", dir.path().join("index").display());
        let index = open(&url, Arc::new(oc_model::ports::NoSearchFields))
            .await
            .unwrap();
        index.health().await.unwrap();
        assert!(dir.path().join("index").exists());
    }
}
