#![doc = include_str!("../README.md")]

pub mod client;
pub mod protocol;
pub mod sandbox;
pub mod sandbox_kit;
pub mod secrets;

pub use client::HttpProvider;
pub use sandbox::{Faults, Sandbox};
pub use secrets::FileSecrets;
