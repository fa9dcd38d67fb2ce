//! Shared test fixtures: search documents and queries (`oc_conformance::search::docs`, beside
//! the port's suite).
#![allow(unused_imports)]

pub use oc_conformance::search::docs::*;
