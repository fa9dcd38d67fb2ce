//! The search read model's types: what the indexer writes ([`SearchDocument`]), what a list
//! asks ([`SearchQuery`]) and what it gets back ([`SearchPage`]). Adapter-neutral: the
//! Elasticsearch and tantivy adapters translate these, nothing else.
//!
//! **No plaintext personal data can reach an index through these types.** A document carries
//! ids, codes, amounts, product names and SKUs, extension values of fields configured as
//! searchable and *not* encrypted, and for encrypted searchable fields (ext fields and the
//! parties' name/phone/address) only their keyed blind index ([`BlindIndex`]). Equality search
//! on an encrypted field compares blind indexes; the API computes the query's blind index with
//! the tenant's key.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{DomainError, DomainResult};
use crate::ext::{Decimal, ExtFieldType, ExtValue, MAX_DECIMAL_SCALE};
use crate::ids::{BusinessIdentity, OrderId, OrderType, PartyId, StatusCode, TenantId};
use crate::money::{Currency, Money};
use crate::order::{PartyField, PartyRole};

/// Most hits one search page returns.
pub const MAX_SEARCH_LIMIT: u32 = 500;

/// The longest keyword, in UTF-8 bytes, a search index holds: Lucene's limit on one indexed
/// term (Elasticsearch and OpenSearch refuse the whole document beyond it; tantivy's limit
/// is higher). A searchable value longer than this is refused when an order is validated,
/// so no stored order can stall or fall out of the projection.
pub const MAX_KEYWORD_BYTES: usize = 32_766;
/// Most extension and blind-index filters in one query (keeps index queries bounded).
pub const MAX_FIELD_FILTERS: usize = 16;
/// Longest product-text query, in characters.
pub const MAX_TEXT_QUERY_CHARS: usize = 100;

/// The configured name of a searchable extension field, as it appears in the index
/// (`ext.<name>`): 1..=64 of `a-z 0-9 _`, starting with a letter. No dots, so a name never
/// turns into an object path in an Elasticsearch mapping.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SearchFieldName(String);

