//! Where the test services are: read from environment variables with local defaults.

/// Environment variable holding the MariaDB server URL, without a database path.
pub const MYSQL_URL_VAR: &str = "OC_TEST_MYSQL_URL";
/// Environment variable holding the Redis URL.
pub const REDIS_URL_VAR: &str = "OC_TEST_REDIS_URL";
/// Environment variable holding the comma separated Kafka bootstrap brokers (`host:port`).
pub const KAFKA_BROKERS_VAR: &str = "OC_TEST_KAFKA_BROKERS";

/// The test user created by `deploy/local/services.sh`.
pub const DEFAULT_MYSQL_URL: &str = "mysql://oc_test:oc_test@127.0.0.1:3306";
/// Redis on loopback, as started by `deploy/local/services.sh`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// The tansu broker started by `deploy/local/services.sh`.
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";

/// The addresses of the three test services, read once from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestEnv {
    /// MariaDB server URL without a database, e.g. `mysql://oc_test:oc_test@127.0.0.1:3306`.
    pub mysql_url: String,
    /// Redis URL, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// Kafka bootstrap brokers, e.g. `["127.0.0.1:9092"]`.
    pub kafka_brokers: Vec<String>,
}

impl TestEnv {
    /// Reads [`MYSQL_URL_VAR`], [`REDIS_URL_VAR`] and [`KAFKA_BROKERS_VAR`], falling back to
    /// the local defaults for unset or empty variables.
    pub fn from_env() -> Self {
        Self {
            mysql_url: mysql_url(),
            redis_url: redis_url(),
            kafka_brokers: kafka_brokers(),
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
