//! Money in integer minor units. No floats anywhere: amounts are `i64` counts of the
//! currency's minor unit (fen, cent, yen) and every operation is checked.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// An ISO 4217 currency we support, with its number of minor-unit digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// Supported currencies and their minor-unit exponents (ISO 4217).
const CURRENCIES: &[(&str, u8)] = &[
    ("CNY", 2),
    ("HKD", 2),
    ("USD", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("SGD", 2),
    ("AUD", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("THB", 2),
    ("MYR", 2),
    ("JPY", 0),
    ("KRW", 0),
    ("VND", 0),
    ("BHD", 3),
    ("KWD", 3),
];

impl Currency {
    pub const CNY: Currency = Currency {
        code: *b"CNY",
        exponent: 2,
    };
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };
    pub const JPY: Currency = Currency {
        code: *b"JPY",
        exponent: 0,
    };

    pub fn parse(code: &str) -> Result<Currency, DomainError> {
        CURRENCIES
            .iter()
            .find(|(known, _)| *known == code)
            .map(|(known, exponent)| {
                let bytes = known.as_bytes();
                Currency {
                    code: [bytes[0], bytes[1], bytes[2]],
                    exponent: *exponent,
                }
            })
            .ok_or_else(|| {
                DomainError::invalid("", format!("unsupported currency {code:?} (ISO 4217 code)"))
            })
    }

    pub fn code(&self) -> &str {
        // the bytes come from the ASCII table above
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Digits after the decimal point (2 for CNY, 0 for JPY, 3 for BHD).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Currency::parse(&value).map_err(|e| e.message)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> String {
        currency.code().to_owned()
    }
}

/// Why an amount computation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount overflow")]
    Overflow,
    #[error("cannot allocate over weights that sum to zero")]
    ZeroWeights,
    #[error("negative amount or weight where only non-negative ones are allowed")]
    Negative,
    #[error("malformed amount {0:?}")]
    Malformed(String),
}

impl From<MoneyError> for DomainError {
    fn from(error: MoneyError) -> DomainError {
        DomainError::invalid("", error.to_string())
    }
}

/// An amount: a signed count of minor units in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Minor units (fen for CNY): `1234` CNY is 12.34 yuan.
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub const fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self
            .minor
            .checked_sub(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Multiply by a quantity (unit price × qty).
    pub fn checked_mul(self, quantity: i64) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(quantity)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Sum amounts of one currency; the empty sum is zero in `currency`.
    pub fn checked_sum<'a>(
        currency: Currency,
        amounts: impl IntoIterator<Item = &'a Money>,
    ) -> Result<Money, MoneyError> {
        amounts
            .into_iter()
            .try_fold(Money::zero(currency), |acc, m| acc.checked_add(*m))
    }

    /// Split this non-negative amount over non-negative weights, exactly: the parts sum to
    /// the whole and each part is within one minor unit of its proportional share. Largest
    /// remainder method, ties to the earlier index, so the result is deterministic. This is
    /// how a discount is spread over lines and a line amount over its units.
    pub fn allocate(self, weights: &[i64]) -> Result<Vec<Money>, MoneyError> {
        if self.minor < 0 || weights.iter().any(|w| *w < 0) {
            return Err(MoneyError::Negative);
        }
        let total_weight: i128 = weights.iter().map(|w| i128::from(*w)).sum();
        if total_weight == 0 {
            return Err(MoneyError::ZeroWeights);
        }
        let amount = i128::from(self.minor);
        let mut parts = Vec::with_capacity(weights.len());
        let mut remainders = Vec::with_capacity(weights.len());
        let mut allocated: i128 = 0;
        for (index, weight) in weights.iter().enumerate() {
            let product = amount * i128::from(*weight);
            let share = product / total_weight;
            remainders.push((product % total_weight, index));
            parts.push(share);
            allocated += share;
        }
        // hand out what is left, one minor unit each, to the largest remainders
        let mut left = amount - allocated;
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, index) in remainders {
            if left == 0 {
                break;
            }
            if weights[index] > 0 {
                parts[index] += 1;
                left -= 1;
            }
        }
        debug_assert_eq!(left, 0);
        parts
            .into_iter()
            .map(|p| {
                i64::try_from(p)
                    .map(|m| Money::new(m, self.currency))
                    .map_err(|_| MoneyError::Overflow)
            })
            .collect()
    }

    /// Split into `parts` near-equal shares (per-unit split of a line amount).
    pub fn split_evenly(self, parts: usize) -> Result<Vec<Money>, MoneyError> {
        if parts == 0 {
            return Err(MoneyError::ZeroWeights);
        }
        self.allocate(&vec![1; parts])
    }

    /// Parse a decimal string in major units ("12.34") exactly; more digits than the
    /// currency's exponent are refused rather than rounded.
    pub fn parse_major(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_owned());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let exponent = usize::from(currency.exponent());
        let valid = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && fraction.len() <= exponent
            && !(digits.contains('.') && fraction.is_empty());
        if !valid {
            return Err(malformed());
        }
        let whole: i64 = whole.parse().map_err(|_| MoneyError::Overflow)?;
        let mut fraction_value: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| malformed())?
        };
        for _ in fraction.len()..exponent {
            fraction_value *= 10;
        }
        let scale = 10i64.pow(u32::from(currency.exponent()));
        let minor = whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(fraction_value))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(if negative { -minor } else { minor }, currency))
    }
}

impl fmt::Display for Money {
    /// `12.34 CNY`, `-0.05 USD`, `500 JPY`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exponent = u32::from(self.currency.exponent());
        let sign = if self.minor < 0 { "-" } else { "" };
        let magnitude = self.minor.unsigned_abs();
        if exponent == 0 {
            return write!(f, "{sign}{magnitude} {}", self.currency);
        }
        let scale = 10u64.pow(exponent);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            self.currency,
            width = exponent as usize
        )
    }
}