impl SearchFieldName {
    pub fn parse(value: impl Into<String>) -> DomainResult<Self> {
        let value = value.into();
        let starts_with_letter = value.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
        let allowed = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if starts_with_letter && allowed && value.len() <= 64 {
            Ok(SearchFieldName(value))
        } else {
            Err(DomainError::invalid(
                "",
                format!(
                    "search field name must be 1 to 64 of a-z, 0-9 or '_', starting with a \
                     letter, got {value:?}"
                ),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SearchFieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SearchFieldName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        SearchFieldName::parse(raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// How a searchable field is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchFieldKind {
    /// Exact string (strings and enums).
    Keyword,
    /// 64-bit integer; equality and ranges.
    Int,
    /// Exact decimal as a [`ScaledDecimal`]; equality and ranges.
    Decimal,
    Bool,
    /// Calendar date; equality and ranges.
    Date,
    /// An encrypted field: only its keyed blind index, equality only.
    BlindIndex,
}

impl SearchFieldKind {
    /// The index kind of a configured extension field. `None` for JSON fields, which are not
    /// searchable.
    pub fn of(field_type: ExtFieldType, encrypted: bool) -> Option<SearchFieldKind> {
        if encrypted {
            return Some(SearchFieldKind::BlindIndex);
        }
        match field_type {
            ExtFieldType::String | ExtFieldType::Enum => Some(SearchFieldKind::Keyword),
            ExtFieldType::Int => Some(SearchFieldKind::Int),
            ExtFieldType::Decimal => Some(SearchFieldKind::Decimal),
            ExtFieldType::Bool => Some(SearchFieldKind::Bool),
            ExtFieldType::Date => Some(SearchFieldKind::Date),
            ExtFieldType::Json => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SearchFieldKind::Keyword => "keyword",
            SearchFieldKind::Int => "int",
            SearchFieldKind::Decimal => "decimal",
            SearchFieldKind::Bool => "bool",
            SearchFieldKind::Date => "date",
            SearchFieldKind::BlindIndex => "blind_index",
        }
    }
}

impl fmt::Display for SearchFieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A searchable field of a tenant's config: its index name and kind. The Elasticsearch
/// mapping of a tenant is built from these.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SearchFieldSpec {
    pub name: SearchFieldName,
    pub kind: SearchFieldKind,
}

/// A keyed blind index (HMAC) of an encrypted value, as text. Never a plain hash and never
/// the value itself; an index can only test equality with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BlindIndex(String);

impl BlindIndex {
    /// 1..=128 characters of base64/base64url/hex text.
    pub fn parse(value: impl Into<String>) -> DomainResult<Self> {
        let value = value.into();
        let allowed = value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b));
        if !value.is_empty() && value.len() <= 128 && allowed {
            Ok(BlindIndex(value))
        } else {
            Err(DomainError::invalid(
                "",
                "blind index must be 1 to 128 characters of base64 or hex text",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for BlindIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        BlindIndex::parse(raw).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// An exact decimal as a count of 10⁻⁹ units (`units × 10^(9 - scale)`), so every decimal
/// field indexes as one 64-bit integer with a fixed scale and compares exactly, in both
/// adapters. Range: about ±9.2 × 10⁹.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScaledDecimal(i64);

impl ScaledDecimal {
    /// Decimal places of the scaled representation.
    pub const SCALE: u8 = MAX_DECIMAL_SCALE;

    /// Widen to 9 decimal places; an error when the value does not fit in 64 bits.
    pub fn from_decimal(decimal: Decimal) -> DomainResult<ScaledDecimal> {
        let widen_by = Self::SCALE.checked_sub(decimal.scale).ok_or_else(|| {
            DomainError::invalid("", format!("{decimal} has more than 9 decimal places"))
        })?;
        decimal
            .units
            .checked_mul(10i64.pow(u32::from(widen_by)))
            .map(ScaledDecimal)
            .ok_or_else(|| {
                DomainError::invalid("", format!("{decimal} is too large to index (±9.2e9)"))
            })
    }

    pub fn from_nanos(nanos: i64) -> ScaledDecimal {
        ScaledDecimal(nanos)
    }

    /// The value in 10⁻⁹ units.
    pub fn nanos(self) -> i64 {
        self.0
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal {
            units: self.0,
            scale: Self::SCALE,
        }
    }
}

/// Whether the index can hold `value` as a field of `kind`: a keyword of at most
/// [`MAX_KEYWORD_BYTES`], a decimal within the [`ScaledDecimal`] range. Other kinds hold any
/// valid value. The error is `InvalidInput` at the value itself (`""`).
pub fn check_indexable(kind: SearchFieldKind, value: &ExtValue) -> DomainResult<()> {
    match (kind, value) {
        (SearchFieldKind::Keyword, ExtValue::String(text) | ExtValue::Enum(text))
            if text.len() > MAX_KEYWORD_BYTES =>
        {
            Err(DomainError::invalid(
                "",
                format!(
                    "value is {} bytes long; a searchable text holds at most {MAX_KEYWORD_BYTES} bytes (UTF-8), the search index's term limit",
                    text.len()
                ),
            ))
        }
        (SearchFieldKind::Decimal, ExtValue::Decimal(decimal)) => ScaledDecimal::from_decimal(*decimal)
            .map(drop)
            .map_err(|_| {
                DomainError::invalid(
                    "",
                    format!(
                        "{decimal} is outside what the search index holds for a searchable decimal (±9,223,372,036.854775807)"
                    ),
                )
            }),
        _ => Ok(()),
    }
}

/// A typed value of a searchable extension field.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    Keyword(String),
    Int(i64),
    Decimal(ScaledDecimal),
    Bool(bool),
    Date(time::Date),
    BlindIndex(BlindIndex),
}

impl SearchValue {
    pub fn kind(&self) -> SearchFieldKind {
        match self {
            SearchValue::Keyword(_) => SearchFieldKind::Keyword,
            SearchValue::Int(_) => SearchFieldKind::Int,
            SearchValue::Decimal(_) => SearchFieldKind::Decimal,
            SearchValue::Bool(_) => SearchFieldKind::Bool,
            SearchValue::Date(_) => SearchFieldKind::Date,
            SearchValue::BlindIndex(_) => SearchFieldKind::BlindIndex,
        }
    }

    /// The index value of a plaintext extension value for a field of `kind`. Int widens to
    /// decimal; anything else that does not match is an error. Never for `BlindIndex`: an
    /// encrypted field's plaintext is refused (only its sealed blind index may be indexed).
    pub fn from_ext(kind: SearchFieldKind, value: &ExtValue) -> DomainResult<SearchValue> {
        let mismatch = || {
            DomainError::invalid(
                "",
                format!("a {} value cannot be indexed as {kind}", value.field_type()),
            )
        };
        match (kind, value) {
            (SearchFieldKind::BlindIndex, _) => Err(DomainError::internal(
                "plaintext value of an encrypted field offered to the search index",
            )),
            (SearchFieldKind::Keyword, ExtValue::String(s) | ExtValue::Enum(s)) => {
                Ok(SearchValue::Keyword(s.clone()))
            }
            (SearchFieldKind::Int, ExtValue::Int(i)) => Ok(SearchValue::Int(*i)),
            (SearchFieldKind::Decimal, ExtValue::Decimal(d)) => {
                ScaledDecimal::from_decimal(*d).map(SearchValue::Decimal)
            }
            (SearchFieldKind::Decimal, ExtValue::Int(i)) => ScaledDecimal::from_decimal(Decimal {
                units: *i,
                scale: 0,
            })
            .map(SearchValue::Decimal),
            (SearchFieldKind::Bool, ExtValue::Bool(b)) => Ok(SearchValue::Bool(*b)),
            (SearchFieldKind::Date, ExtValue::Date(d)) => Ok(SearchValue::Date(*d)),
            _ => Err(mismatch()),
        }
    }

    /// The index value of a KV identifier's text for a field of `kind` (identifiers are
    /// stored as text; the configured kind says how to read them).
    pub fn from_text(kind: SearchFieldKind, text: &str) -> DomainResult<SearchValue> {
        let bad = || DomainError::invalid("", format!("{text:?} is not a valid {kind} value"));
        match kind {
            SearchFieldKind::BlindIndex => Err(DomainError::internal(
                "plaintext value of an encrypted field offered to the search index",
            )),
            SearchFieldKind::Keyword => Ok(SearchValue::Keyword(text.to_owned())),
            SearchFieldKind::Int => text.parse().map(SearchValue::Int).map_err(|_| bad()),
            SearchFieldKind::Decimal => {
                ScaledDecimal::from_decimal(text.parse()?).map(SearchValue::Decimal)
            }
            SearchFieldKind::Bool => match text {
                "true" => Ok(SearchValue::Bool(true)),
                "false" => Ok(SearchValue::Bool(false)),
                _ => Err(bad()),
            },
            SearchFieldKind::Date => time::Date::parse(
                text,
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .map(SearchValue::Date)
            .map_err(|_| bad()),
        }
    }
}

/// A party's personal-data field that may be searched by equality through its blind index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiField {
    ShipperName,
    ShipperPhone,
    ShipperAddress,
    ReceiverName,
    ReceiverPhone,
    ReceiverAddress,
}

impl PiiField {
    pub const ALL: [PiiField; 6] = [
        PiiField::ShipperName,
        PiiField::ShipperPhone,
        PiiField::ShipperAddress,
        PiiField::ReceiverName,
        PiiField::ReceiverPhone,
        PiiField::ReceiverAddress,
    ];

    /// The index field name (`receiver_phone`).
    pub fn as_str(self) -> &'static str {
        match self {
            PiiField::ShipperName => "shipper_name",
            PiiField::ShipperPhone => "shipper_phone",
            PiiField::ShipperAddress => "shipper_address",
            PiiField::ReceiverName => "receiver_name",
            PiiField::ReceiverPhone => "receiver_phone",
            PiiField::ReceiverAddress => "receiver_address",
        }
    }

    /// The party and field it indexes (its [`SealedSite::Party`](crate::sealing::SealedSite)).
    pub fn party_site(self) -> (PartyRole, PartyField) {
        use PartyField as F;
        use PartyRole as R;
        match self {
            PiiField::ShipperName => (R::Shipper, F::Name),
            PiiField::ShipperPhone => (R::Shipper, F::Phone),
            PiiField::ShipperAddress => (R::Shipper, F::Address),
            PiiField::ReceiverName => (R::Receiver, F::Name),
            PiiField::ReceiverPhone => (R::Receiver, F::Phone),
            PiiField::ReceiverAddress => (R::Receiver, F::Address),
        }
    }
}

impl fmt::Display for PiiField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the indexer writes for one order: its latest state, flattened for lists. Built by
/// the caller from an [`crate::Order`] and the tenant's field config (see `oc-search`'s
/// `document_from_order`).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchDocument {
    pub tenant: TenantId,
    pub order_id: OrderId,
    /// The order's version: an index keeps the highest version it was given.
    pub version: u64,
    pub status: StatusCode,
    pub business_identity: BusinessIdentity,
    pub order_type: OrderType,
    pub buyer_id: PartyId,
    pub merchant_id: Option<PartyId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub payable: Money,
    /// Product names of the lines (full-text searchable).
    pub product_names: Vec<String>,
    /// SKUs of the lines (exact).
    pub skus: Vec<String>,
    /// Searchable extension fields by configured name; several values when the field lives
    /// on lines or repeats.
    pub ext: BTreeMap<SearchFieldName, Vec<SearchValue>>,
    /// Blind indexes of the parties' sealed personal data.
    pub pii_blind: BTreeMap<PiiField, BlindIndex>,
    /// The order was archived (moved to the cold store): set only by the projector when it
    /// indexes the cold copy of an order gone from its shard, never by the hot write path.
    /// Searches leave archived orders out unless [`SearchQuery::include_archived`] asks.
    pub archived: bool,
}

/// An amount range on the payable, in one currency's minor units; both bounds inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountRange {
    pub currency: Currency,
    pub min_minor: Option<i64>,
    pub max_minor: Option<i64>,
}

/// A time range: `from` inclusive, `to` exclusive. Indexes keep millisecond precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
}

/// A typed range over an extension field; both bounds inclusive, at least one present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtRange {
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Decimal {
        min: Option<ScaledDecimal>,
        max: Option<ScaledDecimal>,
    },
    Date {
        min: Option<time::Date>,
        max: Option<time::Date>,
    },
}

impl ExtRange {
    pub fn kind(&self) -> SearchFieldKind {
        match self {
            ExtRange::Int { .. } => SearchFieldKind::Int,
            ExtRange::Decimal { .. } => SearchFieldKind::Decimal,
            ExtRange::Date { .. } => SearchFieldKind::Date,
        }
    }

