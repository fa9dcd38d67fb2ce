//! Keys, time bounds and cursors shared by both adapters.
//!
//! An order's key is `{tenant}\0{order id, big-endian u64}`; the HBase adapter puts a one-byte
//! salt in front. Tenant ids are `[a-z0-9_-]` and never contain `\0`, so the separator makes
//! every tenant's keys one contiguous range that no other tenant's range overlaps (`acme\0…`
//! sorts apart from `acme2\0…`). Order ids sort by creation time, so a tenant's orders created
//! in `[from, to)` are the contiguous key range `[{tenant}\0{lo}, {tenant}\0{hi})`.

use oc_model::ids::ID_EPOCH_UNIX_MS;
use oc_model::ports::PageRequest;
use oc_model::{DomainError, DomainResult, OrderId, TenantId, UnixMillis};
use time::OffsetDateTime;

/// Bits below the timestamp in an order id (bucket 10 + node 5 + sequence 7).
const ID_TIMESTAMP_SHIFT: u32 = 22;
/// Milliseconds an order id can hold after its epoch (41 bits).
const ID_TIMESTAMP_LIMIT: u64 = 1 << 41;

/// Largest page a scan answers; larger requests are cut to it.
pub const MAX_PAGE: u32 = 1000;

/// Length of the id suffix of every key.
pub(crate) const ID_LEN: usize = 8;

/// `{tenant}\0`: the prefix every key of the tenant starts with.
pub(crate) fn tenant_prefix(tenant: &TenantId) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(tenant.as_str().len() + 1 + ID_LEN);
    prefix.extend_from_slice(tenant.as_str().as_bytes());
    prefix.push(0);
    prefix
}

/// `{tenant}\0{raw id big-endian}`. `raw_id` may be a range bound that is not an id.
pub(crate) fn tenant_key(tenant: &TenantId, raw_id: u64) -> Vec<u8> {
    let mut key = tenant_prefix(tenant);
    key.extend_from_slice(&raw_id.to_be_bytes());
    key
}

/// `{tenant}\x01{raw after-sale id big-endian}`: the key of an archived after-sale's index
/// entry where it shares a key space with orders (HBase). `\x01` sorts above the orders'
/// `\0` and below every tenant-id byte, so these keys fall in no tenant's order range (a
/// scan never meets them) and in no other tenant's either.
pub(crate) fn after_sale_key(tenant: &TenantId, raw_id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.as_str().len() + 1 + ID_LEN);
    key.extend_from_slice(tenant.as_str().as_bytes());
    key.push(1);
    key.extend_from_slice(&raw_id.to_be_bytes());
    key
}

/// The id at the end of a key, when the key is `prefix` followed by exactly eight bytes.
pub(crate) fn id_after_prefix(key: &[u8], prefix: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    let bytes: [u8; ID_LEN] = rest.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The smallest raw id whose creation millisecond is not before `instant`.
///
/// An id's time is a whole millisecond `m`; it counts as created at `m.000`, so it lies in
/// `[from, to)` exactly when `ceil_ms(from) <= m < ceil_ms(to)`. Instants before the id epoch
/// map to 0 and instants past the id range to `2^63` (above every id).
pub(crate) fn id_floor(instant: OffsetDateTime) -> u64 {
    let ceil_ms = i128::from(UnixMillis::ceil(instant).get());
    let since_epoch =
        (ceil_ms - i128::from(ID_EPOCH_UNIX_MS)).clamp(0, i128::from(ID_TIMESTAMP_LIMIT));
    // clamp keeps the value within 0..=2^41, so it fits in u64 and the shift stays below 2^64
    (since_epoch as u64) << ID_TIMESTAMP_SHIFT
}

/// The raw id range `[lo, hi)` of a scan page: the time window, narrowed by the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdRange {
    pub lo: u64,
    pub hi: u64,
}

impl IdRange {
    pub(crate) fn new(
        from: OffsetDateTime,
        to: OffsetDateTime,
        cursor: Option<&str>,
    ) -> DomainResult<IdRange> {
        let mut lo = id_floor(from);
        let hi = id_floor(to);
        if let Some(cursor) = cursor {
            let after = decode_cursor(cursor)?;
            lo = lo.max(after.saturating_add(1));
        }
        Ok(IdRange { lo, hi })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lo >= self.hi
    }
}

