//! The two extension mechanisms of the order model.
//!
//! 1. **KV identifiers** ([`KvIdentifier`]): flags and identifiers kept as key/value rows inside
//!    their business domain, instead of ever more columns.
//! 2. **Reserved extension columns** ([`Slot::Column`]): every main table (order, line) carries
//!    `ext_01..ext_NN`; tenant config maps (tenant, business identity, order type, field name) to
//!    a slot. The same slot means different things in different business contexts.
//!
//! Values are typed ([`ExtValue`]) and, when the field is encrypted, held sealed
//! ([`Protected::Sealed`]). Stores keep the tagged JSON form of [`Protected<ExtValue>`], so a
//! stored value is self-describing and stays readable across config versions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DomainError;

/// Reserved extension columns per main table (`ext_01..=ext_20`).
pub const RESERVED_COLUMNS: u8 = 20;

/// A business domain that owns KV identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusinessDomain {
    Order,
    Product,
    Logistics,
    Marketing,
    Finance,
    Channel,
    Party,
    Operation,
}

impl BusinessDomain {
    pub const ALL: [BusinessDomain; 8] = [
        BusinessDomain::Order,
        BusinessDomain::Product,
        BusinessDomain::Logistics,
        BusinessDomain::Marketing,
        BusinessDomain::Finance,
        BusinessDomain::Channel,
        BusinessDomain::Party,
        BusinessDomain::Operation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BusinessDomain::Order => "order",
            BusinessDomain::Product => "product",
            BusinessDomain::Logistics => "logistics",
            BusinessDomain::Marketing => "marketing",
            BusinessDomain::Finance => "finance",
            BusinessDomain::Channel => "channel",
            BusinessDomain::Party => "party",
            BusinessDomain::Operation => "operation",
        }
    }
}

impl fmt::Display for BusinessDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The main tables that carry reserved extension columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtTable {
    Order,
    Line,
}

impl ExtTable {
    pub fn as_str(self) -> &'static str {
        match self {
            ExtTable::Order => "order",
            ExtTable::Line => "line",
        }
    }
}

/// A reserved column number, `1..=RESERVED_COLUMNS`, shown as `ext_07`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ColumnIndex(u8);

impl ColumnIndex {
    pub fn new(index: u8) -> Result<Self, DomainError> {
        if (1..=RESERVED_COLUMNS).contains(&index) {
            Ok(ColumnIndex(index))
        } else {
            Err(DomainError::invalid(
                "",
                format!("reserved column index {index} out of range 1..={RESERVED_COLUMNS}"),
            ))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// The SQL column name, `ext_07`.
    pub fn column_name(self) -> String {
        format!("ext_{:02}", self.0)
    }
}

impl fmt::Display for ColumnIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ext_{:02}", self.0)
    }
}

impl FromStr for ColumnIndex {
    type Err = DomainError;
    /// Parses `ext_07` (or `ext_7`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("ext_").unwrap_or("");
        let index: u8 = if !digits.is_empty()
            && digits.len() <= 2
            && digits.bytes().all(|b| b.is_ascii_digit())
        {
            digits.parse().unwrap_or(0)
        } else {
            0
        };
        ColumnIndex::new(index).map_err(|_| {
            DomainError::invalid(
                "",
                format!("{s:?} is not a reserved column (ext_01..ext_{RESERVED_COLUMNS:02})"),
            )
        })
    }
}

impl Serialize for ColumnIndex {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ColumnIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|e: DomainError| serde::de::Error::custom(e.message))
    }
}

/// Where an extension field lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Slot {
    /// A reserved column of the order or line table.
    Column {
        table: ExtTable,
        column: ColumnIndex,
    },
    /// A KV identifier row in a business domain.
    Kv { domain: BusinessDomain, key: String },
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::Column { table, column } => write!(f, "{}.{}", table.as_str(), column),
            Slot::Kv { domain, key } => write!(f, "kv:{domain}/{key}"),
        }
    }
}

/// The declared type of an extension field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtFieldType {
    String,
    Int,
    Decimal,
    Bool,
    Date,
    Enum,
    Json,
}