    fn is_unbounded(&self) -> bool {
        match self {
            ExtRange::Int { min, max } => min.is_none() && max.is_none(),
            ExtRange::Decimal { min, max } => min.is_none() && max.is_none(),
            ExtRange::Date { min, max } => min.is_none() && max.is_none(),
        }
    }
}

/// A condition on one extension field.
#[derive(Debug, Clone, PartialEq)]
pub enum ExtCondition {
    /// Equal to a value (for a blind-index field: the query value's blind index).
    Equals(SearchValue),
    Range(ExtRange),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExtFilter {
    pub name: SearchFieldName,
    pub condition: ExtCondition,
}

/// What a list can be sorted by. Ties are broken by order id, in the same direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    #[default]
    CreatedAt,
    UpdatedAt,
    /// Payable in minor units (meaningful inside one currency: filter by it).
    Payable,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortDirection {
    Asc,
    #[default]
    Desc,
}

/// Default: newest first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SearchSort {
    pub field: SortField,
    pub direction: SortDirection,
}

/// A list / search request. Every filter present must hold (AND); `statuses` matches any of
/// its codes. There is no tenant here on purpose: the tenant is a separate argument of
/// [`crate::ports::SearchIndex::search`], taken from the authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub statuses: Vec<StatusCode>,
    pub business_identity: Option<BusinessIdentity>,
    pub order_type: Option<OrderType>,
    pub buyer_id: Option<PartyId>,
    pub merchant_id: Option<PartyId>,
    pub created_at: TimeRange,
    pub payable: Option<AmountRange>,
    /// Orders with a line of this SKU.
    pub sku: Option<String>,
    pub ext: Vec<ExtFilter>,
    /// Equality on the parties' encrypted fields, by blind index.
    pub pii: Vec<(PiiField, BlindIndex)>,
    /// Words that must all appear in the orders' product names.
    pub product_text: Option<String>,
    /// Also list archived orders (by default a search lists hot orders only). A document
    /// written before the index knew the flag counts as hot.
    pub include_archived: bool,
    pub sort: SearchSort,
    /// The opaque cursor of the previous page.
    pub cursor: Option<String>,
    /// 1..=[`MAX_SEARCH_LIMIT`].
    pub limit: u32,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            statuses: Vec::new(),
            business_identity: None,
            order_type: None,
            buyer_id: None,
            merchant_id: None,
            created_at: TimeRange::default(),
            payable: None,
            sku: None,
            ext: Vec::new(),
            pii: Vec::new(),
            product_text: None,
            include_archived: false,
            sort: SearchSort::default(),
            cursor: None,
            limit: 20,
        }
    }
}

