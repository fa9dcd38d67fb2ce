//! `consumer_offsets`: read-model consumers' positions per group, topic and partition (in
//! shard 0 by convention; every shard has the table). A restarted consumer resumes where its
//! last fully applied batch ended instead of replaying the topic.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::AnyPool;

use oc_model::{DomainError, DomainResult, UnixMillis};

use super::{Binder, Columns, Table, int};

pub(crate) static TABLE: LazyLock<Table> = LazyLock::new(|| {
    Table::new(
        "consumer_offsets",
        Columns::of(&[
            "group_id",
            "topic",
            "partition_id",
            "next_offset",
            "updated_at_ms",
        ]),
    )
});

fn unavailable(error: sqlx::Error) -> DomainError {
    DomainError::unavailable(format!("consumer offsets: {error}"))
}

fn bind<'q>(
    row: Binder<'q>,
    group: &'q str,
    topic: &'q str,
    partition: i32,
    offset: i64,
    now: UnixMillis,
) -> Binder<'q> {
    row.bind("group_id", group)
        .bind("topic", topic)
        .bind("partition_id", i64::from(partition))
        .bind("next_offset", offset)
        .bind("updated_at_ms", now.get())
}

pub(crate) async fn load(
    pool: &AnyPool,
    group: &str,
    topic: &str,
) -> DomainResult<BTreeMap<i32, i64>> {
    let rows = sqlx::query(
        "SELECT partition_id, next_offset FROM consumer_offsets WHERE group_id = ? AND topic = ?",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let partition = int(row, "partition_id")?;
            let offset = int(row, "next_offset")?;
            let partition = i32::try_from(partition)
                .map_err(|_| DomainError::internal("partition out of range"))?;
            Ok((partition, offset))
        })
        .collect()
}

pub(crate) async fn commit(
    pool: &AnyPool,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> DomainResult<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let now = UnixMillis::now();
    let insert = TABLE.insert(1);
    // delete + insert in one transaction: the same statements work on both dialects
    let mut tx = pool.begin().await.map_err(unavailable)?;
    for (partition, offset) in offsets {
        sqlx::query(
            "DELETE FROM consumer_offsets WHERE group_id = ? AND topic = ? AND partition_id = ?",
        )
        .bind(group)
        .bind(topic)
        .bind(i64::from(*partition))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        bind(
            TABLE.binder(sqlx::query(&insert)),
            group,
            topic,
            *partition,
            *offset,
            now,
        )
        .done()
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
    }
    tx.commit().await.map_err(unavailable)?;
    Ok(())
}