impl ExtFieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExtFieldType::String => "string",
            ExtFieldType::Int => "int",
            ExtFieldType::Decimal => "decimal",
            ExtFieldType::Bool => "bool",
            ExtFieldType::Date => "date",
            ExtFieldType::Enum => "enum",
            ExtFieldType::Json => "json",
        }
    }

    /// Whether every value valid as `self` stays valid when the field becomes `to`
    /// (a widening change a config plan may accept on a slot that already holds data).
    pub fn widens_to(self, to: ExtFieldType) -> bool {
        use ExtFieldType as T;
        self == to
            || matches!(
                (self, to),
                (T::Int, T::Decimal) | (T::Enum, T::String) | (_, T::Json)
            )
    }
}

impl fmt::Display for ExtFieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An exact decimal: `units × 10^-scale`, e.g. `-12.345` is `{ units: -12345, scale: 3 }`.
/// Parsed from and printed as a decimal string; never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    pub units: i64,
    pub scale: u8,
}

/// Decimal places an extension decimal may carry.
pub const MAX_DECIMAL_SCALE: u8 = 9;

impl Decimal {
    /// Compare by value (`1.50 == 1.5`) with no rounding.
    pub fn cmp_value(&self, other: &Decimal) -> std::cmp::Ordering {
        let scale = self.scale.max(other.scale);
        let widen = |d: &Decimal| i128::from(d.units) * 10i128.pow(u32::from(scale - d.scale));
        widen(self).cmp(&widen(other))
    }
}

impl FromStr for Decimal {
    type Err = DomainError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || DomainError::invalid("", format!("{text:?} is not a decimal number"));
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !whole.is_empty()
            && whole.bytes().all(|b| b.is_ascii_digit())
            && fraction.bytes().all(|b| b.is_ascii_digit())
            && !(digits.contains('.') && fraction.is_empty());
        if !well_formed {
            return Err(bad());
        }
        if fraction.len() > usize::from(MAX_DECIMAL_SCALE) {
            return Err(DomainError::invalid(
                "",
                format!("{text:?} has more than {MAX_DECIMAL_SCALE} decimal places"),
            ));
        }
        let joined = format!("{whole}{fraction}");
        let magnitude: i64 = joined.parse().map_err(|_| bad())?;
        Ok(Decimal {
            units: if negative { -magnitude } else { magnitude },
            scale: fraction.len() as u8,
        })
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let magnitude = self.units.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let scale = 10u64.pow(u32::from(self.scale));
        write!(
            f,
            "{sign}{}.{:0width$}",
            magnitude / scale,
            magnitude % scale,
            width = usize::from(self.scale)
        )
    }
}

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        raw.parse()
            .map_err(|e: DomainError| serde::de::Error::custom(e.message))
    }
}

/// A typed extension value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "v", rename_all = "snake_case")]
pub enum ExtValue {
    String(String),
    Int(i64),
    Decimal(Decimal),
    Bool(bool),
    /// A calendar date (`2026-11-23`).
    Date(#[serde(with = "date_format")] time::Date),
    Enum(String),
    Json(serde_json::Value),
}

mod date_format {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Iso8601;
    use time::macros::format_description;

    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day]");

    pub fn serialize<S: Serializer>(date: &time::Date, s: S) -> Result<S::Ok, S::Error> {
        let text = date.format(FORMAT).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<time::Date, D::Error> {
        let raw = String::deserialize(d)?;
        parse(&raw).map_err(serde::de::Error::custom)
    }

    pub fn parse(raw: &str) -> Result<time::Date, String> {
        time::Date::parse(raw, FORMAT)
            .or_else(|_| time::Date::parse(raw, &Iso8601::DATE))
            .map_err(|_| format!("{raw:?} is not a date (YYYY-MM-DD)"))
    }
}

impl ExtValue {
    pub fn field_type(&self) -> ExtFieldType {
        match self {
            ExtValue::String(_) => ExtFieldType::String,
            ExtValue::Int(_) => ExtFieldType::Int,
            ExtValue::Decimal(_) => ExtFieldType::Decimal,
            ExtValue::Bool(_) => ExtFieldType::Bool,
            ExtValue::Date(_) => ExtFieldType::Date,
            ExtValue::Enum(_) => ExtFieldType::Enum,
            ExtValue::Json(_) => ExtFieldType::Json,
        }
    }

