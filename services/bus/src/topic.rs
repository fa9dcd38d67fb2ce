//! Topic naming and partitioning: which topic an event goes to, and which partition.
//!
//! Topics are scoped by tenant (the isolation rule: every topic belongs to one tenant), and
//! optionally split further by business identity when a tenant's config asks for it. The
//! partition is Kafka's own default-partitioner hash of the record key (the order id), so a
//! Java, Go or Python producer keyed the same way would pick the same partition.

use std::collections::BTreeMap;

use oc_model::{BusinessIdentity, DomainError, DomainResult, OrderEvent, OrderId, TenantId};
use serde::{Deserialize, Serialize};

/// Longest topic name Kafka accepts.
const MAX_TOPIC_CHARS: usize = 249;

/// How a tenant's events are split over topics (from the tenant config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TopicPolicy {
    /// One topic per tenant: `oc.{tenant}.orders`.
    #[default]
    PerTenant,
    /// One topic per business identity of the tenant: `oc.{tenant}.{business_identity}.orders`.
    PerBusinessIdentity,
}

/// The topic policy of every tenant: a default plus per-tenant overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicRouting {
    /// The policy of tenants without an override.
    #[serde(default)]
    pub default_policy: TopicPolicy,
    /// Per-tenant overrides, as the tenant configs declare them.
    #[serde(default)]
    pub tenants: BTreeMap<TenantId, TopicPolicy>,
}

impl TopicRouting {
    /// Every tenant uses `default_policy`.
    pub fn new(default_policy: TopicPolicy) -> TopicRouting {
        TopicRouting {
            default_policy,
            tenants: BTreeMap::new(),
        }
    }

    /// Overrides the policy of one tenant.
    pub fn with_tenant(mut self, tenant: TenantId, policy: TopicPolicy) -> TopicRouting {
        self.tenants.insert(tenant, policy);
        self
    }

    /// The policy that applies to `tenant`.
    pub fn policy_for(&self, tenant: &TenantId) -> TopicPolicy {
        self.tenants
            .get(tenant)
            .copied()
            .unwrap_or(self.default_policy)
    }
}

/// Turns events into topic names: an optional prefix (environment, or a test's unique
/// prefix) and the routing policy.
///
/// Names are `[{prefix}.]oc.{tenant}.orders` or `[{prefix}.]oc.{tenant}.{identity}.orders`.
/// Tenant ids and business identities are `[a-z0-9_-]`, so every name is a legal topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNaming {
    prefix: String,
    routing: TopicRouting,
}

impl TopicNaming {
    /// Validates the prefix: empty, or up to 100 characters of `[a-zA-Z0-9._-]`.
    pub fn new(prefix: impl Into<String>, routing: TopicRouting) -> DomainResult<TopicNaming> {
        let prefix = prefix.into();
        let legal = prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !legal || prefix.len() > 100 {
            return Err(DomainError::invalid(
                "/topic_prefix",
                format!(
                    "topic prefix must be up to 100 characters of a-z, A-Z, 0-9, '.', '_' or '-', got {prefix:?}"
                ),
            ));
        }
        Ok(TopicNaming { prefix, routing })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn routing(&self) -> &TopicRouting {
        &self.routing
    }

    /// The topic `event` belongs to, by its tenant's policy.
    pub fn topic_for(&self, event: &OrderEvent) -> String {
        match self.routing.policy_for(&event.tenant) {
            TopicPolicy::PerTenant => self.tenant_topic(&event.tenant),
            TopicPolicy::PerBusinessIdentity => {
                self.business_identity_topic(&event.tenant, &event.business_identity)
            }
        }
    }

    /// The per-tenant topic name (whatever the tenant's policy is).
    pub fn tenant_topic(&self, tenant: &TenantId) -> String {
        self.with_prefix(format!("oc.{tenant}.orders"))
    }

    /// The per-business-identity topic name (whatever the tenant's policy is).
    pub fn business_identity_topic(
        &self,
        tenant: &TenantId,
        business_identity: &BusinessIdentity,
    ) -> String {
        self.with_prefix(format!("oc.{tenant}.{business_identity}.orders"))
    }

    /// The topics a consumer of `tenant` reads under its current policy, when the business
    /// identities are known (from the tenant config).
    pub fn topics_of_tenant<'a>(
        &self,
        tenant: &TenantId,
        business_identities: impl IntoIterator<Item = &'a BusinessIdentity>,
    ) -> Vec<String> {
        match self.routing.policy_for(tenant) {
            TopicPolicy::PerTenant => vec![self.tenant_topic(tenant)],
            TopicPolicy::PerBusinessIdentity => business_identities
                .into_iter()
                .map(|identity| self.business_identity_topic(tenant, identity))
                .collect(),
        }
    }

