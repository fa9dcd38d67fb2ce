//! CloudEvents 1.0, Kafka protocol binding, binary content mode: the attributes travel as
//! `ce_*` record headers, the record value is the event data (the JSON of [`OrderEvent`]),
//! and the record key is the order id.
//!
//! See <https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/bindings/kafka-protocol-binding.md>.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oc_model::{OrderEvent, OrderId, UnixMillis};
use rskafka::record::Record;
use time::format_description::well_known::Rfc3339;

use crate::topic::record_key;

pub const HEADER_SPECVERSION: &str = "ce_specversion";
pub const HEADER_ID: &str = "ce_id";
pub const HEADER_SOURCE: &str = "ce_source";
pub const HEADER_TYPE: &str = "ce_type";
pub const HEADER_TIME: &str = "ce_time";
pub const HEADER_SUBJECT: &str = "ce_subject";
/// The binding maps `datacontenttype` to the plain `content-type` header.
pub const HEADER_CONTENT_TYPE: &str = "content-type";

pub const SPEC_VERSION: &str = "1.0";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// The CloudEvents `source` of a tenant's events: `/ordercenter/{tenant}`.
pub fn source_of(event: &OrderEvent) -> String {
    format!("/ordercenter/{}", event.tenant)
}

/// The Kafka record for `event`: key = order id, CloudEvents headers, JSON value, and the
/// record timestamp set to the event's `occurred_at`.
pub fn encode(event: &OrderEvent) -> Record {
    let occurred_at = event
        .occurred_at
        .format(&Rfc3339)
        // an OffsetDateTime with a four-digit year always formats
        .unwrap_or_default();
    let value = serde_json::to_vec(event).unwrap_or_default();
    let mut headers = BTreeMap::new();
    headers.insert(
        HEADER_SPECVERSION.to_owned(),
        SPEC_VERSION.as_bytes().to_vec(),
    );
    headers.insert(HEADER_ID.to_owned(), event.event_id().into_bytes());
    headers.insert(HEADER_SOURCE.to_owned(), source_of(event).into_bytes());
    headers.insert(
        HEADER_TYPE.to_owned(),
        event.cloud_event_type().into_bytes(),
    );
    headers.insert(HEADER_TIME.to_owned(), occurred_at.into_bytes());
    headers.insert(
        HEADER_SUBJECT.to_owned(),
        event.order_id.to_string().into_bytes(),
    );
    headers.insert(
        HEADER_CONTENT_TYPE.to_owned(),
        CONTENT_TYPE_JSON.as_bytes().to_vec(),
    );
    let timestamp_ms = UnixMillis::floor(event.occurred_at).get();
    Record {
        key: Some(record_key(event.order_id)),
        value: Some(value),
        headers,
        timestamp: DateTime::<Utc>::from_timestamp_millis(timestamp_ms).unwrap_or_default(),
    }
}

/// Why a record is not one of our events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("header {0} is missing")]
    MissingHeader(&'static str),
    #[error("header {name} is {found:?}, expected {expected:?}")]
    WrongHeader {
        name: &'static str,
        found: String,
        expected: String,
    },
    #[error("record has no value")]
    MissingValue,
    #[error("record value is not an order event: {0}")]
    BadValue(String),
    #[error("record key {found:?} is not the order id {expected}")]
    WrongKey { found: String, expected: OrderId },
}

