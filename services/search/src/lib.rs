#![doc = include_str!("../README.md")]

mod cursor;
mod document;
pub mod elastic;
pub mod embedded;
mod open;
pub mod text;

pub use cursor::Cursor;
pub use document::{FieldNamer, document_from_order};
pub use elastic::{EsConfig, EsSearchIndex, FieldSource, MappedEsIndex};
pub use embedded::{CommitPolicy, TantivyConfig, TantivySearchIndex};
pub use open::{SearchConfig, open};