    /// Convert a JSON value from a request into a typed value of `field_type`. Strict: no
    /// silent coercions except that decimals and dates come as strings, and a decimal also
    /// accepts a JSON integer. Floats are refused (they cannot be exact).
    pub fn from_json(
        field_type: ExtFieldType,
        json: &serde_json::Value,
    ) -> Result<ExtValue, DomainError> {
        use serde_json::Value as J;
        let mismatch = || {
            DomainError::invalid(
                "",
                format!(
                    "expected a value of type {field_type}, got {}",
                    json_kind(json)
                ),
            )
        };
        match (field_type, json) {
            (ExtFieldType::String, J::String(s)) => Ok(ExtValue::String(s.clone())),
            (ExtFieldType::Enum, J::String(s)) => Ok(ExtValue::Enum(s.clone())),
            (ExtFieldType::Int, J::Number(n)) => n.as_i64().map(ExtValue::Int).ok_or_else(mismatch),
            (ExtFieldType::Decimal, J::String(s)) => s.parse().map(ExtValue::Decimal),
            (ExtFieldType::Decimal, J::Number(n)) => n
                .as_i64()
                .map(|units| ExtValue::Decimal(Decimal { units, scale: 0 }))
                .ok_or_else(|| {
                    DomainError::invalid(
                        "",
                        "decimal values with a fraction must be sent as strings, e.g. \"12.50\"",
                    )
                }),
            (ExtFieldType::Bool, J::Bool(b)) => Ok(ExtValue::Bool(*b)),
            (ExtFieldType::Date, J::String(s)) => date_format::parse(s)
                .map(ExtValue::Date)
                .map_err(|m| DomainError::invalid("", m)),
            (ExtFieldType::Json, value) => Ok(ExtValue::Json(value.clone())),
            _ => Err(mismatch()),
        }
    }

    /// The JSON a client sees and a JSON Schema constraint is checked against: decimals and
    /// dates as strings, everything else as its natural JSON type.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            ExtValue::String(s) | ExtValue::Enum(s) => J::String(s.clone()),
            ExtValue::Int(i) => J::from(*i),
            ExtValue::Decimal(d) => J::String(d.to_string()),
            ExtValue::Bool(b) => J::Bool(*b),
            ExtValue::Date(_) => serde_json::to_value(self)
                .ok()
                .and_then(|tagged| tagged.get("v").cloned())
                .unwrap_or(J::Null),
            ExtValue::Json(v) => v.clone(),
        }
    }

    /// A canonical text form: what a KV identifier row holds, and what is blind-indexed.
    pub fn canonical_text(&self) -> String {
        match self.to_json() {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }
    }

    /// The inverse of [`ExtValue::canonical_text`] for a field of `field_type`.
    pub fn from_canonical_text(
        field_type: ExtFieldType,
        text: &str,
    ) -> Result<ExtValue, DomainError> {
        let json = match field_type {
            ExtFieldType::String
            | ExtFieldType::Enum
            | ExtFieldType::Decimal
            | ExtFieldType::Date => serde_json::Value::String(text.to_owned()),
            ExtFieldType::Int | ExtFieldType::Bool | ExtFieldType::Json => {
                serde_json::from_str(text).map_err(|_| {
                    DomainError::invalid("", format!("{text:?} is not a {field_type} value"))
                })?
            }
        };
        ExtValue::from_json(field_type, &json)
    }
}

fn json_kind(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(n) if n.is_f64() => "a floating-point number",
        serde_json::Value::Number(_) => "an integer",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Ciphertext of a protected value, as stored: base64url text of the `oc-crypto` blob plus,
/// for searchable fields, the keyed blind index used for equality search.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    #[serde(rename = "c")]
    pub ciphertext: String,
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub blind_index: Option<String>,
}

/// A value that may hold personal data. The API layer seals every `Plain` value of a field
/// configured as encrypted before it reaches a store; stores refuse `Plain` PII. Reads give
/// `Sealed` back, and only the API opens it, for roles allowed to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Protected<T> {
    Sealed { sealed: Sealed },
    Plain(T),
}

impl<T> Protected<T> {
    pub fn is_sealed(&self) -> bool {
        matches!(self, Protected::Sealed { .. })
    }

    pub fn plain(&self) -> Option<&T> {
        match self {
            Protected::Plain(value) => Some(value),
            Protected::Sealed { .. } => None,
        }
    }
}

