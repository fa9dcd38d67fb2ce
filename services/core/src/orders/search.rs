//! Search (`orders.search`): filters, sort and cursor pagination over the search index, with
//! orders rendered from the cache / shard (the index holds only what it filters on; the seed
//! rule: lists from the index, details from the system of record).
//!
//! Query parameters: `status` (comma list), `business_identity`, `order_type`, `buyer_id`,
//! `merchant_id`, `sku`, `q` (text in product names), `created_from` / `created_to`
//! (RFC 3339, `[from, to)`), `payable_min` / `payable_max` (minor units of the tenant
//! currency), `sort` (`created_at`, `updated_at`, `payable`; `-` prefix for descending;
//! default `-created_at`), `cursor`, `limit` (1–100), `receiver_phone`, `receiver_name`,
//! `shipper_phone`, `shipper_name` (equality through the blind index), `include_archived`
//! (`true` also lists archived orders, which a search leaves out by default; each item says
//! `archived`), and for searchable
//! extension fields by configured name: `ext.<name>` (equality) and `ext.<name>.min` /
//! `ext.<name>.max` (ranges on int, decimal and date fields). Unknown parameters are refused.
//!
//! A filter on personal data (the party parameters, an encrypted extension field) confirms a
//! guessed value, and `total` counts the matches: only a role that sees PII in full, or one
//! the tenant config grants `pii_filters`, may use one; any other answers 403 at the
//! parameter before the index is asked.
//!
//! When no index is configured or it is down, a search with `buyer_id` is served from the
//! buyer's shard, newest first, filtering status, business identity, order type and creation
//! time; the answer says `"degraded": true`. Any other search answers 503.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use oc_model::ports::PageRequest;
use oc_model::sealing::{SealedSite, slot_field};
use oc_model::search::{
    AmountRange, BlindIndex, ExtCondition, ExtFilter, ExtRange, PiiField, ScaledDecimal,
    SearchFieldKind, SearchQuery, SearchSort, SearchValue, SortDirection, SortField, TimeRange,
};
use oc_model::{
    BusinessIdentity, DomainError, DomainResult, ErrorCode, ExtValue, Order, OrderType, PartyId,
    StatusCode,
};
use oc_tenant_config::{ResolvedField, TenantConfig};

use crate::caller::Caller;
use crate::orders::output::{SearchItem, SearchResult};
use crate::orders::read::{Found, cursor_error};
use crate::orders::service::OrderService;
use crate::orders::view::Renderer;
use crate::sealing::{EXT_NORMALIZER, party_normalizer};

const PLAIN_PARAMETERS: &[&str] = &[
    "status",
    "business_identity",
    "order_type",
    "buyer_id",
    "merchant_id",
    "sku",
    "q",
    "created_from",
    "created_to",
    "payable_min",
    "payable_max",
    "sort",
    "cursor",
    "limit",
    "include_archived",
];

const PII_PARAMETERS: &[(&str, PiiField)] = &[
    ("receiver_phone", PiiField::ReceiverPhone),
    ("receiver_name", PiiField::ReceiverName),
    ("shipper_phone", PiiField::ShipperPhone),
    ("shipper_name", PiiField::ShipperName),
];

/// The longest value each free-text parameter accepts (the OpenAPI document's `maxLength`).
const MAX_LENGTHS: &[(&str, usize)] = &[
    ("status", 512),
    ("sku", 128),
    ("q", 100),
    ("cursor", 512),
    ("receiver_phone", 40),
    ("receiver_name", 128),
    ("shipper_phone", 40),
    ("shipper_name", 128),
];

/// A query parameter's field path (`/query/<name>`): lists and searches name bad input this way.
pub(crate) fn query_path(name: &str) -> String {
    format!("/query/{name}")
}

pub(crate) fn parse_time(name: &str, text: &str) -> DomainResult<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        DomainError::invalid(
            query_path(name),
            "expected an RFC 3339 time, e.g. 2026-11-23T00:00:00Z",
        )
    })
}

