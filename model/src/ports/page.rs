//! Pages of a listing: the request (a cursor from the previous page and a limit) and the
//! answer.

use serde::{Deserialize, Serialize};

/// A page request: an opaque cursor from the previous page and a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Present when there may be more.
    pub next_cursor: Option<String>,
}
