//! Durable consumer positions (the store's `OffsetStore`) on both dialects: round trip, overwrite, isolation by group
//! and topic, and survival across a reconnect.

use std::collections::BTreeMap;

use oc_model::ports::OffsetStore;
use oc_store_sql::{SqlOrderStore, StoreConfig};

async fn exercise(urls: Vec<String>) {
    let store = SqlOrderStore::connect(StoreConfig::new(urls.clone()))
        .await
        .unwrap();
    let offsets = store.clone();
    assert!(
        offsets
            .load("projector", "oc.retail.orders")
            .await
            .unwrap()
            .is_empty()
    );
    offsets
        .commit(
            "projector",
            "oc.retail.orders",
            &BTreeMap::from([(0, 10), (1, 7)]),
        )
        .await
        .unwrap();
    offsets
        .commit(
            "projector",
            "oc.retail.orders",
            &BTreeMap::from([(1, 9), (2, 3)]),
        )
        .await
        .unwrap();
    offsets
        .commit(
            "other-group",
            "oc.retail.orders",
            &BTreeMap::from([(0, 99)]),
        )
        .await
        .unwrap();
    offsets
        .commit("projector", "oc.express.orders", &BTreeMap::from([(0, 5)]))
        .await
        .unwrap();
    let expected = BTreeMap::from([(0, 10), (1, 9), (2, 3)]);
    assert_eq!(
        offsets.load("projector", "oc.retail.orders").await.unwrap(),
        expected
    );
    store.close().await;
    // a restarted consumer finds its positions
    let reopened = SqlOrderStore::connect(StoreConfig::new(urls))
        .await
        .unwrap();
    let offsets = reopened.clone();
    assert_eq!(
        offsets.load("projector", "oc.retail.orders").await.unwrap(),
        expected
    );
    assert_eq!(
        offsets
            .load("other-group", "oc.retail.orders")
            .await
            .unwrap(),
        BTreeMap::from([(0, 99)])
    );
    reopened.close().await;
}

#[tokio::test]
async fn offsets_survive_a_restart_on_mariadb() {
    let databases = oc_test_support::TestDatabases::create("offsets", 2)
        .await
        .unwrap();
    exercise(databases.urls().to_vec()).await;
    databases.cleanup().await.unwrap();
}

#[tokio::test]
async fn offsets_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let urls = (0..2)
        .map(|i| format!("sqlite://{}/shard-{i}.db", dir.path().display()))
        .collect();
    exercise(urls).await;
}
