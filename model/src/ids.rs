//! Identifiers: validated newtypes for tenants and codes, and the 64-bit order id that
//! carries its shard bucket (the "gene").
//!
//! # Order id layout
//!
//! ```text
//!  63  62                    22 21        12 11     7 6       0
//! +---+------------------------+------------+--------+---------+
//! | 0 | ms since 2025-01-01    | bucket     | node   | sequence|
//! |   | 41 bits (~69 years)    | 10 bits    | 5 bits | 7 bits  |
//! +---+------------------------+------------+--------+---------+
//! ```
//!
//! Ids sort by creation time. The bucket is `hash(tenant, buyer) % 1024`, the same value the
//! shard router uses, so `GET /orders/{id}` finds its shard with no lookup table. `node`
//! separates id generators that run at the same time (API replicas); the sequence allows
//! 128 ids per millisecond per node, and a generator that exhausts it borrows the next
//! millisecond instead of waiting, so it never blocks and never repeats.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// Number of logical shard buckets. Fixed forever: it is part of every order id.
pub const BUCKET_COUNT: u16 = 1024;
/// Milliseconds since the Unix epoch of the id epoch, 2025-01-01T00:00:00Z.
pub const ID_EPOCH_UNIX_MS: u64 = 1_735_689_600_000;

const SEQUENCE_BITS: u32 = 7;
const NODE_BITS: u32 = 5;
const BUCKET_BITS: u32 = 10;
const TIMESTAMP_BITS: u32 = 41;
const SEQUENCE_MASK: u64 = (1 << SEQUENCE_BITS) - 1;
const NODE_MASK: u64 = (1 << NODE_BITS) - 1;
const BUCKET_MASK: u64 = (1 << BUCKET_BITS) - 1;
const TIMESTAMP_MASK: u64 = (1 << TIMESTAMP_BITS) - 1;
const NODE_SHIFT: u32 = SEQUENCE_BITS;
const BUCKET_SHIFT: u32 = SEQUENCE_BITS + NODE_BITS;
const TIMESTAMP_SHIFT: u32 = SEQUENCE_BITS + NODE_BITS + BUCKET_BITS;
/// Largest node id an [`OrderIdGenerator`] accepts.
pub const MAX_NODE_ID: u8 = NODE_MASK as u8;

/// A code-like identifier: 1..=64 chars of `[a-z0-9_-]`, starting with a letter or digit.
fn validate_code(kind: &str, value: &str, max_len: usize) -> Result<(), DomainError> {
    let ok_len = !value.is_empty() && value.len() <= max_len;
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    let ok_start = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(DomainError::invalid(
            "",
            format!(
                "{kind} must be 1 to {max_len} characters of a-z, 0-9, '_' or '-', \
                 starting with a letter or digit, got {value:?}"
            ),
        ))
    }
}

macro_rules! code_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validate and wrap.
            pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
                let value = value.into();
                validate_code($kind, &value, $max)?;
                Ok($name(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(raw).map_err(|e| serde::de::Error::custom(e.message))
            }
        }
    };
}

code_newtype!(
    /// A tenant: the unit of isolation. Every query, key, topic and index is scoped by it.
    TenantId, "tenant id", 32
);
code_newtype!(
    /// A business identity inside a tenant (e.g. `cold-chain`, `express`, `retail`).
    BusinessIdentity, "business identity", 64
);
code_newtype!(
    /// An order type inside a business identity (e.g. `standard`, `b2b-contract`).
    OrderType, "order type", 64
);
code_newtype!(
    /// A status code of a configured state machine (e.g. `pending_payment`).
    StatusCode, "status", 64
);
code_newtype!(
    /// An event name of a configured state machine (e.g. `pay`, `cancel`).
    TransitionEvent, "transition event", 64
);
code_newtype!(
    /// A role name from tenant config (e.g. `business_line`, `customer_service`).
    RoleName, "role", 64
);

/// A party identifier supplied by the caller (buyer, merchant): opaque, 1..=128 printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PartyId(String);