/// The value of a KV identifier, in the form its row stores: the canonical text of a clear
/// value ([`ExtValue::canonical_text`], so the identifier index can look it up), or the JSON
/// of a sealed one (`{"sealed":{"c":"…","b":"…"}}`).
///
/// Which of the two a value is, is not in its text: a clear field may hold any text,
/// including one that looks sealed. The field configured at the identifier's slot decides
/// (its `encrypted` flag, in the tenant config), so a value is read as clear text
/// ([`KvValue::clear_text`]) or as sealed ([`KvValue::sealed`]) by a caller who holds the
/// config, never by inspecting it. Serialised as the bare text (`#[serde(transparent)]`), as
/// rows, cache entries, events and cold copies have always held it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KvValue(String);

/// The stored form of a sealed KV value: the JSON of `Protected::Sealed`.
#[derive(Serialize, Deserialize)]
struct SealedKv {
    sealed: Sealed,
}

impl KvValue {
    /// The value of a clear field: its canonical text.
    pub fn clear(text: impl Into<String>) -> KvValue {
        KvValue(text.into())
    }

    /// The value of an encrypted field: its sealed form.
    pub fn from_sealed(sealed: &Sealed) -> KvValue {
        let json = serde_json::to_string(&SealedKv {
            sealed: sealed.clone(),
        })
        .unwrap_or_default();
        KvValue(json)
    }

    /// A value as a store row holds it (adapters decoding rows).
    pub fn from_stored(text: impl Into<String>) -> KvValue {
        KvValue(text.into())
    }

    /// The text a store row holds (adapters encoding rows).
    pub fn stored(&self) -> &str {
        &self.0
    }

    /// The canonical text, for a field that is not encrypted.
    pub fn clear_text(&self) -> &str {
        &self.0
    }

    /// The sealed value, for a field that is encrypted; an error when the stored text is not
    /// a sealed value.
    pub fn sealed(&self) -> Result<Sealed, DomainError> {
        serde_json::from_str::<SealedKv>(&self.0)
            .map(|stored| stored.sealed)
            .map_err(|e| DomainError::internal(format!("not a sealed value: {e}")))
    }
}

/// A KV identifier: a flag or identifier kept as a row in its business domain.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct KvIdentifier {
    pub domain: BusinessDomain,
    /// `[a-z0-9_.-]{1,64}`
    pub key: String,
    /// Up to 512 characters as stored.
    pub value: KvValue,
    /// For product-domain identifiers: the line they belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_no: Option<u32>,
}

/// Longest KV identifier value.
pub const MAX_KV_VALUE_LEN: usize = 512;

