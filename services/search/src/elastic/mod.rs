//! The Elasticsearch adapter (cluster mode), laid out like every sink: `config`, `request`
//! (pure request building), `response` (pure answer reading) and `client` (the wire).

pub mod after_sales;
mod client;
mod config;
mod mapped;
pub mod request;
pub mod response;

pub use client::EsSearchIndex;
pub use config::{EsConfig, ORDERCENTER_CJK_ANALYZER, ORDERCENTER_CJK_SEARCH_ANALYZER};
pub use mapped::MappedEsIndex;