    fn with_prefix(&self, name: String) -> String {
        let full = if self.prefix.is_empty() {
            name
        } else {
            format!("{}.{name}", self.prefix)
        };
        // prefix ≤ 100, tenant ≤ 32, identity ≤ 64: always under Kafka's limit
        debug_assert!(full.len() <= MAX_TOPIC_CHARS);
        full
    }
}

/// The record key of an order's events: the order id in decimal (as on the wire elsewhere).
pub fn record_key(order_id: OrderId) -> Vec<u8> {
    order_id.to_string().into_bytes()
}

/// The partition of `order_id` in a topic of `partitions` partitions: Kafka's default
/// partitioner (`toPositive(murmur2(key)) % partitions`) over [`record_key`]. Stable across
/// processes, releases and client languages, so one order's events always land in one
/// partition, in order.
///
/// # Panics
/// When `partitions` is not positive.
pub fn partition_for(order_id: OrderId, partitions: i32) -> i32 {
    assert!(partitions > 0, "a topic has at least one partition");
    let positive = murmur2(&record_key(order_id)) & 0x7fff_ffff;
    (positive % partitions as u32) as i32
}

/// Kafka's `Utils.murmur2` (the Java client's key hash), as an unsigned 32-bit value.
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut hash = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        hash = hash.wrapping_mul(M);
        hash ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        if tail.len() == 3 {
            hash ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            hash ^= u32::from(tail[1]) << 8;
        }
        hash ^= u32::from(tail[0]);
        hash = hash.wrapping_mul(M);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(M);
    hash ^= hash >> 15;
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // the vectors of Kafka's own UtilsTest.testMurmur2 (signed ints there)
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(
                murmur2(input) as i32,
                expected,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partitions_are_in_range_and_stable() {
        for raw in [1_u64, 7, 1 << 40, (1 << 62) + 12_345] {
            let id = OrderId::from_raw(raw).unwrap();
            for partitions in [1, 2, 6, 7, 64] {
                let partition = partition_for(id, partitions);
                assert!((0..partitions).contains(&partition));
                assert_eq!(partition, partition_for(id, partitions));
            }
        }
    }

    #[test]
    fn names_follow_the_policy() {
        let tenant = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("globex").unwrap();
        let identity = BusinessIdentity::parse("cold-chain").unwrap();
        let routing = TopicRouting::new(TopicPolicy::PerTenant)
            .with_tenant(other.clone(), TopicPolicy::PerBusinessIdentity);
        let naming = TopicNaming::new("", routing.clone()).unwrap();
        assert_eq!(naming.tenant_topic(&tenant), "oc.acme.orders");
        assert_eq!(
            naming.topics_of_tenant(&other, [&identity]),
            vec!["oc.globex.cold-chain.orders".to_owned()]
        );
        let prefixed = TopicNaming::new("t1_x", routing).unwrap();
        assert_eq!(prefixed.tenant_topic(&tenant), "t1_x.oc.acme.orders");
        assert!(TopicNaming::new("bad/prefix", TopicRouting::default()).is_err());
    }
}
