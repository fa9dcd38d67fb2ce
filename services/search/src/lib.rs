#![doc = include_str!("../README.md")]

mod cursor;
pub mod elastic;
pub mod embedded;
mod interval;
mod open;
pub mod text;

pub use cursor::Cursor;
pub use elastic::{EsConfig, EsSearchIndex, MappedEsIndex};
pub use embedded::{CommitPolicy, TantivyConfig, TantivySearchIndex};
/// The document every adapter here is given (built in `oc-model`, from the tenant config).
pub use oc_model::indexing::document_from_order;
pub use open::{SearchConfig, open};
