//! Unix milliseconds: the one time representation every store, index, bus record and id of
//! Order Center uses (times are stored as BIGINT milliseconds in both SQL dialects, indexed
//! as epoch milliseconds, and embedded in order ids).
//!
//! One conversion rule, so no two places disagree about which millisecond an instant is in:
//! an instant belongs to the millisecond it falls in, rounded **down** ([`UnixMillis::floor`],
//! also before 1970, where truncating division would round up). A half-open window
//! `[from, to)` over millisecond-precise times is `[ceil(from), ceil(to))` in milliseconds
//! ([`UnixMillis::ceil`]): a time `m` (whole milliseconds) is at or after `from` exactly when
//! `m >= ceil(from)`.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, DomainResult};

const NANOS_PER_MILLI: i128 = 1_000_000;

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(i64);

impl UnixMillis {
    pub const fn new(millis: i64) -> UnixMillis {
        UnixMillis(millis)
    }

    /// The wall clock's current millisecond.
    pub fn now() -> UnixMillis {
        UnixMillis::floor(OffsetDateTime::now_utc())
    }

    /// The millisecond `at` falls in (rounded down). Saturates outside the `i64` range, which
    /// no `OffsetDateTime` reaches.
    pub fn floor(at: OffsetDateTime) -> UnixMillis {
        let millis = at.unix_timestamp_nanos().div_euclid(NANOS_PER_MILLI);
        UnixMillis(i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX }))
    }

    /// The first millisecond at or after `at` (rounded up): the bound of a window.
    pub fn ceil(at: OffsetDateTime) -> UnixMillis {
        let nanos = at.unix_timestamp_nanos();
        let millis =
            nanos.div_euclid(NANOS_PER_MILLI) + i128::from(nanos.rem_euclid(NANOS_PER_MILLI) != 0);
        UnixMillis(i64::try_from(millis).unwrap_or(if millis < 0 { i64::MIN } else { i64::MAX }))
    }

    /// `at` without its sub-millisecond part: the instant as stores keep it.
    pub fn truncate(at: OffsetDateTime) -> OffsetDateTime {
        UnixMillis::floor(at).to_datetime().unwrap_or(at)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    /// Milliseconds as an unsigned count (ids, durations); 0 before 1970.
    pub fn as_u64(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }

    /// The instant; an error (a corrupt value) outside the dates `time` represents.
    pub fn to_datetime(self) -> DomainResult<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * NANOS_PER_MILLI).map_err(
            |error| DomainError::internal(format!("{} ms is not a valid time: {error}", self.0)),
        )
    }

    /// Whole milliseconds from `earlier` to `self`, 0 when `earlier` is later.
    pub fn since(self, earlier: UnixMillis) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
}

impl From<OffsetDateTime> for UnixMillis {
    /// [`UnixMillis::floor`].
    fn from(at: OffsetDateTime) -> UnixMillis {
        UnixMillis::floor(at)
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at_nanos(nanos: i128) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap()
    }

    #[test]
    fn floor_rounds_down_also_before_1970() {
        assert_eq!(UnixMillis::floor(at_nanos(1_999_999)).get(), 1);
        assert_eq!(UnixMillis::floor(at_nanos(2_000_000)).get(), 2);
        assert_eq!(UnixMillis::floor(at_nanos(-1)).get(), -1);
        assert_eq!(UnixMillis::floor(at_nanos(-1_000_000)).get(), -1);
        assert_eq!(UnixMillis::ceil(at_nanos(1_000_001)).get(), 2);
        assert_eq!(UnixMillis::ceil(at_nanos(1_000_000)).get(), 1);
        assert_eq!(UnixMillis::ceil(at_nanos(-1)).get(), 0);
    }

    #[test]
    fn truncate_drops_the_sub_millisecond_part() {
        assert_eq!(
            UnixMillis::truncate(at_nanos(1_790_000_000_123_456_789)),
            at_nanos(1_790_000_000_123_000_000)
        );
    }

    proptest! {
        #[test]
        fn round_trips_and_brackets_the_instant(nanos in -(1i128 << 60)..(1i128 << 60)) {
            let at = at_nanos(nanos);
            let floor = UnixMillis::floor(at);
            let ceil = UnixMillis::ceil(at);
            prop_assert!(floor.to_datetime().unwrap() <= at);
            prop_assert!(ceil.to_datetime().unwrap() >= at);
            prop_assert!(ceil.get() - floor.get() <= 1);
            prop_assert_eq!(UnixMillis::floor(floor.to_datetime().unwrap()), floor);
        }
    }
}
