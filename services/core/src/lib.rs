#![doc = include_str!("../README.md")]

pub mod aftersales;
pub mod archive;
pub mod builder;
pub mod caller;
pub mod exports;
pub mod orders;
pub mod pace;
pub mod payments;
pub mod scheduler;
pub mod sealing;
pub mod stock;
pub mod transitions;

pub use builder::{Core, CoreBuilder};
pub use caller::{Caller, PiiView, authenticate};
pub use sealing::Sealer;
