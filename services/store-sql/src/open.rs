//! Opening the order store from the shard URLs of the service config: the one way the binary
//! gets a store, so no other crate matches these schemes.

use oc_model::{DomainError, DomainResult};

use crate::{Dialect, SqlOrderStore, StoreConfig};

impl StoreConfig {
    /// The defaults for these shards, after checking them (no I/O): at least one, each
    /// `mysql://` / `mariadb://` (cluster) or `sqlite://` (single node), all of one kind.
    pub fn parse<S: AsRef<str>>(shard_urls: &[S]) -> DomainResult<StoreConfig> {
        let Some(first) = shard_urls.first() else {
            return Err(DomainError::invalid(
                "/store/shards",
                "at least one shard is required",
            ));
        };
        let dialect = Dialect::of_url(first.as_ref())?;
        for (index, url) in shard_urls.iter().enumerate() {
            if Dialect::of_url(url.as_ref())? != dialect {
                return Err(DomainError::invalid(
                    format!("/store/shards/{index}"),
                    "all shards must use the same database kind",
                ));
            }
        }
        Ok(StoreConfig::new(
            shard_urls
                .iter()
                .map(|url| url.as_ref().to_owned())
                .collect(),
        ))
    }

    /// Connect to every shard and apply pending migrations ([`SqlOrderStore::connect`]).
    pub async fn open(self) -> DomainResult<SqlOrderStore> {
        SqlOrderStore::connect(self).await
    }
}

/// [`StoreConfig::parse`] then [`StoreConfig::open`], with the default pool settings.
pub async fn open<S: AsRef<str>>(shard_urls: &[S]) -> DomainResult<SqlOrderStore> {
    StoreConfig::parse(shard_urls)?.open().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_dialect() {
        let config = StoreConfig::parse(&["mysql://u:p@h/a", "mariadb://u:p@h/b"]).unwrap();
        assert_eq!(
            config.shard_urls,
            vec!["mysql://u:p@h/a", "mariadb://u:p@h/b"]
        );
        StoreConfig::parse(&["sqlite://data/shard-0.db"]).unwrap();
        let none: [&str; 0] = [];
        for bad in [
            &none[..],
            &["postgres://h/db"][..],
            &["mysql://h/a", "sqlite://b.db"][..],
        ] {
            let error = StoreConfig::parse(bad).unwrap_err();
            assert_eq!(error.code, oc_model::ErrorCode::InvalidInput, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn open_connects_and_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("shard-0.db").display());
        let store = open(&[url]).await.unwrap();
        oc_model::ports::OrderStore::health(&store).await.unwrap();
    }
}
