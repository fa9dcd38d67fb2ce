//! Bucket → physical shard routing.
//!
//! The sharding key `(tenant, buyer)` hashes to one of [`BUCKET_COUNT`] logical buckets
//! (`oc_model::Bucket::of`), and the order id carries that bucket. A bucket map assigns
//! contiguous bucket ranges to physical shards. Resharding moves a range: copy its rows
//! (`SELECT … WHERE bucket BETWEEN …`, indexed by `idx_orders_bucket`), diff, then switch
//! the map; ids never change, because routing reads the bucket from the id.

use serde::{Deserialize, Serialize};

use oc_model::{BUCKET_COUNT, Bucket, DomainError, ShardId};

/// One range of buckets, inclusive on both ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketRange {
    pub first: u16,
    pub last: u16,
    pub shard: u16,
}

/// A complete map from every bucket to a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketMap {
    shard_of: Vec<ShardId>,
    shard_count: u16,
}

impl BucketMap {
    /// Buckets spread evenly over `shards` contiguous ranges.
    pub fn even(shards: u16) -> Result<BucketMap, DomainError> {
        if shards == 0 || shards > BUCKET_COUNT {
            return Err(DomainError::invalid(
                "/shards",
                format!("shard count must be 1..={BUCKET_COUNT}"),
            ));
        }
        let per = BUCKET_COUNT.div_ceil(shards);
        let ranges: Vec<BucketRange> = (0..shards)
            .map(|shard| BucketRange {
                first: shard * per,
                last: ((shard + 1) * per).min(BUCKET_COUNT) - 1,
                shard,
            })
            .filter(|r| r.first < BUCKET_COUNT)
            .collect();
        BucketMap::from_ranges(&ranges, shards)
    }

    /// A map from explicit ranges; every bucket must be covered exactly once and every
    /// shard index must exist.
    pub fn from_ranges(ranges: &[BucketRange], shards: u16) -> Result<BucketMap, DomainError> {
        let mut shard_of: Vec<Option<ShardId>> = vec![None; usize::from(BUCKET_COUNT)];
        for (index, range) in ranges.iter().enumerate() {
            let path = format!("/bucket_map/{index}");
            if range.first > range.last || range.last >= BUCKET_COUNT {
                return Err(DomainError::invalid(
                    path,
                    format!(
                        "range {}..={} is outside 0..{BUCKET_COUNT}",
                        range.first, range.last
                    ),
                ));
            }
            if range.shard >= shards {
                return Err(DomainError::invalid(
                    format!("{path}/shard"),
                    format!("shard {} does not exist ({shards} configured)", range.shard),
                ));
            }
            for bucket in range.first..=range.last {
                let slot = &mut shard_of[usize::from(bucket)];
                if slot.is_some() {
                    return Err(DomainError::invalid(
                        path,
                        format!("bucket {bucket} is mapped twice"),
                    ));
                }
                *slot = Some(ShardId(range.shard));
            }
        }
        let shard_of = shard_of
            .into_iter()
            .enumerate()
            .map(|(bucket, shard)| {
                shard.ok_or_else(|| {
                    DomainError::invalid("/bucket_map", format!("bucket {bucket} is not mapped"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BucketMap {
            shard_of,
            shard_count: shards,
        })
    }

    pub fn shard_of(&self, bucket: Bucket) -> ShardId {
        self.shard_of[usize::from(bucket.get())]
    }

    pub fn shard_count(&self) -> u16 {
        self.shard_count
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn even_maps_cover_every_bucket_with_contiguous_ranges(shards in 1u16..=64) {
            let map = BucketMap::even(shards).unwrap();
            let mut previous = 0;
            for bucket in 0..BUCKET_COUNT {
                let shard = map.shard_of(Bucket::new(bucket).unwrap()).0;
                prop_assert!(shard < shards);
                prop_assert!(shard == previous || shard == previous + 1);
                previous = shard;
            }
        }
    }

    #[test]
    fn refuses_gaps_overlaps_and_unknown_shards() {
        let r = |first, last, shard| BucketRange { first, last, shard };
        assert!(BucketMap::from_ranges(&[r(0, 1022, 0)], 1).is_err(), "gap");
        assert!(
            BucketMap::from_ranges(&[r(0, 600, 0), r(500, 1023, 1)], 2).is_err(),
            "overlap"
        );
        assert!(
            BucketMap::from_ranges(&[r(0, 1023, 2)], 2).is_err(),
            "unknown shard"
        );
        assert!(
            BucketMap::from_ranges(&[r(0, 1024, 0)], 1).is_err(),
            "out of range"
        );
        assert!(BucketMap::from_ranges(&[r(512, 1023, 0), r(0, 511, 1)], 2).is_ok());
        assert!(BucketMap::even(0).is_err());
    }
}
