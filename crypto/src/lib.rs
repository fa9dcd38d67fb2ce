#![doc = include_str!("../README.md")]

pub mod blind;
pub mod cipher;
pub mod error;
mod kdf;
pub mod keyring;
pub mod keyring_file;
pub mod mask;
pub mod master;

pub use blind::{BlindIndexer, Normalizer};
pub use cipher::{CiphertextHeader, FieldCipher, FieldContext, parse_header, parse_header_str};
pub use error::{CryptoError, Result};
pub use keyring::{KeyRing, Refresh, TenantKeyRing, WrappedDataKey, WrappedKeyRing};
pub use keyring_file::{KeyRingFile, KeyRingFileLock, TenantKeys};
pub use mask::{mask_address, mask_email, mask_middle, mask_name, mask_phone};
pub use master::MasterKey;
pub use zeroize::Zeroizing;
