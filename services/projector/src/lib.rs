#![doc = include_str!("../README.md")]

mod backfill;
mod projector;
mod reconcile;
mod stats;

pub use backfill::{
    BackfillCheckpoint, BackfillOptions, BackfillReport, ShardCheckpoint, backfill,
};
pub use projector::{BatchOutcome, Projector, ProjectorConfig, RetryPolicy, Sinks};
pub use reconcile::{
    Checksum, Checksums, ModelReport, ReconcileOptions, ReconcileReport, RepairReport, VersionDiff,
    item_hash, reconcile, repair,
};
pub use stats::{ProjectorStats, SinkKind, SinkStats};
