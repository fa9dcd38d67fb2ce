//! The orders domain. One file per use case group, all methods of [`OrderService`]:
//!
//! | use case | file |
//! |---|---|
//! | create (validate, price, seal, insert with outbox + idempotency) | `create.rs` |
//! | update (compare-and-set through `commit_change`) | `change.rs` |
//! | get (cache → shard → cold), list by buyer | `read.rs` |
//! | search (query from parameters, index, shard fallback) | `search.rs` |
//!
//! and what they share: `service.rs` (the type, its ports, retries, cache write-through),
//! `extension.rs` (extension fields by configured name into slots), `parties.rs`
//! (shipper/receiver checks and sealing), `validate.rs` (text and logistics checks),
//! `view.rs` (rendering by role), `input.rs` / `output.rs` (what the use cases take and
//! answer).

mod change;
mod create;
mod extension;
pub mod input;
pub mod output;
mod parties;
mod read;
pub(crate) mod search;
mod service;
mod validate;
mod view;

pub(crate) use change::stale;
pub use create::request_hash;
pub(crate) use service::archived_error;
pub use service::{OrderService, ReadModels};
pub(crate) use validate::{MAX_TEXT, optional_text};
pub use view::WITHHELD;
pub(crate) use view::{Renderer, free_text};