impl FromStr for Currency {
    type Err = DomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cny(minor: i64) -> Money {
        Money::new(minor, Currency::CNY)
    }

    proptest! {
        #[test]
        fn add_then_sub_is_identity(a in any::<i64>(), b in any::<i64>()) {
            match cny(a).checked_add(cny(b)) {
                Ok(sum) => prop_assert_eq!(sum.checked_sub(cny(b)).unwrap(), cny(a)),
                Err(e) => {
                    prop_assert_eq!(e, MoneyError::Overflow);
                    prop_assert!(a.checked_add(b).is_none());
                }
            }
        }

        #[test]
        fn addition_commutes_and_never_wraps(a in any::<i64>(), b in any::<i64>()) {
            prop_assert_eq!(cny(a).checked_add(cny(b)), cny(b).checked_add(cny(a)));
            if let Ok(sum) = cny(a).checked_add(cny(b)) {
                prop_assert_eq!(i128::from(sum.minor), i128::from(a) + i128::from(b));
            }
        }

        #[test]
        fn multiplication_matches_wide_arithmetic(a in any::<i64>(), q in any::<i64>()) {
            let wide = i128::from(a) * i128::from(q);
            match cny(a).checked_mul(q) {
                Ok(product) => prop_assert_eq!(i128::from(product.minor), wide),
                Err(_) => prop_assert!(i64::try_from(wide).is_err()),
            }
        }

        #[test]
        fn allocation_is_exact_and_fair(
            amount in 0i64..=i64::MAX / 2,
            weights in proptest::collection::vec(0i64..1_000_000, 1..40),
        ) {
            prop_assume!(weights.iter().any(|w| *w > 0));
            let parts = cny(amount).allocate(&weights).unwrap();
            prop_assert_eq!(parts.len(), weights.len());
            let total: i128 = parts.iter().map(|p| i128::from(p.minor)).sum();
            prop_assert_eq!(total, i128::from(amount), "parts sum to the whole");
            let total_weight: i128 = weights.iter().map(|w| i128::from(*w)).sum();
            for (part, weight) in parts.iter().zip(&weights) {
                prop_assert!(part.minor >= 0);
                let exact_times_total = i128::from(amount) * i128::from(*weight);
                let scaled = i128::from(part.minor) * total_weight;
                // |part - exact share| < 1 minor unit
                prop_assert!((scaled - exact_times_total).abs() < total_weight);
                if *weight == 0 {
                    prop_assert_eq!(part.minor, 0, "zero weight gets nothing");
                }
            }
        }

        #[test]
        fn even_split_differs_by_at_most_one(amount in 0i64..1_000_000_000_000, parts in 1usize..64) {
            let split = cny(amount).split_evenly(parts).unwrap();
            let min = split.iter().map(|m| m.minor).min().unwrap();
            let max = split.iter().map(|m| m.minor).max().unwrap();
            prop_assert!(max - min <= 1);
            prop_assert_eq!(split.iter().map(|m| m.minor).sum::<i64>(), amount);
            // larger shares come first: deterministic, the earlier unit absorbs the remainder
            prop_assert!(split.windows(2).all(|w| w[0].minor >= w[1].minor));
        }

        #[test]
        fn display_then_parse_round_trips(minor in (i64::MIN + 1)..i64::MAX, which in 0usize..3) {
            let currency = [Currency::CNY, Currency::JPY, Currency::parse("BHD").unwrap()][which];
            let money = Money::new(minor, currency);
            let shown = money.to_string();
            let (number, code) = shown.rsplit_once(' ').unwrap();
            prop_assert_eq!(code, currency.code());
            prop_assert_eq!(Money::parse_major(number, currency).unwrap(), money);
        }
    }

    #[test]
    fn currencies_do_not_mix() {
        let usd = Money::new(1, Currency::USD);
        assert!(matches!(
            cny(1).checked_add(usd),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(matches!(
            cny(1).checked_sub(usd),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert!(Money::checked_sum(Currency::CNY, &[cny(1), usd]).is_err());
        assert_eq!(Money::checked_sum(Currency::CNY, &[]).unwrap(), cny(0));
    }

    #[test]
    fn parse_major_is_strict() {
        assert_eq!(
            Money::parse_major("12.34", Currency::CNY).unwrap(),
            cny(1234)
        );
        assert_eq!(
            Money::parse_major("12.3", Currency::CNY).unwrap(),
            cny(1230)
        );
        assert_eq!(Money::parse_major("12", Currency::CNY).unwrap(), cny(1200));
        for bad in [
            "",
            "12.345",
            "1e3",
            "12.",
            ".5",
            "+1",
            "1,00",
            "--1",
            "NaN",
            "99999999999999999999",
        ] {
            assert!(Money::parse_major(bad, Currency::CNY).is_err(), "{bad:?}");
        }
        assert!(Money::parse_major("1.5", Currency::JPY).is_err());
    }

    #[test]
    fn allocation_examples_from_the_seeds() {
        // 8.00 yuan over 2 full-price A at 3.00 and one promoted A at 2.00, minus a 1.00 discount
        let parts = cny(700).allocate(&[300, 300, 200]).unwrap();
        assert_eq!(
            parts.iter().map(|m| m.minor).collect::<Vec<_>>(),
            vec![263, 262, 175]
        );
        assert_eq!(cny(100).allocate(&[0, 0]), Err(MoneyError::ZeroWeights));
        assert_eq!(cny(-1).allocate(&[1]), Err(MoneyError::Negative));
        assert_eq!(cny(1).allocate(&[1, -1]), Err(MoneyError::Negative));
        assert!(Currency::parse("XXX").is_err());
    }
}