/// The page size to use: at least 1, at most [`MAX_PAGE`].
pub(crate) fn page_limit(page: &PageRequest) -> usize {
    page.limit.clamp(1, MAX_PAGE) as usize
}

const CURSOR_TAG: &str = "c1.";

/// An opaque cursor: the position after the last order of a page. It holds no tenant or time
/// window, so a cursor replayed against another tenant or window only narrows that scan.
pub(crate) fn encode_cursor(last: OrderId) -> String {
    format!("{CURSOR_TAG}{:016x}", last.get())
}

pub(crate) fn decode_cursor(cursor: &str) -> DomainResult<u64> {
    let bad = || DomainError::invalid("/cursor", "malformed cursor");
    let hex = cursor.strip_prefix(CURSOR_TAG).ok_or_else(bad)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    u64::from_str_radix(hex, 16).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use oc_model::{Bucket, OrderIdGenerator};

    use super::*;

    fn at_ms(unix_ms: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap()
    }

    #[test]
    fn time_bounds_select_ids_by_their_millisecond() {
        let generator = OrderIdGenerator::new(31).unwrap();
        let ms = 1_790_000_000_123_u64;
        let id = generator.next(Bucket::new(1023).unwrap(), ms).get();
        let from = at_ms(ms as i64);
        let to = at_ms(ms as i64 + 1);
        assert!(id_floor(from) <= id && id < id_floor(to));
        // an instant inside the millisecond starts after the id
        let inside = from + time::Duration::microseconds(500);
        assert!(id < id_floor(inside));
        assert_eq!(id_floor(inside), id_floor(to));
        // out-of-range instants clamp
        assert_eq!(id_floor(at_ms(0)), 0);
        assert_eq!(id_floor(at_ms(-5)), 0);
        assert_eq!(
            id_floor(OffsetDateTime::from_unix_timestamp(253_402_300_799).unwrap()),
            1 << 63
        );
    }

    #[test]
    fn keys_order_by_tenant_then_id_and_never_mix_tenants() {
        let acme = TenantId::parse("acme").unwrap();
        let acme2 = TenantId::parse("acme2").unwrap();
        let high_acme = tenant_key(&acme, u64::MAX);
        let low_acme2 = tenant_key(&acme2, 0);
        assert!(high_acme < low_acme2);
        assert!(tenant_key(&acme, 5) < tenant_key(&acme, 6));
        assert!(tenant_key(&acme, 255) < tenant_key(&acme, 256));
        assert!(!low_acme2.starts_with(&tenant_prefix(&acme)));
        assert_eq!(
            id_after_prefix(&tenant_key(&acme, 42), &tenant_prefix(&acme)),
            Some(42)
        );
        assert_eq!(id_after_prefix(&low_acme2, &tenant_prefix(&acme)), None);
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = OrderId::from_raw(0x0123_4567_89ab_cdef).unwrap();
        assert_eq!(decode_cursor(&encode_cursor(id)).unwrap(), id.get());
        for bad in [
            "",
            "c1.",
            "c1.123",
            "c2.0123456789abcdef",
            "c1.0123456789abcdeg",
            "c1.+123456789abcdef",
        ] {
            let error = decode_cursor(bad).unwrap_err();
            assert_eq!(error.field.as_deref(), Some("/cursor"), "{bad}");
        }
    }

    #[test]
    fn cursor_narrows_the_window() {
        let from = at_ms(1_790_000_000_000);
        let to = at_ms(1_790_000_100_000);
        let full = IdRange::new(from, to, None).unwrap();
        let last = OrderId::from_raw(full.lo + 10).unwrap();
        let rest = IdRange::new(from, to, Some(&encode_cursor(last))).unwrap();
        assert_eq!(
            rest,
            IdRange {
                lo: full.lo + 11,
                hi: full.hi
            }
        );
        // a cursor from before the window does not widen it
        let early = OrderId::from_raw(1).unwrap();
        assert_eq!(
            IdRange::new(from, to, Some(&encode_cursor(early))).unwrap(),
            full
        );
        assert!(IdRange::new(to, from, None).unwrap().is_empty());
    }
}
