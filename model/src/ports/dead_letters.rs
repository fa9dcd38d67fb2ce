//! Orders a read model refused: the projector records them here and moves on, so one bad
//! order does not stop projection for every tenant on its partitions. An operator lists them
//! and replays them once the cause is fixed (`ordercenter dead-letters list|replay`). The
//! store keeps them in a table of shard 0.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainResult, ErrorCode};
use crate::ids::{OrderId, TenantId};

/// One read model the projector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    Search,
    Cold,
    Cache,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::Search, SinkKind::Cold, SinkKind::Cache];

    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Search => "search",
            SinkKind::Cold => "cold",
            SinkKind::Cache => "cache",
        }
    }

    /// The kind named `name` (its [`SinkKind::as_str`]).
    pub fn parse(name: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order one read model refused, as recorded (one per tenant, order and sink).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub sink: SinkKind,
    /// The order's version the sink refused (the latest failure's).
    pub version: u64,
    pub error_code: ErrorCode,
    pub error_message: String,
    /// Attempts so far, over every failure recorded (the projector's and each replay's).
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub first_failed_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_failed_at: OffsetDateTime,
    /// The event that led to the failure: its id (`{order_id}-{version}`, unique in the
    /// tenant's topic); absent when the order came from a backfill or
    /// repair rather than an event.
    pub event_id: Option<String>,
}

/// The dead-letter record of the read models.
#[async_trait]
pub trait DeadLetters: Send + Sync + fmt::Debug + 'static {
    /// Records a failure of `letter.sink` on `letter.order_id`: a new record as given, or,
    /// when one exists for the same tenant, order and sink, that record with `attempts`
    /// added, and version, error, last failure time and event replaced (the first failure
    /// time is kept).
    async fn record(&self, letter: &DeadLetter) -> DomainResult<()>;

    /// Open records, oldest first failure first, of one tenant or of all; at most `limit`.
    async fn list(&self, tenant: Option<&TenantId>, limit: u32) -> DomainResult<Vec<DeadLetter>>;

    /// Removes a record (absent is fine).
    async fn remove(
        &self,
        tenant: &TenantId,
        order_id: OrderId,
        sink: SinkKind,
    ) -> DomainResult<()>;

    /// How many records are open, for the gauge.
    async fn count(&self) -> DomainResult<u64>;
}
