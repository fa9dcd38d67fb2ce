#![doc = include_str!("../README.md")]

mod backfill;
mod namer;
mod offsets;
mod projector;
mod reconcile;
mod stats;
mod stream;

pub use backfill::{
    BackfillCheckpoint, BackfillOptions, BackfillReport, ShardCheckpoint, backfill, next_keys,
};
pub use namer::{NoSearchableFields, TenantFieldNamer};
pub use offsets::SqlOffsetStore;
pub use projector::{BatchOutcome, Projector, ProjectorConfig, RetryPolicy, Sinks};
pub use reconcile::{
    Checksum, Checksums, ModelReport, ReconcileOptions, ReconcileReport, RepairReport, VersionDiff,
    item_hash, reconcile, repair,
};
pub use stats::{ProjectorStats, SinkKind, SinkStats};
pub use stream::{EventStream, KafkaStream, LocalStream};