impl SearchQuery {
    /// Check limits and shapes that every adapter relies on. Field paths name the part of
    /// the query at fault.
    pub fn validate(&self) -> DomainResult<()> {
        if self.limit == 0 || self.limit > MAX_SEARCH_LIMIT {
            return Err(DomainError::invalid(
                "/limit",
                format!("limit must be 1..={MAX_SEARCH_LIMIT}"),
            ));
        }
        if self.ext.len() + self.pii.len() > MAX_FIELD_FILTERS {
            return Err(DomainError::invalid(
                "/ext",
                format!("at most {MAX_FIELD_FILTERS} field filters"),
            ));
        }
        if let (Some(from), Some(to)) = (self.created_at.from, self.created_at.to)
            && from > to
        {
            return Err(DomainError::invalid(
                "/created_at",
                "time range starts after it ends",
            ));
        }
        if let Some(range) = &self.payable
            && let (Some(min), Some(max)) = (range.min_minor, range.max_minor)
            && min > max
        {
            return Err(DomainError::invalid(
                "/payable",
                "amount range minimum above maximum",
            ));
        }
        if let Some(text) = &self.product_text
            && text.chars().count() > MAX_TEXT_QUERY_CHARS
        {
            return Err(DomainError::invalid(
                "/product_text",
                format!("text query longer than {MAX_TEXT_QUERY_CHARS} characters"),
            ));
        }
        for (index, filter) in self.ext.iter().enumerate() {
            if let ExtCondition::Range(range) = &filter.condition
                && range.is_unbounded()
            {
                return Err(DomainError::invalid(
                    format!("/ext/{index}"),
                    format!("range on {} has no bound", filter.name),
                ));
            }
        }
        Ok(())
    }
}

