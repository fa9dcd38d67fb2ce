//! After-sales (issue #20, seeds 000 and 001): refund-only, return-and-refund, exchange and
//! repair applications against a delivered order, and the per-unit refund split they draw on.

pub mod split;

pub use split::{LineSplit, RefundSplit, RequestedLine, SplitKey};