impl KvIdentifier {
    pub fn new(
        domain: BusinessDomain,
        key: impl Into<String>,
        value: KvValue,
    ) -> Result<Self, DomainError> {
        let key = key.into();
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b));
        if !key_ok {
            return Err(DomainError::invalid(
                "/key",
                format!("identifier key {key:?} must be 1 to 64 of a-z 0-9 _ . -"),
            ));
        }
        if value.stored().chars().count() > MAX_KV_VALUE_LEN {
            return Err(DomainError::invalid(
                "/value",
                format!("identifier value longer than {MAX_KV_VALUE_LEN} characters"),
            ));
        }
        Ok(KvIdentifier {
            domain,
            key,
            value,
            line_no: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn column_index_parses_and_prints() {
        assert_eq!("ext_07".parse::<ColumnIndex>().unwrap().get(), 7);
        assert_eq!(ColumnIndex::new(7).unwrap().to_string(), "ext_07");
        for bad in ["ext_00", "ext_21", "ext_", "ext_1x", "07", "ext_007"] {
            assert!(bad.parse::<ColumnIndex>().is_err(), "{bad}");
        }
    }

    #[test]
    fn typed_values_from_json_are_strict() {
        use ExtFieldType as T;
        assert_eq!(
            ExtValue::from_json(T::Int, &json!(5)).unwrap(),
            ExtValue::Int(5)
        );
        assert!(ExtValue::from_json(T::Int, &json!("5")).is_err());
        assert!(ExtValue::from_json(T::Int, &json!(5.5)).is_err());
        assert!(
            ExtValue::from_json(T::Decimal, &json!(5.5)).is_err(),
            "floats are never exact"
        );
        assert_eq!(
            ExtValue::from_json(T::Decimal, &json!("-2.50")).unwrap(),
            ExtValue::Decimal(Decimal {
                units: -250,
                scale: 2
            })
        );
        assert!(ExtValue::from_json(T::Bool, &json!("true")).is_err());
        assert!(ExtValue::from_json(T::Date, &json!("2026-02-30")).is_err());
        let date = ExtValue::from_json(T::Date, &json!("2026-11-23")).unwrap();
        assert_eq!(date.to_json(), json!("2026-11-23"));
        assert_eq!(
            ExtValue::from_json(T::Json, &json!({"a": [1]}))
                .unwrap()
                .to_json(),
            json!({"a": [1]})
        );
    }

    #[test]
    fn stored_form_is_tagged_and_round_trips() {
        let values = [
            Protected::Plain(ExtValue::Decimal("1.25".parse().unwrap())),
            Protected::Plain(ExtValue::Date(time::macros::date!(2026 - 01 - 31))),
            Protected::Sealed {
                sealed: Sealed {
                    ciphertext: "AQID".into(),
                    blind_index: Some("ab".into()),
                },
            },
        ];
        let stored: Vec<String> = values
            .iter()
            .map(|v| serde_json::to_string(v).unwrap())
            .collect();
        assert_eq!(stored[0], r#"{"t":"decimal","v":"1.25"}"#);
        assert_eq!(stored[1], r#"{"t":"date","v":"2026-01-31"}"#);
        assert_eq!(stored[2], r#"{"sealed":{"c":"AQID","b":"ab"}}"#);
        for (text, value) in stored.iter().zip(&values) {
            let back: Protected<ExtValue> = serde_json::from_str(text).unwrap();
            assert_eq!(&back, value);
        }
    }

    #[test]
    fn kv_values_keep_their_stored_text_and_read_as_the_config_says() {
        let sealed = Sealed {
            ciphertext: "AQID".into(),
            blind_index: Some("ab".into()),
        };
        let stored = KvValue::from_sealed(&sealed);
        // the text rows written before KvValue existed hold
        assert_eq!(stored.stored(), r#"{"sealed":{"c":"AQID","b":"ab"}}"#);
        assert_eq!(stored.sealed().unwrap(), sealed);
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            serde_json::to_string(stored.stored()).unwrap(),
            "serialised as the bare text"
        );
        // a clear value that looks sealed is clear text all the same
        let look_alike = KvValue::clear(r#"{"sealed":{"c":"AQID"}}"#);
        assert_eq!(look_alike.clear_text(), r#"{"sealed":{"c":"AQID"}}"#);
        assert!(KvValue::clear("BOX-1").sealed().is_err());
    }

    #[test]
    fn widening_rules() {
        use ExtFieldType as T;
        assert!(T::Int.widens_to(T::Decimal));
        assert!(T::Enum.widens_to(T::String));
        assert!(T::Date.widens_to(T::Json));
        assert!(!T::String.widens_to(T::Int));
        assert!(!T::Decimal.widens_to(T::Int));
    }

    proptest! {
        #[test]
        fn decimal_text_round_trips(units in any::<i64>(), scale in 0u8..=MAX_DECIMAL_SCALE) {
            let decimal = Decimal { units, scale };
            let text = decimal.to_string();
            let back: Decimal = text.parse().unwrap();
            prop_assert_eq!(back.cmp_value(&decimal), std::cmp::Ordering::Equal);
        }

        #[test]
        fn canonical_text_round_trips(units in any::<i64>(), scale in 0u8..=MAX_DECIMAL_SCALE, int in any::<i64>(), text in "\\PC{0,20}", flag in any::<bool>()) {
            let values = [
                ExtValue::Decimal(Decimal { units, scale }),
                ExtValue::Int(int),
                ExtValue::String(text.clone()),
                ExtValue::Enum(text),
                ExtValue::Bool(flag),
                ExtValue::Date(time::macros::date!(2026 - 11 - 23)),
                ExtValue::Json(serde_json::json!({"a": [int, flag]})),
            ];
            for value in values {
                let back = ExtValue::from_canonical_text(value.field_type(), &value.canonical_text()).unwrap();
                prop_assert_eq!(back, value);
            }
        }

        #[test]
        fn decimal_parser_never_panics(text in "\\PC{0,30}") {
            let _ = text.parse::<Decimal>();
        }
    }
}