pub(crate) fn parse_int(name: &str, text: &str) -> DomainResult<i64> {
    text.parse()
        .map_err(|_| DomainError::invalid(query_path(name), "expected a whole number"))
}

/// The searchable field `name` as the query means it: one spec, one slot (for encrypted
/// fields the blind index depends on the slot).
fn resolve_field<'a>(
    tenant: &'a TenantConfig,
    identity: Option<&BusinessIdentity>,
    order_type: Option<&OrderType>,
    name: &str,
    path: &str,
) -> DomainResult<&'a ResolvedField> {
    let candidates: Vec<&ResolvedField> = tenant
        .order_types()
        .filter(|t| {
            identity.is_none_or(|i| t.identity() == i)
                && order_type.is_none_or(|o| t.order_type() == o)
        })
        .filter_map(|t| t.field(name))
        .filter(|f| f.search_spec().is_some())
        .collect();
    let Some(first) = candidates.first() else {
        return Err(DomainError::invalid(
            path,
            format!("{name:?} is not a searchable extension field"),
        ));
    };
    let same = candidates
        .iter()
        .all(|f| f.search_spec() == first.search_spec() && (!f.encrypted || f.slot == first.slot));
    if !same {
        return Err(DomainError::invalid(
            path,
            format!(
                "{name:?} means different things in different order types: add business_identity and order_type"
            ),
        ));
    }
    Ok(first)
}

/// Whether a read model's failure means it is unavailable (down, throttled, its breaker
/// open): a list then answers from the shards, flagged degraded. Any other failure is an
/// answer (a bad query, a bug) and is passed on.
pub(crate) fn index_unavailable(error: &DomainError) -> bool {
    matches!(error.code, ErrorCode::Unavailable | ErrorCode::Retryable)
}

