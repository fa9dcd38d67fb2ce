//! Consumer offsets: where each consumer group is in each topic partition, kept through the
//! [`OffsetStore`] port of `oc-model` (rskafka has no consumer-group protocol). The cluster
//! keeps them in the order store's shard 0 (`oc-store-sql` implements the port); tests use
//! [`InMemoryOffsetStore`]. Offsets follow Kafka's convention: the stored value is the *next*
//! offset to read.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use oc_model::DomainResult;
pub use oc_model::ports::OffsetStore;

/// Offsets in process memory: lost on restart, so a restarted consumer re-reads from its
/// start offset (harmless: consumers apply events by version). For single-node mode and tests.
#[derive(Debug, Default)]
pub struct InMemoryOffsetStore {
    offsets: Mutex<HashMap<(String, String), BTreeMap<i32, i64>>>,
}

impl InMemoryOffsetStore {
    pub fn new() -> InMemoryOffsetStore {
        InMemoryOffsetStore::default()
    }
}

#[async_trait]
impl OffsetStore for InMemoryOffsetStore {
    async fn load(&self, group: &str, topic: &str) -> DomainResult<BTreeMap<i32, i64>> {
        let offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(offsets
            .get(&(group.to_owned(), topic.to_owned()))
            .cloned()
            .unwrap_or_default())
    }

    async fn commit(
        &self,
        group: &str,
        topic: &str,
        committed: &BTreeMap<i32, i64>,
    ) -> DomainResult<()> {
        let mut offsets = self.offsets.lock().unwrap_or_else(PoisonError::into_inner);
        offsets
            .entry((group.to_owned(), topic.to_owned()))
            .or_default()
            .extend(
                committed
                    .iter()
                    .map(|(partition, offset)| (*partition, *offset)),
            );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_merge_per_group_and_topic() {
        let store = InMemoryOffsetStore::new();
        assert!(store.load("g", "t").await.unwrap().is_empty());
        store
            .commit("g", "t", &BTreeMap::from([(0, 5), (1, 7)]))
            .await
            .unwrap();
        store
            .commit("g", "t", &BTreeMap::from([(1, 9)]))
            .await
            .unwrap();
        store
            .commit("other", "t", &BTreeMap::from([(0, 1)]))
            .await
            .unwrap();
        assert_eq!(
            store.load("g", "t").await.unwrap(),
            BTreeMap::from([(0, 5), (1, 9)])
        );
        assert_eq!(
            store.load("other", "t").await.unwrap(),
            BTreeMap::from([(0, 1)])
        );
        assert!(store.load("g", "u").await.unwrap().is_empty());
    }
}