/// One matching order: its id and the version the index holds (a caller can compare it with
/// the store's to spot index lag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SearchHit {
    pub order_id: OrderId,
    pub version: u64,
}

/// How many orders match the whole query (not just this page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalHits {
    pub value: u64,
    /// False when the engine stopped counting early and `value` is a lower bound.
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPage {
    pub hits: Vec<SearchHit>,
    /// Present when there may be more.
    pub next_cursor: Option<String>,
    pub total: Option<TotalHits>,
}

impl SearchPage {
    pub fn order_ids(&self) -> Vec<OrderId> {
        self.hits.iter().map(|hit| hit.order_id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_scale_to_nine_places_exactly() {
        let scaled = |text: &str| ScaledDecimal::from_decimal(text.parse().unwrap());
        assert_eq!(scaled("1.5").unwrap().nanos(), 1_500_000_000);
        assert_eq!(scaled("-18.5").unwrap().nanos(), -18_500_000_000);
        assert_eq!(scaled("0.000000001").unwrap().nanos(), 1);
        assert_eq!(scaled("1.50").unwrap(), scaled("1.5").unwrap());
        assert!(scaled("9300000000").is_err(), "beyond ±9.2e9 is refused");
        assert_eq!(
            scaled("2.25")
                .unwrap()
                .to_decimal()
                .cmp_value(&"2.25".parse().unwrap()),
            std::cmp::Ordering::Equal
        );
    }

    #[test]
    fn encrypted_plaintext_never_becomes_a_search_value() {
        let plain = ExtValue::String("13800000000".into());
        let refused = SearchValue::from_ext(SearchFieldKind::BlindIndex, &plain).unwrap_err();
        assert_eq!(refused.code, crate::ErrorCode::Internal);
        assert!(SearchValue::from_text(SearchFieldKind::BlindIndex, "x").is_err());
    }

    #[test]
    fn values_are_typed() {
        use SearchFieldKind as K;
        assert_eq!(
            SearchValue::from_ext(K::Decimal, &ExtValue::Int(3)).unwrap(),
            SearchValue::Decimal(ScaledDecimal::from_nanos(3_000_000_000))
        );
        assert!(SearchValue::from_ext(K::Int, &ExtValue::String("3".into())).is_err());
        assert_eq!(
            SearchValue::from_text(K::Bool, "true").unwrap(),
            SearchValue::Bool(true)
        );
        assert!(SearchValue::from_text(K::Bool, "yes").is_err());
        assert_eq!(
            SearchValue::from_text(K::Date, "2026-12-01").unwrap(),
            SearchValue::Date(time::macros::date!(2026 - 12 - 01))
        );
        assert_eq!(SearchFieldKind::of(ExtFieldType::Json, false), None);
        assert_eq!(
            SearchFieldKind::of(ExtFieldType::Int, true),
            Some(K::BlindIndex)
        );
    }

    #[test]
    fn names_cannot_become_object_paths() {
        assert!(SearchFieldName::parse("temperature_max").is_ok());
        for bad in ["", "a.b", "Temp", "1x", "a-b", &"x".repeat(65)] {
            assert!(SearchFieldName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_limits() {
        let ok = SearchQuery::default();
        assert!(ok.validate().is_ok());
        let zero = SearchQuery {
            limit: 0,
            ..SearchQuery::default()
        };
        assert_eq!(
            zero.validate().unwrap_err().field.as_deref(),
            Some("/limit")
        );
        let open_range = SearchQuery {
            ext: vec![ExtFilter {
                name: SearchFieldName::parse("w").unwrap(),
                condition: ExtCondition::Range(ExtRange::Int {
                    min: None,
                    max: None,
                }),
            }],
            ..SearchQuery::default()
        };
        assert_eq!(
            open_range.validate().unwrap_err().field.as_deref(),
            Some("/ext/0")
        );
    }
}
