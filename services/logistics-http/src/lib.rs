#![doc = include_str!("../README.md")]

pub mod client;
pub mod protocol;
pub mod sandbox;

pub use client::HttpLogistics;
pub use sandbox::{Faults, Sandbox};
