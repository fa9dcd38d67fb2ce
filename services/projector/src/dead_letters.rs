//! Replaying dead letters: after the operator fixed what made a read model refuse an order
//! (a mapping, a value in the shard, a misconfigured read model), each recorded order is
//! re-read from its shard and its *current* version written to the read model that refused
//! it, once. A success removes the record; a failure keeps it, with one more attempt and
//! the new error. An order gone from the shards (archived since) has nothing to project: its
//! record is removed.

use oc_model::ports::{DeadLetters, SinkKind};
use oc_model::{DomainResult, OrderId, TenantId};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::projector::Projector;

pub use oc_model::ports::DeadLetter;

/// Which dead letters a replay takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayOptions {
    pub tenant: Option<TenantId>,
    pub order_id: Option<OrderId>,
    /// At most this many records per replay.
    pub limit: u32,
}

/// One dead letter, by its identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterKey {
    pub tenant: TenantId,
    pub order_id: OrderId,
    pub sink: SinkKind,
}

impl DeadLetterKey {
    pub fn of(letter: &DeadLetter) -> DeadLetterKey {
        DeadLetterKey {
            tenant: letter.tenant.clone(),
            order_id: letter.order_id,
            sink: letter.sink,
        }
    }
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Written to their read model (or already there) and removed.
    pub replayed: Vec<DeadLetterKey>,
    /// No longer in the shards: removed without writing.
    pub gone: Vec<DeadLetterKey>,
    /// Failed again: kept, with the new error and one more attempt.
    pub still_failing: Vec<DeadLetter>,
}

/// Replays the dead letters `options` selects through `projector`'s read models.
pub async fn replay_dead_letters(
    projector: &Projector,
    dead_letters: &dyn DeadLetters,
    options: &ReplayOptions,
) -> DomainResult<ReplayReport> {
    let letters = dead_letters
        .list(options.tenant.as_ref(), options.limit.max(1))
        .await?;
    let mut report = ReplayReport::default();
    for letter in letters {
        if options
            .order_id
            .is_some_and(|order_id| order_id != letter.order_id)
        {
            continue;
        }
        let key = DeadLetterKey::of(&letter);
        let Some(order) = projector
            .store()
            .get(&letter.tenant, letter.order_id)
            .await?
        else {
            dead_letters
                .remove(&letter.tenant, letter.order_id, letter.sink)
                .await?;
            report.gone.push(key);
            continue;
        };
        match projector.write_once(letter.sink, &order).await {
            Ok(_) => {
                dead_letters
                    .remove(&letter.tenant, letter.order_id, letter.sink)
                    .await?;
                report.replayed.push(key);
            }
            Err(error) => {
                let attempts_before = letter.attempts;
                let failed = DeadLetter {
                    version: order.main.version,
                    error_code: error.code,
                    error_message: error.message,
                    attempts: 1,
                    last_failed_at: OffsetDateTime::now_utc(),
                    ..letter
                };
                dead_letters.record(&failed).await?;
                // as now recorded: one more attempt than before
                report.still_failing.push(DeadLetter {
                    attempts: attempts_before.saturating_add(1),
                    ..failed
                });
            }
        }
    }
    projector.count_dead_letters().await;
    Ok(report)
}