/// Decodes a record written by [`encode`], checking that the headers and the key agree with
/// the value (a record whose attributes lie about its data is refused, not trusted).
pub fn decode(record: &Record) -> Result<OrderEvent, DecodeError> {
    let header = |name: &'static str| -> Result<String, DecodeError> {
        record
            .headers
            .get(name)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .ok_or(DecodeError::MissingHeader(name))
    };
    let expect = |name: &'static str, expected: String| -> Result<(), DecodeError> {
        let found = header(name)?;
        if found == expected {
            Ok(())
        } else {
            Err(DecodeError::WrongHeader {
                name,
                found,
                expected,
            })
        }
    };

    expect(HEADER_SPECVERSION, SPEC_VERSION.to_owned())?;
    // datacontenttype is optional in CloudEvents; when present it must be JSON
    if record.headers.contains_key(HEADER_CONTENT_TYPE) {
        let content_type = header(HEADER_CONTENT_TYPE)?;
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if !media_type.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
            return Err(DecodeError::WrongHeader {
                name: HEADER_CONTENT_TYPE,
                found: content_type,
                expected: CONTENT_TYPE_JSON.to_owned(),
            });
        }
    }
    let value = record.value.as_deref().ok_or(DecodeError::MissingValue)?;
    let event: OrderEvent =
        serde_json::from_slice(value).map_err(|error| DecodeError::BadValue(error.to_string()))?;

    expect(HEADER_ID, event.event_id())?;
    expect(HEADER_SOURCE, source_of(&event))?;
    expect(HEADER_TYPE, event.cloud_event_type())?;
    expect(HEADER_SUBJECT, event.order_id.to_string())?;
    let key = record.key.as_deref().unwrap_or_default();
    if key != record_key(event.order_id).as_slice() {
        return Err(DecodeError::WrongKey {
            found: String::from_utf8_lossy(key).into_owned(),
            expected: event.order_id,
        });
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use oc_model::{BusinessIdentity, OrderEventKind, OrderType, StatusCode, TenantId};
    use time::OffsetDateTime;

    use super::*;

    fn event() -> OrderEvent {
        OrderEvent {
            tenant: TenantId::parse("acme").unwrap(),
            order_id: OrderId::from_raw(987_654_321).unwrap(),
            version: 3,
            kind: OrderEventKind::StatusChanged,
            status: StatusCode::parse("paid").unwrap(),
            business_identity: BusinessIdentity::parse("retail").unwrap(),
            order_type: OrderType::parse("standard").unwrap(),
            occurred_at: OffsetDateTime::from_unix_timestamp_nanos(1_790_000_000_123_000_000)
                .unwrap(),
            transition: None,
            payment: None,
            after_sale: None,
        }
    }

    fn header(record: &Record, name: &str) -> String {
        String::from_utf8(record.headers[name].clone()).unwrap()
    }

    #[test]
    fn encodes_binary_mode_and_round_trips() {
        let event = event();
        let record = encode(&event);
        assert_eq!(record.key.as_deref(), Some(&b"987654321"[..]));
        assert_eq!(header(&record, "ce_specversion"), "1.0");
        assert_eq!(header(&record, "ce_id"), "987654321-3");
        assert_eq!(header(&record, "ce_source"), "/ordercenter/acme");
        assert_eq!(
            header(&record, "ce_type"),
            "com.ordercenter.order.status_changed"
        );
        assert_eq!(header(&record, "ce_time"), "2026-09-21T14:13:20.123Z");
        assert_eq!(header(&record, "ce_subject"), "987654321");
        assert_eq!(header(&record, "content-type"), "application/json");
        assert_eq!(record.timestamp.timestamp_millis(), 1_790_000_000_123);
        assert_eq!(decode(&record).unwrap(), event);
    }

    #[test]
    fn a_transition_names_itself_in_the_type_and_round_trips_its_note() {
        let mut event = event();
        let status = |code: &str| StatusCode::parse(code).unwrap();
        event.transition = Some(oc_model::TransitionNote {
            event: oc_model::TransitionEvent::parse("ship").unwrap(),
            from: status("paid"),
            to: status("shipped"),
            event_type: "shipped".into(),
            operator: "shop-api".into(),
            source_system: "api".into(),
            reason: None,
            data: [("carrier".to_owned(), serde_json::json!("SF"))].into(),
            stock: oc_model::StockEffect::None,
            released: None,
        });
        let record = encode(&event);
        assert_eq!(header(&record, "ce_type"), "com.ordercenter.order.shipped");
        assert_eq!(decode(&record).unwrap(), event);
    }

    #[test]
    fn refuses_records_whose_attributes_disagree() {
        let mut wrong_id = encode(&event());
        wrong_id
            .headers
            .insert(HEADER_ID.into(), b"987654321-2".to_vec());
        assert!(matches!(
            decode(&wrong_id),
            Err(DecodeError::WrongHeader { name: "ce_id", .. })
        ));

        let mut wrong_key = encode(&event());
        wrong_key.key = Some(b"1".to_vec());
        assert!(matches!(
            decode(&wrong_key),
            Err(DecodeError::WrongKey { .. })
        ));

        let mut not_json = encode(&event());
        not_json
            .headers
            .insert(HEADER_CONTENT_TYPE.into(), b"text/plain".to_vec());
        assert!(decode(&not_json).is_err());

        let mut no_spec = encode(&event());
        no_spec.headers.remove(HEADER_SPECVERSION);
        assert_eq!(
            decode(&no_spec),
            Err(DecodeError::MissingHeader("ce_specversion"))
        );

        let mut garbage = encode(&event());
        garbage.value = Some(b"{".to_vec());
        assert!(matches!(decode(&garbage), Err(DecodeError::BadValue(_))));
    }
}
