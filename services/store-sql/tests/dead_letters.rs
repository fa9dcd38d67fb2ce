//! The store's `DeadLetters` (table `projector_dead_letters`, shard 0) on both dialects: a
//! first record, a repeated failure adding attempts and keeping the first failure time,
//! listing by tenant, removal, the count, and survival across a reconnect.

use oc_model::ports::{DeadLetter, DeadLetters, SinkKind};
use oc_model::{ErrorCode, OrderId, TenantId};
use oc_store_sql::{SqlOrderStore, StoreConfig};
use time::OffsetDateTime;

fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_790_000_000 + seconds).unwrap()
}

fn letter(tenant: &str, raw_id: u64, sink: SinkKind, failed_at: i64) -> DeadLetter {
    DeadLetter {
        tenant: TenantId::parse(tenant).unwrap(),
        order_id: OrderId::from_raw(raw_id).unwrap(),
        sink,
        version: 1,
        error_code: ErrorCode::InvalidInput,
        error_message: "elasticsearch refused the document: immense term".into(),
        attempts: 1,
        first_failed_at: at(failed_at),
        last_failed_at: at(failed_at),
        event_id: Some(format!("{raw_id}-1")),
    }
}

async fn exercise(urls: Vec<String>) {
    let store = SqlOrderStore::connect(StoreConfig::new(urls.clone()))
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), 0);
    let first = letter("retail", 1 << 40, SinkKind::Search, 0);
    store.record(&first).await.unwrap();
    store
        .record(&letter("retail", 1 << 40, SinkKind::Cold, 5))
        .await
        .unwrap();
    store
        .record(&letter("express", 2 << 40, SinkKind::Search, 10))
        .await
        .unwrap();
    // the same order and sink failing again: attempts add up, the first failure stays
    let again = DeadLetter {
        version: 2,
        error_code: ErrorCode::Internal,
        error_message: "still refused".into(),
        attempts: 3,
        first_failed_at: at(20),
        last_failed_at: at(20),
        event_id: None,
        ..first.clone()
    };
    store.record(&again).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 3);

    let all = store.list(None, 100).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        all[0],
        DeadLetter {
            attempts: 4,
            first_failed_at: at(0),
            ..again.clone()
        },
        "oldest first failure first"
    );
    let retail = TenantId::parse("retail").unwrap();
    let of_retail = store.list(Some(&retail), 100).await.unwrap();
    assert_eq!(
        of_retail
            .iter()
            .map(|l| (l.order_id, l.sink))
            .collect::<Vec<_>>(),
        [
            (first.order_id, SinkKind::Search),
            (first.order_id, SinkKind::Cold)
        ]
    );
    assert_eq!(store.list(None, 1).await.unwrap().len(), 1);
    store.close().await;

    // a restarted projector or the operator's command finds them
    let reopened = SqlOrderStore::connect(StoreConfig::new(urls))
        .await
        .unwrap();
    reopened
        .remove(&retail, first.order_id, SinkKind::Search)
        .await
        .unwrap();
    // removing what is not there is fine
    reopened
        .remove(&retail, first.order_id, SinkKind::Search)
        .await
        .unwrap();
    assert_eq!(reopened.count().await.unwrap(), 2);
    let left = reopened.list(Some(&retail), 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].sink, SinkKind::Cold);
    reopened.close().await;
}

#[tokio::test]
async fn dead_letters_are_recorded_listed_and_removed_on_mariadb() {
    let databases = oc_test_support::TestDatabases::create("dead_letters", 2)
        .await
        .unwrap();
    exercise(databases.urls().to_vec()).await;
    databases.cleanup().await.unwrap();
}

#[tokio::test]
async fn dead_letters_are_recorded_listed_and_removed_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let urls = (0..2)
        .map(|i| format!("sqlite://{}/shard-{i}.db", dir.path().display()))
        .collect();
    exercise(urls).await;
}