impl OrderService {
    fn build_search_query(
        &self,
        caller: &Caller,
        params: &BTreeMap<String, String>,
    ) -> DomainResult<SearchQuery> {
        let tenant = caller.tenant_config();
        let mut query = SearchQuery::default();
        let get = |name: &str| params.get(name).map(String::as_str);
        for (name, max) in MAX_LENGTHS {
            if let Some(value) = get(name)
                && value.chars().count() > *max
            {
                return Err(DomainError::invalid(
                    query_path(name),
                    format!("at most {max} characters"),
                ));
            }
        }
        // values no order of this tenant can have are refused at their parameter: a typo
        // (`status=pendng`) must not look like "no such orders"
        query.business_identity = get("business_identity")
            .map(|v| {
                let path = query_path("business_identity");
                let identity = BusinessIdentity::parse(v).map_err(|e| e.under(&path))?;
                match tenant.business_identity(&identity) {
                    Some(_) => Ok(identity),
                    None => Err(DomainError::invalid(
                        &path,
                        format!("business identity {identity} is not configured for this tenant"),
                    )),
                }
            })
            .transpose()?;
        query.order_type = get("order_type")
            .map(|v| {
                let path = query_path("order_type");
                let order_type = OrderType::parse(v).map_err(|e| e.under(&path))?;
                let configured = tenant.order_types().any(|t| {
                    t.order_type() == &order_type
                        && query
                            .business_identity
                            .as_ref()
                            .is_none_or(|i| t.identity() == i)
                });
                if configured {
                    Ok(order_type)
                } else {
                    Err(DomainError::invalid(
                        &path,
                        format!(
                            "order type {order_type} is not configured for this tenant{}",
                            query
                                .business_identity
                                .as_ref()
                                .map(|i| format!(" under business identity {i}"))
                                .unwrap_or_default()
                        ),
                    ))
                }
            })
            .transpose()?;
        if let Some(statuses) = get("status") {
            let path = query_path("status");
            query.statuses = statuses
                .split(',')
                .map(|s| {
                    let status = StatusCode::parse(s.trim()).map_err(|e| e.under(&path))?;
                    let known = tenant
                        .business_identities()
                        .iter()
                        .filter(|(identity, _)| {
                            query
                                .business_identity
                                .as_ref()
                                .is_none_or(|i| i == *identity)
                        })
                        .any(|(_, config)| config.state_machine().contains(&status));
                    if known {
                        Ok(status)
                    } else {
                        Err(DomainError::invalid(
                            &path,
                            format!("{status} is not a state of this tenant's state machines"),
                        ))
                    }
                })
                .collect::<DomainResult<_>>()?;
        }
        query.buyer_id = get("buyer_id")
            .map(|v| PartyId::parse(v).map_err(|e| e.under(&query_path("buyer_id"))))
            .transpose()?;
        let merchant_id = get("merchant_id")
            .map(|v| PartyId::parse(v).map_err(|e| e.under(&query_path("merchant_id"))))
            .transpose()?;
        // a merchant-scoped key searches its own merchant's orders only
        query.merchant_id = caller.merchant_for_read(merchant_id, &query_path("merchant_id"))?;
        query.sku = get("sku").map(str::to_owned);
        query.product_text = get("q").map(str::to_owned);
        query.created_at = TimeRange {
            from: get("created_from")
                .map(|v| parse_time("created_from", v))
                .transpose()?,
            to: get("created_to")
                .map(|v| parse_time("created_to", v))
                .transpose()?,
        };
        let (min, max) = (get("payable_min"), get("payable_max"));
        if min.is_some() || max.is_some() {
            query.payable = Some(AmountRange {
                currency: tenant.currency(),
                min_minor: min.map(|v| parse_int("payable_min", v)).transpose()?,
                max_minor: max.map(|v| parse_int("payable_max", v)).transpose()?,
            });
        }
        if let Some(sort) = get("sort") {
            let (direction, field) = match sort.strip_prefix('-') {
                Some(field) => (SortDirection::Desc, field),
                None => (SortDirection::Asc, sort),
            };
            let field = match field {
                "created_at" => SortField::CreatedAt,
                "updated_at" => SortField::UpdatedAt,
                "payable" => SortField::Payable,
                _ => {
                    return Err(DomainError::invalid(
                        query_path("sort"),
                        "sort by created_at, updated_at or payable (prefix - for descending)",
                    ));
                }
            };
            query.sort = SearchSort { field, direction };
        }
        query.include_archived = match get("include_archived") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(DomainError::invalid(
                    query_path("include_archived"),
                    "expected true or false",
                ));
            }
        };
        query.cursor = get("cursor").map(str::to_owned);
        query.limit = match get("limit") {
            Some(text) => u32::try_from(parse_int("limit", text)?).unwrap_or(0),
            None => 20,
        };
        if !(1..=100).contains(&query.limit) {
            return Err(DomainError::invalid(
                query_path("limit"),
                "limit must be 1 to 100",
            ));
        }
        for (name, field) in PII_PARAMETERS {
            if let Some(value) = get(name) {
                caller.require_pii_filters(&query_path(name))?;
                let (role, part) = field.party_site();
                let normalizer = party_normalizer(part)
                    .ok_or_else(|| DomainError::internal("party field without blind index"))?;
                let site = SealedSite::Party { role, field: part };
                let blind = BlindIndex::parse(self.sealer.blind_index(
                    &caller.tenant,
                    &site.field(),
                    &normalizer,
                    value,
                ))?;
                query.pii.push((*field, blind));
            }
        }
        // extension filters: ext.<name>, ext.<name>.min, ext.<name>.max
        let mut ranges: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
        for (key, value) in params {
            if PLAIN_PARAMETERS.contains(&key.as_str())
                || PII_PARAMETERS.iter().any(|(p, _)| p == key)
            {
                continue;
            }
            let Some(rest) = key.strip_prefix("ext.") else {
                return Err(DomainError::invalid(
                    query_path(key),
                    "unknown search parameter",
                ));
            };
            if let Some(name) = rest.strip_suffix(".min") {
                ranges.entry(name).or_default().0 = Some(value);
            } else if let Some(name) = rest.strip_suffix(".max") {
                ranges.entry(name).or_default().1 = Some(value);
            } else {
                let path = query_path(key);
                let field = resolve_field(
                    tenant,
                    query.business_identity.as_ref(),
                    query.order_type.as_ref(),
                    rest,
                    &path,
                )?;
                let spec = field
                    .search_spec()
                    .ok_or_else(|| DomainError::invalid(&path, "not searchable"))?;
                if spec.kind == SearchFieldKind::BlindIndex {
                    caller.require_pii_filters(&path)?;
                }
                let typed = ExtValue::from_canonical_text(field.field_type, value)
                    .map_err(|e| DomainError::invalid(&path, e.message))?;
                if let ExtValue::Enum(chosen) = &typed
                    && !field.enum_values.iter().any(|allowed| allowed == chosen)
                {
                    return Err(DomainError::invalid(
                        &path,
                        format!(
                            "{chosen:?} is not one of the allowed values [{}]",
                            field.enum_values.join(", ")
                        ),
                    ));
                }
                let search_value = if spec.kind == SearchFieldKind::BlindIndex {
                    // the blind index every value sealed in this slot carries
                    SearchValue::BlindIndex(BlindIndex::parse(self.sealer.blind_index(
                        &caller.tenant,
                        &slot_field(&field.slot),
                        &EXT_NORMALIZER,
                        &typed.canonical_text(),
                    ))?)
                } else {
                    SearchValue::from_ext(spec.kind, &typed)
                        .map_err(|e| DomainError::invalid(&path, e.message))?
                };
                query.ext.push(ExtFilter {
                    name: spec.name,
                    condition: ExtCondition::Equals(search_value),
                });
            }
        }
        for (name, (min, max)) in ranges {
            let path = query_path(&format!("ext.{name}"));
            let field = resolve_field(
                tenant,
                query.business_identity.as_ref(),
                query.order_type.as_ref(),
                name,
                &path,
            )?;
            let spec = field
                .search_spec()
                .ok_or_else(|| DomainError::invalid(&path, "not searchable"))?;
            let bound = |text: Option<&str>| -> DomainResult<Option<SearchValue>> {
                text.map(|t| {
                    let typed = ExtValue::from_canonical_text(field.field_type, t)
                        .map_err(|e| DomainError::invalid(&path, e.message))?;
                    SearchValue::from_ext(spec.kind, &typed)
                        .map_err(|e| DomainError::invalid(&path, e.message))
                })
                .transpose()
            };
            let (low, high) = (bound(min)?, bound(max)?);
            let range = match spec.kind {
                SearchFieldKind::Int => ExtRange::Int {
                    min: low.map(|v| if let SearchValue::Int(i) = v { i } else { 0 }),
                    max: high.map(|v| if let SearchValue::Int(i) = v { i } else { 0 }),
                },
                SearchFieldKind::Decimal => {
                    let scaled = |v: SearchValue| {
                        if let SearchValue::Decimal(d) = v {
                            d
                        } else {
                            ScaledDecimal::from_nanos(0)
                        }
                    };
                    ExtRange::Decimal {
                        min: low.map(scaled),
                        max: high.map(scaled),
                    }
                }
                SearchFieldKind::Date => {
                    let date = |v: SearchValue| {
                        if let SearchValue::Date(d) = v {
                            Some(d)
                        } else {
                            None
                        }
                    };
                    ExtRange::Date {
                        min: low.and_then(date),
                        max: high.and_then(date),
                    }
                }
                _ => {
                    return Err(DomainError::invalid(
                        &path,
                        format!(
                            "{name:?} has no order: ranges are for int, decimal and date fields"
                        ),
                    ));
                }
            };
            query.ext.push(ExtFilter {
                name: spec.name,
                condition: ExtCondition::Range(range),
            });
        }
        query.validate().map_err(|e| {
            DomainError::invalid(format!("/query{}", e.field.unwrap_or_default()), e.message)
        })?;
        Ok(query)
    }

    /// Search the caller's orders.
    pub async fn search(
        &self,
        caller: &Caller,
        params: &BTreeMap<String, String>,
    ) -> DomainResult<SearchResult> {
        let query = self.build_search_query(caller, params)?;
        let outcome = match &self.read.search {
            Some(index) => index.search(&caller.tenant, &query).await,
            None => Err(DomainError::unavailable("no search index is configured")),
        };
        let page = match outcome {
            Ok(page) => page,
            Err(error) if index_unavailable(&error) => {
                tracing::warn!(error = %error.message, "search index unavailable; trying the shard fallback");
                return self.search_on_the_shard(caller, &query).await;
            }
            Err(error) => return Err(error),
        };
        let renderer = Renderer {
            sealer: &self.sealer,
            caller,
        };
        let mut items = Vec::with_capacity(page.hits.len());
        for hit in &page.hits {
            match self.load_located(caller, hit.order_id).await {
                Ok((order, found)) => items.push(SearchItem {
                    order: renderer.view(&order)?,
                    archived: found == Found::Archived,
                }),
                // the index can trail a deletion or archiving: skip what is gone
                Err(error) if error.code == ErrorCode::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(SearchResult {
            items,
            next_cursor: page.next_cursor,
            total: page.total,
            degraded: false,
        })
    }

    /// Degraded mode: the buyer's shard, newest first, with the filters a shard row can
    /// answer.
    async fn search_on_the_shard(
        &self,
        caller: &Caller,
        query: &SearchQuery,
    ) -> DomainResult<SearchResult> {
        let Some(buyer) = &query.buyer_id else {
            return Err(DomainError::unavailable(
                "the search index is unavailable; only buyer-scoped searches (buyer_id) are served meanwhile",
            ));
        };
        let needs_index = query.merchant_id.is_some()
            || query.sku.is_some()
            || query.product_text.is_some()
            || query.payable.is_some()
            || !query.ext.is_empty()
            || !query.pii.is_empty();
        if needs_index {
            return Err(DomainError::unavailable(
                "the search index is unavailable; meanwhile a buyer's orders can be filtered only by status, business_identity, order_type and creation time",
            ));
        }
        let page = self
            .store
            .list_by_buyer(
                &caller.tenant,
                buyer,
                PageRequest {
                    cursor: query.cursor.clone(),
                    limit: query.limit,
                },
            )
            .await
            .map_err(cursor_error)?;
        let keep = |order: &Order| {
            (query.statuses.is_empty() || query.statuses.contains(&order.main.status))
                && query
                    .business_identity
                    .as_ref()
                    .is_none_or(|i| *i == order.main.business_identity)
                && query
                    .order_type
                    .as_ref()
                    .is_none_or(|t| *t == order.main.order_type)
                && query
                    .created_at
                    .from
                    .is_none_or(|from| order.main.created_at >= from)
                && query
                    .created_at
                    .to
                    .is_none_or(|to| order.main.created_at < to)
        };
        let renderer = Renderer {
            sealer: &self.sealer,
            caller,
        };
        // the shard holds hot orders only: archived ones are not listed here, asked or not
        let items = page
            .items
            .iter()
            .filter(|o| keep(o))
            .map(|o| {
                renderer.view(o).map(|order| SearchItem {
                    order,
                    archived: false,
                })
            })
            .collect::<DomainResult<_>>()?;
        Ok(SearchResult {
            items,
            next_cursor: page.next_cursor,
            total: None,
            degraded: true,
        })
    }
}
