#![doc = include_str!("../README.md")]

pub mod aftersale;
pub mod archive;
pub mod error;
pub mod event;
pub mod export;
pub mod ext;
pub mod ids;
pub mod indexing;
pub mod lifecycle;
pub mod logistics;
pub mod millis;
pub mod money;
pub mod order;
pub mod payment;
pub mod payment_ids;
pub mod ports;
pub mod pricing;
pub mod retention;
pub mod retry;
pub mod schedule;
pub mod sealing;
pub mod search;
pub mod state;
pub mod stock;
mod wire;

pub use error::{DomainError, DomainResult, ErrorCode};
pub use event::{
    AFTER_SALE_EVENT_TYPE_PREFIX, AfterSaleNote, CLOUD_EVENT_TYPE_PREFIX, OrderEvent,
    OrderEventKind, OutboxEntry, PAYMENT_EVENT_TYPE_PREFIX, PaymentEventType, PaymentNote, ShardId,
};
pub use ext::{
    BusinessDomain, ColumnIndex, Decimal, ExtFieldType, ExtTable, ExtValue, KvIdentifier, KvValue,
    Protected, RESERVED_COLUMNS, Sealed, Slot,
};
pub use ids::{
    BUCKET_COUNT, Bucket, BusinessIdentity, OrderId, OrderIdGenerator, OrderType, PartyId,
    RoleName, StatusCode, TenantId, TransitionEvent,
};
pub use lifecycle::{HistoryEntry, Released, StockEffect, TransitionNote};
pub use millis::UnixMillis;
pub use money::{Currency, Money, MoneyError};
pub use order::Order;
pub use payment::{
    Checkout, OrderEffect, Payment, PaymentId, PaymentStatus, ProviderName, Refund, RefundId,
    RefundStatus,
};
pub use state::{StateMachine, StateMachineError, TransitionDef};
pub use stock::{ReservationState, Sku, StockLevel};
