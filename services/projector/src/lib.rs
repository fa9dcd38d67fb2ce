#![doc = include_str!("../README.md")]

mod after_sale_reconcile;
mod backfill;
mod dead_letters;
mod projector;
mod reconcile;
mod stats;

pub use after_sale_reconcile::{
    AfterSaleReconcileReport, AfterSaleRepairReport, AfterSaleVersionDiff, reconcile_after_sales,
    repair_after_sales,
};
pub use backfill::{
    BackfillCheckpoint, BackfillOptions, BackfillReport, ShardCheckpoint, backfill,
};
pub use dead_letters::{
    DeadLetter, DeadLetterKey, ReplayOptions, ReplayReport, replay_dead_letters,
};
pub use projector::{BatchOutcome, Projector, ProjectorConfig, RetryPolicy, Sinks};
pub use reconcile::{
    Checksum, Checksums, ModelReport, ReconcileOptions, ReconcileReport, RepairReport, VersionDiff,
    item_hash, reconcile, repair,
};
pub use stats::{ProjectorStats, SinkKind, SinkStats};
