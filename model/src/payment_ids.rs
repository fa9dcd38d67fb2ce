//! The payment domain's identifiers, apart from its records: an order event names a payment
//! (`OrderEvent.payment`) and a payment record carries order events, so the ids live where
//! both `event` and `payment` can take them without either taking the other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;
use crate::ids::{Bucket, OrderId};

macro_rules! gene_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(OrderId);

        impl $name {
            /// An id made by the order id generator for the order's bucket.
            pub fn generated(id: OrderId) -> $name {
                $name(id)
            }

            /// Accept a raw value from storage or the wire.
            pub fn from_raw(raw: u64) -> Result<$name, DomainError> {
                OrderId::from_raw(raw)
                    .map($name)
                    .map_err(|_| DomainError::invalid("", format!("{raw} is not a {}", $what)))
            }

            pub fn get(self) -> u64 {
                self.0.get()
            }

            pub fn as_i64(self) -> i64 {
                self.0.as_i64()
            }

            /// The shard bucket of the order this record belongs to.
            pub fn bucket(self) -> Bucket {
                self.0.bucket()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let id: OrderId = s
                    .parse()
                    .map_err(|_| DomainError::invalid("", format!("{s:?} is not a {}", $what)))?;
                Ok($name::generated(id))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.get())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                raw.parse()
                    .map_err(|e: DomainError| serde::de::Error::custom(e.message))
            }
        }
    };
}

gene_id!(
    /// A payment record's id: carries the order's bucket; a decimal string on the wire.
    PaymentId,
    "payment id"
);
gene_id!(
    /// A refund record's id: carries the order's bucket; a decimal string on the wire.
    RefundId,
    "refund id"
);

/// A payment provider's name as configured (`sandbox`, `wechat`, `alipay`): 1..=32 of
/// `[a-z0-9_-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ProviderName(String);

impl ProviderName {
    pub fn parse(value: impl Into<String>) -> Result<ProviderName, DomainError> {
        let value = value.into();
        let valid = !value.is_empty()
            && value.len() <= 32
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric());
        if valid {
            Ok(ProviderName(value))
        } else {
            Err(DomainError::invalid(
                "",
                format!(
                    "a payment provider name is 1 to 32 characters of a-z, 0-9, '_' or '-', got {value:?}"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ProviderName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ProviderName::parse(raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}
