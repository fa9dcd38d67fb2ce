//! The conformance suites of Order Center's ports, beside the ports they hold to account
//! (`oc_model::ports`), and the order fixtures every test suite builds from.
//!
//! One module per port: its cases are `pub async fn case(harness)` over a small harness
//! trait (the adapter under test, opened fresh for each case), and one macro instantiates
//! one `#[tokio::test]` per case for a given harness, so every adapter, and the breaker
//! wrapper `Guarded<P>` around one, runs the same list:
//!
//! ```ignore
//! oc_conformance::cold_store_conformance!(redb, Harness::redb);
//! ```
//!
//! A dev-dependency only: no release build links it.

pub mod cache;
pub mod cold_store;
pub mod fixtures;
pub mod order_store;
pub mod search;