impl PartyId {
    pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
        let value = value.into();
        let printable = value.bytes().all(|b| b.is_ascii_graphic());
        if value.is_empty() || value.len() > 128 || !printable {
            return Err(DomainError::invalid(
                "",
                "party id must be 1 to 128 printable ASCII characters without spaces",
            ));
        }
        Ok(PartyId(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PartyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        PartyId::parse(raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// A logical shard bucket, `0..BUCKET_COUNT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Bucket(u16);

impl Bucket {
    pub fn new(value: u16) -> Result<Self, DomainError> {
        if value < BUCKET_COUNT {
            Ok(Bucket(value))
        } else {
            Err(DomainError::invalid(
                "",
                format!("bucket {value} out of range 0..{BUCKET_COUNT}"),
            ))
        }
    }

    /// The bucket of a sharding key `(tenant, buyer)`. Stable across releases and platforms:
    /// FNV-1a over `tenant 0x00 buyer`, then a splitmix64 finaliser for an even spread.
    pub fn of(tenant: &TenantId, buyer: &PartyId) -> Bucket {
        Bucket::of_key(tenant, buyer.as_str())
    }

    /// The bucket of any key of a tenant (a buyer id, a SKU): the same hash as [`Bucket::of`],
    /// so stock rows spread over the shards through the same bucket map as orders.
    pub fn of_key(tenant: &TenantId, key: &str) -> Bucket {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let bytes = tenant.as_str().bytes().chain([0u8]).chain(key.bytes());
        for byte in bytes {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= hash >> 30;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 31;
        Bucket((hash % u64::from(BUCKET_COUNT)) as u16)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for Bucket {
    type Error = String;
    fn try_from(value: u16) -> Result<Self, Self::Error> {
        Bucket::new(value).map_err(|e| e.message)
    }
}

impl From<Bucket> for u16 {
    fn from(bucket: Bucket) -> u16 {
        bucket.0
    }
}

/// A 64-bit, time-ordered order id that embeds its shard bucket. Serialised as a decimal
/// string on the wire (JavaScript numbers cannot hold 64 bits) and as BIGINT in databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(u64);

impl OrderId {
    /// Compose an id from its parts. `None` when a part is out of range.
    pub fn compose(unix_ms: u64, bucket: Bucket, node: u8, sequence: u8) -> Option<OrderId> {
        let since_epoch = unix_ms.checked_sub(ID_EPOCH_UNIX_MS)?;
        if since_epoch > TIMESTAMP_MASK
            || u64::from(node) > NODE_MASK
            || u64::from(sequence) > SEQUENCE_MASK
        {
            return None;
        }
        Some(OrderId(
            (since_epoch << TIMESTAMP_SHIFT)
                | (u64::from(bucket.get()) << BUCKET_SHIFT)
                | (u64::from(node) << NODE_SHIFT)
                | u64::from(sequence),
        ))
    }

    /// Accept a raw value from storage or the wire: the top bit must be clear.
    pub fn from_raw(raw: u64) -> Result<OrderId, DomainError> {
        if raw == 0 || raw >> 63 != 0 {
            return Err(DomainError::invalid(
                "",
                format!("{raw} is not an order id"),
            ));
        }
        Ok(OrderId(raw))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// The shard gene: the bucket this order was routed to when it was created.
    pub fn bucket(self) -> Bucket {
        Bucket(((self.0 >> BUCKET_SHIFT) & BUCKET_MASK) as u16)
    }

    pub fn node(self) -> u8 {
        ((self.0 >> NODE_SHIFT) & NODE_MASK) as u8
    }

    pub fn sequence(self) -> u8 {
        (self.0 & SEQUENCE_MASK) as u8
    }

    /// Creation time in Unix milliseconds (the generator's clock, possibly borrowed ahead).
    pub fn unix_ms(self) -> u64 {
        (self.0 >> TIMESTAMP_SHIFT) + ID_EPOCH_UNIX_MS
    }

    /// As a signed 64-bit integer for databases whose BIGINT is signed; always non-negative.
    pub fn as_i64(self) -> i64 {
        self.0 as i64
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for OrderId {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed_ok = !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        let raw: u64 = if trimmed_ok { s.parse().ok() } else { None }
            .ok_or_else(|| DomainError::invalid("", format!("{s:?} is not an order id")))?;
        OrderId::from_raw(raw)
    }
}

impl Serialize for OrderId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|e: DomainError| serde::de::Error::custom(e.message))
    }
}

/// Generates unique, time-ordered order ids. Lock-free: one atomic holds the last
/// `(millisecond, sequence)` pair and every caller advances it with compare-and-swap, so ids
/// are unique across threads. A clock that steps backwards never produces a repeat: the
/// generator keeps counting from the highest millisecond it has used.
#[derive(Debug)]
pub struct OrderIdGenerator {
    node: u8,
    /// `(ms since id epoch) << SEQUENCE_BITS | sequence` of the last id handed out.
    last: AtomicU64,
}

impl OrderIdGenerator {
    pub fn new(node: u8) -> Result<Self, DomainError> {
        if node > MAX_NODE_ID {
            return Err(DomainError::invalid(
                "",
                format!("node id {node} > {MAX_NODE_ID}"),
            ));
        }
        Ok(OrderIdGenerator {
            node,
            last: AtomicU64::new(0),
        })
    }

    /// The next id for `bucket`, given the current wall clock in Unix milliseconds.
    pub fn next(&self, bucket: Bucket, now_unix_ms: u64) -> OrderId {
        let now = now_unix_ms
            .saturating_sub(ID_EPOCH_UNIX_MS)
            .min(TIMESTAMP_MASK);
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let last_ms = last >> SEQUENCE_BITS;
            let candidate = if now > last_ms {
                now << SEQUENCE_BITS
            } else {
                // same or earlier millisecond: next sequence, rolling into the next ms
                last + 1
            };
            match self.last.compare_exchange_weak(
                last,
                candidate,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let ms = candidate >> SEQUENCE_BITS;
                    let sequence = candidate & SEQUENCE_MASK;
                    return OrderId(
                        (ms << TIMESTAMP_SHIFT)
                            | (u64::from(bucket.get()) << BUCKET_SHIFT)
                            | (u64::from(self.node) << NODE_SHIFT)
                            | sequence,
                    );
                }
                Err(actual) => last = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use proptest::prelude::*;

    use super::*;

    const NOW: u64 = 1_790_000_000_000;

    proptest! {
        #[test]
        fn compose_round_trips(
            offset in 0u64..TIMESTAMP_MASK,
            bucket in 0u16..BUCKET_COUNT,
            node in 0u8..=MAX_NODE_ID,
            sequence in 0u8..=(SEQUENCE_MASK as u8),
        ) {
            let bucket = Bucket::new(bucket).unwrap();
            let id = OrderId::compose(ID_EPOCH_UNIX_MS + offset, bucket, node, sequence).unwrap();
            prop_assert_eq!(id.bucket(), bucket);
            prop_assert_eq!(id.node(), node);
            prop_assert_eq!(id.sequence(), sequence);
            prop_assert_eq!(id.unix_ms(), ID_EPOCH_UNIX_MS + offset);
            prop_assert_eq!(id.to_string().parse::<OrderId>().unwrap(), id);
            prop_assert!(id.as_i64() > 0 || (offset == 0 && bucket.get() == 0 && node == 0 && sequence == 0));
        }

        #[test]
        fn generated_ids_carry_the_bucket_of_their_sharding_key(
            tenant in "[a-z][a-z0-9-]{0,20}",
            buyer in "[!-~]{1,40}",
            now in ID_EPOCH_UNIX_MS..(ID_EPOCH_UNIX_MS + TIMESTAMP_MASK),
        ) {
            let tenant = TenantId::parse(tenant).unwrap();
            let buyer = PartyId::parse(buyer).unwrap();
            let bucket = Bucket::of(&tenant, &buyer);
            let generator = OrderIdGenerator::new(3).unwrap();
            let id = generator.next(bucket, now);
            prop_assert_eq!(id.bucket(), bucket);
            prop_assert_eq!(id.node(), 3);
            prop_assert_eq!(Bucket::of(&tenant, &buyer), bucket, "bucket hash is deterministic");
        }

        #[test]
        fn ids_from_one_generator_strictly_increase(clock in proptest::collection::vec(0u64..5_000, 1..400)) {
            let generator = OrderIdGenerator::new(0).unwrap();
            let bucket = Bucket::new(7).unwrap();
            let mut previous = None;
            for step in clock {
                // the clock jumps forwards and backwards within a few seconds
                let id = generator.next(bucket, NOW + step);
                if let Some(previous) = previous {
                    prop_assert!(id > previous, "{id} after {previous}");
                }
                previous = Some(id);
            }
        }
    }

    #[test]
    fn ids_are_unique_across_threads_even_with_a_frozen_clock() {
        let generator = Arc::new(OrderIdGenerator::new(1).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let generator = Arc::clone(&generator);
                std::thread::spawn(move || {
                    let bucket = Bucket::new(t * 100).unwrap();
                    (0..20_000)
                        .map(|_| generator.next(bucket, NOW))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = HashSet::new();
        let mut per_bucket_sequence = HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(seen.insert(id), "duplicate id {id}");
                // uniqueness must not rely on the bucket bits alone
                assert!(per_bucket_sequence.insert((id.unix_ms(), id.sequence())));
            }
        }
        assert_eq!(seen.len(), 160_000);
    }

    #[test]
    fn buckets_spread_evenly() {
        let tenant = TenantId::parse("retail").unwrap();
        let mut counts = vec![0u32; usize::from(BUCKET_COUNT)];
        for buyer in 0..102_400 {
            let buyer = PartyId::parse(format!("buyer-{buyer}")).unwrap();
            counts[usize::from(Bucket::of(&tenant, &buyer).get())] += 1;
        }
        // 100 expected per bucket; a poor hash leaves buckets empty or doubles them
        assert!(
            counts.iter().all(|&c| (50..=160).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn bucket_hash_is_frozen() {
        // the bucket is persisted inside every order id: this value must never change
        let tenant = TenantId::parse("retail").unwrap();
        let buyer = PartyId::parse("buyer-42").unwrap();
        assert_eq!(
            Bucket::of(&tenant, &buyer).get(),
            FROZEN_BUCKET_OF_RETAIL_BUYER_42
        );
    }
    const FROZEN_BUCKET_OF_RETAIL_BUYER_42: u16 = 607;

    #[test]
    fn rejects_bad_ids_and_codes() {
        for bad in [
            "",
            "-1",
            "abc",
            "9223372036854775808",
            "0",
            " 12",
            "123456789012345678901",
        ] {
            assert!(bad.parse::<OrderId>().is_err(), "{bad:?}");
        }
        for bad in ["", "Tenant", "-x", "a b", "a/b", &"x".repeat(33)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(PartyId::parse("has space").is_err());
        assert!(Bucket::new(BUCKET_COUNT).is_err());
        assert!(OrderIdGenerator::new(MAX_NODE_ID + 1).is_err());
    }
}
