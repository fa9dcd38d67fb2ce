//! Where the test services are: read from environment variables with local defaults.

/// Environment variable holding the MariaDB server URL, without a database path.
pub const MYSQL_URL_VAR: &str = "OC_TEST_MYSQL_URL";
/// Environment variable holding the Redis URL.
pub const REDIS_URL_VAR: &str = "OC_TEST_REDIS_URL";
/// Environment variable holding the comma separated Kafka bootstrap brokers (`host:port`).
pub const KAFKA_BROKERS_VAR: &str = "OC_TEST_KAFKA_BROKERS";
/// Environment variable holding the search engine's base URL (OpenSearch or Elasticsearch).
pub const SEARCH_URL_VAR: &str = "OC_TEST_SEARCH_URL";
/// Environment variable holding the HBase Thrift (v1) server's `host:port`.
pub const HBASE_ADDRESS_VAR: &str = "OC_TEST_HBASE_ADDRESS";
/// Environment variable holding the broker's fault-test listener (`host:port`).
pub const KAFKA_FAULT_BROKER_VAR: &str = "OC_TEST_KAFKA_FAULT_BROKER";
/// Environment variable holding the address that listener advertises (`host:port`), where a
/// fault test puts its proxy.
pub const KAFKA_FAULT_PROXY_VAR: &str = "OC_TEST_KAFKA_FAULT_PROXY";

/// The test user created by `deploy/local/services.sh`.
pub const DEFAULT_MYSQL_URL: &str = "mysql://oc_test:oc_test@127.0.0.1:3306";
/// Redis on loopback, as started by `deploy/local/services.sh`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The Apache Kafka broker started by `deploy/local/services.sh`.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";
/// The embedded OpenSearch node started by `deploy/local/services.sh`.
pub const DEFAULT_SEARCH_URL: &str = "http://127.0.0.1:9200";
/// HBase's Thrift server started by `deploy/local/services.sh`.
pub const DEFAULT_HBASE_ADDRESS: &str = "127.0.0.1:9090";
/// The Kafka broker's second listener, for fault tests (`deploy/local/engines/engines.sh`).
pub const DEFAULT_KAFKA_FAULT_BROKER: &str = "127.0.0.1:9094";
/// What that listener advertises: the port a fault test's proxy listens on.
pub const DEFAULT_KAFKA_FAULT_PROXY: &str = "127.0.0.1:9095";

/// The addresses of the test services, read once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEnv {
    /// MariaDB server URL without a database, e.g. `mysql://oc_test:oc_test@127.0.0.1:3306`.
    pub mysql_url: String,
    /// Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Kafka bootstrap brokers, e.g. `["127.0.0.1:9092"]`.
    pub kafka_brokers: Vec<String>,
    /// Search engine base URL, e.g. `http://127.0.0.1:9200`.
    pub search_url: String,
    /// HBase Thrift server, e.g. `127.0.0.1:9090`.
    pub hbase_address: String,
}

impl TestEnv {
    /// Reads [`MYSQL_URL_VAR`], [`REDIS_URL_VAR`], [`KAFKA_BROKERS_VAR`],
    /// [`SEARCH_URL_VAR`] and [`HBASE_ADDRESS_VAR`], falling back to the local defaults for
    /// unset or empty variables.
    pub fn from_env() -> Self {
        Self {
            mysql_url: mysql_url(),
            redis_url: redis_url(),
            kafka_brokers: kafka_brokers(),
            search_url: search_url(),
            hbase_address: hbase_address(),
        }
    }
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// The MariaDB server URL ([`MYSQL_URL_VAR`] or [`DEFAULT_MYSQL_URL`]), trailing `/` removed.
pub fn mysql_url() -> String {
    let url = non_empty_var(MYSQL_URL_VAR).unwrap_or_else(|| DEFAULT_MYSQL_URL.to_owned());
    url.trim_end_matches('/').to_owned()
}

/// The Redis URL ([`REDIS_URL_VAR`] or [`DEFAULT_REDIS_URL`]).
pub fn redis_url() -> String {
    non_empty_var(REDIS_URL_VAR).unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// The Kafka bootstrap brokers ([`KAFKA_BROKERS_VAR`] or [`DEFAULT_KAFKA_BROKERS`]).
pub fn kafka_brokers() -> Vec<String> {
    let brokers =
        non_empty_var(KAFKA_BROKERS_VAR).unwrap_or_else(|| DEFAULT_KAFKA_BROKERS.to_owned());
    brokers
        .split(',')
        .map(str::trim)
        .filter(|broker| !broker.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The search engine's base URL ([`SEARCH_URL_VAR`] or [`DEFAULT_SEARCH_URL`]), trailing `/`
/// removed.
pub fn search_url() -> String {
    let url = non_empty_var(SEARCH_URL_VAR).unwrap_or_else(|| DEFAULT_SEARCH_URL.to_owned());
    url.trim_end_matches('/').to_owned()
}

/// The HBase Thrift server's `host:port` ([`HBASE_ADDRESS_VAR`] or [`DEFAULT_HBASE_ADDRESS`]).
pub fn hbase_address() -> String {
    non_empty_var(HBASE_ADDRESS_VAR).unwrap_or_else(|| DEFAULT_HBASE_ADDRESS.to_owned())
}

/// The broker's fault-test listener and the address it advertises
/// ([`KAFKA_FAULT_BROKER_VAR`], [`KAFKA_FAULT_PROXY_VAR`]): a test that puts a proxy on the
/// second, forwarding to the first, sees every connection of its Kafka client cross the
/// proxy, bootstrap and partition leaders alike.
pub fn kafka_fault_listener() -> (String, String) {
    (
        non_empty_var(KAFKA_FAULT_BROKER_VAR)
            .unwrap_or_else(|| DEFAULT_KAFKA_FAULT_BROKER.to_owned()),
        non_empty_var(KAFKA_FAULT_PROXY_VAR)
            .unwrap_or_else(|| DEFAULT_KAFKA_FAULT_PROXY.to_owned()),
    )
}
