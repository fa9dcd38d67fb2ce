#![doc = include_str!("../README.md")]

mod codec;
mod embedded;
pub mod hbase;
mod key;

use std::path::PathBuf;
use std::sync::Arc;

use oc_model::ports::ColdStore;
use oc_model::{DomainError, DomainResult};

pub use embedded::RedbColdStore;
pub use hbase::{HbaseColdStore, HbaseConfig};
pub use key::MAX_PAGE;

/// Which cold store to open, from a URL in the service config:
///
/// - `redb://data/cold.redb` (relative) or `redb:///var/lib/oc/cold.redb` (absolute): the
///   embedded store;
/// - `hbase://host:9090?table=oc_cold_orders&salt_buckets=16&framed=false&compact=false&max_connections=8`:
///   HBase through its Thrift server; every query parameter is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColdStoreConfig {
    Redb(PathBuf),
    Hbase(HbaseConfig),
}

impl ColdStoreConfig {
    pub fn parse(url: &str) -> DomainResult<ColdStoreConfig> {
        if let Some(path) = url.strip_prefix("redb://") {
            if path.is_empty() {
                return Err(invalid("redb:// needs a file path"));
            }
            return Ok(ColdStoreConfig::Redb(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("hbase://") {
            let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
            let address = address.trim_end_matches('/');
            if address.is_empty() {
                return Err(invalid("hbase:// needs host:port"));
            }
            let mut config = HbaseConfig::new(address);
            for pair in query.split('&').filter(|pair| !pair.is_empty()) {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                match name {
                    "table" => config.table = value.to_owned(),
                    "salt_buckets" => config.salt_buckets = number(name, value)?,
                    "framed" => config.framed = flag(name, value)?,
                    "compact" => config.compact = flag(name, value)?,
                    "max_connections" => config.max_connections = number(name, value)?,
                    "create_table" => config.create_table = flag(name, value)?,
                    _ => return Err(invalid(format!("unknown hbase:// parameter {name:?}"))),
                }
            }
            config.validate()?;
            return Ok(ColdStoreConfig::Hbase(config));
        }
        let scheme = url.split(':').next().unwrap_or_default();
        Err(invalid(format!(
            "unsupported cold store scheme {scheme:?}: use redb:// or hbase://"
        )))
    }

    /// Open the configured store behind the port.
    pub async fn open(self) -> DomainResult<Arc<dyn ColdStore>> {
        Ok(match self {
            ColdStoreConfig::Redb(path) => Arc::new(RedbColdStore::open(path).await?),
            ColdStoreConfig::Hbase(config) => Arc::new(HbaseColdStore::connect(config).await?),
        })
    }
}

/// [`ColdStoreConfig::parse`] then [`ColdStoreConfig::open`]: the one way the binary opens a
/// cold store.
pub async fn open(url: &str) -> DomainResult<Arc<dyn ColdStore>> {
    ColdStoreConfig::parse(url)?.open().await
}

fn invalid(message: impl Into<String>) -> DomainError {
    DomainError::invalid("/cold_store/url", message)
}

fn number<T: std::str::FromStr>(name: &str, value: &str) -> DomainResult<T> {
    value
        .parse()
        .map_err(|_| invalid(format!("{name} must be a number, got {value:?}")))
}

fn flag(name: &str, value: &str) -> DomainResult<bool> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(invalid(format!(
            "{name} must be true or false, got {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_adapter() {
        assert_eq!(
            ColdStoreConfig::parse("redb://data/cold.redb").unwrap(),
            ColdStoreConfig::Redb(PathBuf::from("data/cold.redb"))
        );
        assert_eq!(
            ColdStoreConfig::parse("redb:///var/lib/oc/cold.redb").unwrap(),
            ColdStoreConfig::Redb(PathBuf::from("/var/lib/oc/cold.redb"))
        );
        let ColdStoreConfig::Hbase(config) = ColdStoreConfig::parse(
            "hbase://127.0.0.1:9090/?table=cold&salt_buckets=8&framed=true&compact=1&max_connections=2&create_table=false",
        )
        .unwrap() else {
            panic!("not hbase");
        };
        assert_eq!(config.address, "127.0.0.1:9090");
        assert_eq!(config.table, "cold");
        assert_eq!(config.salt_buckets, 8);
        assert!(config.framed && config.compact && !config.create_table);
        assert_eq!(config.max_connections, 2);
        assert_eq!(
            ColdStoreConfig::parse("hbase://h:9090").unwrap(),
            ColdStoreConfig::Hbase(HbaseConfig::new("h:9090"))
        );
        for bad in [
            "redb://",
            "hbase://",
            "hbase://h:1?salt_buckets=0",
            "hbase://h:1?salt=3",
            "hbase://h:1?framed=yes",
            "s3://bucket",
        ] {
            let error = ColdStoreConfig::parse(bad).unwrap_err();
            assert_eq!(error.code, oc_model::ErrorCode::InvalidInput, "{bad}");
        }
    }
}
