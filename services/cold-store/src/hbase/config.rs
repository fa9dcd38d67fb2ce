//! How to reach the HBase Thrift server, and the table layout choices that are fixed for
//! the life of a table.

use std::time::Duration;

use oc_model::{DomainError, DomainResult};

/// Largest salt count: salts are one byte below `0x80`, leaving `0xff…` for the meta row.
pub const MAX_SALT_BUCKETS: u8 = 128;

/// The HBase adapter's settings. `HbaseConfig::new(address)` gives working defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaseConfig {
    /// `host:port` of an HBase Thrift (v1) server, `hbase thrift start` (default port 9090).
    pub address: String,
    /// One table holds every tenant; keys are tenant-scoped.
    pub table: String,
    /// Number of salt prefixes (1 = no salting). Part of every row key: fixed for the life
    /// of the table, and checked against the table's meta row at connect.
    pub salt_buckets: u8,
    /// Framed transport (`hbase.regionserver.thrift.framed=true`); else buffered.
    pub framed: bool,
    /// Compact protocol (`hbase.regionserver.thrift.compact=true`); else binary.
    pub compact: bool,
    /// Open connections at most; each runs one call at a time.
    pub max_connections: usize,
    pub connect_timeout: Duration,
    /// Read and write timeout of every call on a connection.
    pub io_timeout: Duration,
    /// How long a call waits for a free connection before answering `Unavailable`.
    pub acquire_timeout: Duration,
    /// Create the table (family `d`, one version, no TTL) when it does not exist. Production
    /// tables should be created ahead, pre-split on the salt byte (see the README).
    pub create_table: bool,
}

impl HbaseConfig {
    pub fn new(address: impl Into<String>) -> HbaseConfig {
        HbaseConfig {
            address: address.into(),
            table: "oc_cold_orders".to_owned(),
            salt_buckets: 16,
            framed: false,
            compact: false,
            max_connections: 8,
            connect_timeout: Duration::from_secs(3),
            io_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(5),
            create_table: true,
        }
    }

    pub(crate) fn validate(&self) -> DomainResult<()> {
        if self.address.trim().is_empty() {
            return Err(DomainError::invalid(
                "/cold_store/address",
                "the HBase Thrift address is empty",
            ));
        }
        let table_ok = !self.table.is_empty()
            && self.table.len() <= 128
            && self.table.bytes().all(|b| {
                b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b':'
            });
        if !table_ok {
            return Err(DomainError::invalid(
                "/cold_store/table",
                format!("{:?} is not an HBase table name", self.table),
            ));
        }
        if self.salt_buckets == 0 || self.salt_buckets > MAX_SALT_BUCKETS {
            return Err(DomainError::invalid(
                "/cold_store/salt_buckets",
                format!("salt_buckets must be 1 to {MAX_SALT_BUCKETS}"),
            ));
        }
        if self.max_connections == 0 {
            return Err(DomainError::invalid(
                "/cold_store/max_connections",
                "max_connections must be at least 1",
            ));
        }
        let zero = Duration::ZERO;
        if self.connect_timeout == zero || self.io_timeout == zero || self.acquire_timeout == zero {
            return Err(DomainError::invalid(
                "/cold_store",
                "timeouts must be greater than zero",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        HbaseConfig::new("127.0.0.1:9090").validate().unwrap();
        let bad = [
            HbaseConfig {
                salt_buckets: 0,
                ..HbaseConfig::new("127.0.0.1:9090")
            },
            HbaseConfig {
                salt_buckets: 129,
                ..HbaseConfig::new("127.0.0.1:9090")
            },
            HbaseConfig {
                table: "orders table".into(),
                ..HbaseConfig::new("127.0.0.1:9090")
            },
            HbaseConfig {
                max_connections: 0,
                ..HbaseConfig::new("127.0.0.1:9090")
            },
            HbaseConfig::new(" "),
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
