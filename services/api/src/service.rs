//! The order application service: validates requests against the tenant's config, prices,
//! seals personal data, and drives the store. Handlers stay thin; this is where the rules are.

use std::collections::BTreeMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use oc_crypto::{mask_address, mask_middle, mask_name, mask_phone};
use oc_model::order::{
    Channel, Coupon, ExtColumns, Extension, Finance, LogisticsService, Marketing, Operation,
    OrderLine, OrderMain, Parties, Party, Promotion,
};
use oc_model::ports::{
    Cache, Clock, ColdStore, IdempotencyRecord, InsertOutcome, NewOrder, OrderStore, PageRequest,
};
use oc_model::pricing::{self, DiscountInput, LineInput as PricedLine};
use oc_model::{
    Bucket, BusinessIdentity, Currency, DomainError, DomainResult, ErrorCode, ExtTable, ExtValue,
    KvIdentifier, Money, Order, OrderEvent, OrderEventKind, OrderId, OrderIdGenerator, OrderType,
    PartyId, Protected, Slot, TenantId, TransitionEvent,
};
use oc_tenant_config::{ConfigHandle, OrderTypeConfig, ResolvedField, TenantConfig};

use crate::access::Caller;
use crate::dto::{
    CancelRequest, CreateOrderRequest, ExtensionInput, LineView, LogisticsInput, OrderList,
    OrderView, PartiesView, PartyInput, PartyView, UpdateOrderRequest,
};
use crate::pii::{Location, PiiView, Sealer, party_normalizer, render};

/// Longest accepted free text (remarks, reasons, product names).
const MAX_TEXT: usize = 512;
/// Lines per order.
const MAX_LINES: usize = 500;
/// How often a transient store conflict is retried inside one request.
const RETRIES: usize = 5;

/// The read side the API consults before and after the shards.
#[derive(Debug, Clone, Default)]
pub struct ReadModels {
    /// Hot cache (moka, with Redis behind it in cluster mode): consulted first on GET,
    /// filled on a miss, and written through (set-if-newer) after every change.
    pub cache: Option<Arc<dyn Cache>>,
    /// Cold store: where archived orders are read when the shard no longer has them.
    pub cold: Option<Arc<dyn ColdStore>>,
    /// Search index: lists and search. When it is missing or down, buyer-scoped searches
    /// fall back to the buyer's shard and say so (`degraded`).
    pub search: Option<Arc<dyn oc_model::ports::SearchIndex>>,
}

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct OrderService {
    pub store: Arc<dyn OrderStore>,
    pub read: ReadModels,
    pub config: Arc<ConfigHandle>,
    pub sealer: Sealer,
    pub ids: Arc<OrderIdGenerator>,
    pub clock: Arc<dyn Clock>,
}

/// The result of a create: the order and whether it was an idempotent replay.
#[derive(Debug)]
pub struct Created {
    pub view: OrderView,
    pub replayed: bool,
}

fn text_field(path: &str, value: &str, max: usize) -> DomainResult<()> {
    if value.trim().is_empty() {
        return Err(DomainError::invalid(path, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            path,
            format!("longer than {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(DomainError::invalid(
            path,
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn optional_text(path: &str, value: &Option<String>, max: usize) -> DomainResult<()> {
    value
        .as_deref()
        .map_or(Ok(()), |v| text_field(path, v, max))
}

/// Time with millisecond precision: what every store keeps.
fn now_ms(clock: &dyn Clock) -> OffsetDateTime {
    let now = clock.now();
    let nanos = now.unix_timestamp_nanos();
    OffsetDateTime::from_unix_timestamp_nanos(nanos - nanos.rem_euclid(1_000_000)).unwrap_or(now)
}

/// Hex SHA-256 of the canonical JSON of a request (object keys sorted).
pub fn request_hash(raw: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(raw).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn order_location<'a>(tenant: &'a TenantId, record_id: &'a str, field: &'a str) -> Location<'a> {
    Location {
        tenant,
        table: "orders",
        record_id,
        field,
    }
}

/// The field name used in associated data for a slot: its storage location, which a safe
/// config change never re-maps.
pub(crate) fn slot_field(slot: &Slot) -> String {
    match slot {
        Slot::Column { table, column } => format!("{}.{}", table.as_str(), column),
        Slot::Kv { domain, key } => format!("kv.{domain}.{key}"),
    }
}

pub(crate) fn line_record(order_id: OrderId, line_no: u32) -> String {
    format!("{order_id}/{line_no}")
}

impl OrderService {
    pub(crate) fn tenant_config(&self, caller: &Caller) -> DomainResult<Arc<TenantConfig>> {
        let config = self.config.current();
        config.tenant(&caller.tenant).cloned().ok_or_else(|| {
            DomainError::new(ErrorCode::Unauthenticated, "tenant is no longer configured")
        })
    }

    async fn with_retries<T, F, Fut>(&self, mut attempt: F) -> DomainResult<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = DomainResult<T>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Err(e) if e.code == ErrorCode::Retryable && tries < RETRIES => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(5 << tries)).await;
                }
                other => return other,
            }
        }
    }

    // ---------------------------------------------------------------- create

    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateOrderRequest,
        raw: &serde_json::Value,
        idempotency_key: Option<String>,
    ) -> DomainResult<Created> {
        let tenant = self.tenant_config(caller)?;
        let order = self.build_order(&tenant, caller, request)?;
        let idempotency = idempotency_key.map(|key| IdempotencyRecord {
            key,
            request_hash: request_hash(raw),
        });
        let event = OrderEvent::of(&order, OrderEventKind::Created);
        let outcome = self
            .with_retries(|| {
                self.store.insert(NewOrder {
                    order: order.clone(),
                    idempotency: idempotency.clone(),
                    event: event.clone(),
                })
            })
            .await?;
        let (stored, replayed) = match outcome {
            InsertOutcome::Created(order) => (order, false),
            InsertOutcome::Replayed(order) => (order, true),
        };
        self.remember(&stored).await;
        Ok(Created {
            view: self.view(&tenant, caller, &stored)?,
            replayed,
        })
    }

    fn build_order(
        &self,
        tenant: &TenantConfig,
        caller: &Caller,
        request: CreateOrderRequest,
    ) -> DomainResult<Order> {
        let identity = BusinessIdentity::parse(&request.business_identity)
            .map_err(|e| e.under("/business_identity"))?;
        let order_type =
            OrderType::parse(&request.order_type).map_err(|e| e.under("/order_type"))?;
        let type_config = tenant.order_type(&identity, &order_type).ok_or_else(|| {
            DomainError::invalid(
                "/order_type",
                format!("order type {order_type} of business identity {identity} is not configured for this tenant"),
            )
        })?;
        let machine = tenant.state_machine(&identity).ok_or_else(|| {
            DomainError::invalid(
                "/business_identity",
                format!("business identity {identity} is not configured"),
            )
        })?;
        let buyer = PartyId::parse(&request.buyer_id).map_err(|e| e.under("/buyer_id"))?;
        let merchant = request
            .merchant_id
            .as_deref()
            .map(PartyId::parse)
            .transpose()
            .map_err(|e| e.under("/merchant_id"))?;
        let merchant = caller.merchant_for_write(merchant, "/merchant_id")?;
        optional_text("/external_ref", &request.external_ref, 128)?;
        optional_text("/remark", &request.remark, MAX_TEXT)?;
        let currency = match &request.currency {
            Some(code) => Currency::parse(code).map_err(|e| e.under("/currency"))?,
            None => tenant.currency(),
        };
        if request.lines.is_empty() {
            return Err(DomainError::invalid(
                "/lines",
                "an order needs at least one line",
            ));
        }
        if request.lines.len() > MAX_LINES {
            return Err(DomainError::invalid(
                "/lines",
                format!("at most {MAX_LINES} lines"),
            ));
        }
        for (index, line) in request.lines.iter().enumerate() {
            text_field(&format!("/lines/{index}/sku"), &line.sku, 128)?;
            text_field(
                &format!("/lines/{index}/product_name"),
                &line.product_name,
                MAX_TEXT,
            )?;
            optional_text(
                &format!("/lines/{index}/promotion_type"),
                &line.promotion_type,
                64,
            )?;
        }
        let priced_lines: Vec<PricedLine> = request
            .lines
            .iter()
            .map(|l| PricedLine {
                unit_price: Money::new(l.unit_price_minor, currency),
                quantity: l.quantity,
            })
            .collect();
        let mut promotions = Vec::with_capacity(request.promotions.len());
        let mut discounts = Vec::with_capacity(request.promotions.len());
        for (index, promotion) in request.promotions.iter().enumerate() {
            text_field(&format!("/promotions/{index}/code"), &promotion.code, 64)?;
            text_field(
                &format!("/promotions/{index}/promotion_type"),
                &promotion.promotion_type,
                64,
            )?;
            let mut targets = Vec::with_capacity(promotion.line_nos.len());
            for (position, line_no) in promotion.line_nos.iter().enumerate() {
                if *line_no == 0 || *line_no as usize > request.lines.len() {
                    return Err(DomainError::invalid(
                        format!("/promotions/{index}/line_nos/{position}"),
                        format!("line {line_no} does not exist"),
                    ));
                }
                targets.push(*line_no as usize - 1);
            }
            let discount = Money::new(promotion.discount_minor, currency);
            discounts.push(DiscountInput {
                amount: discount,
                lines: targets,
            });
            promotions.push(Promotion {
                code: promotion.code.clone(),
                promotion_type: promotion.promotion_type.clone(),
                discount,
                line_nos: promotion.line_nos.clone(),
            });
        }
        let mut coupons = Vec::with_capacity(request.coupons.len());
        for (index, coupon) in request.coupons.iter().enumerate() {
            text_field(&format!("/coupons/{index}/code"), &coupon.code, 64)?;
            coupons.push(Coupon {
                code: coupon.code.clone(),
                discount: Money::new(coupon.discount_minor, currency),
            });
        }
        let coupon_amounts: Vec<Money> = coupons.iter().map(|c| c.discount).collect();
        let priced = pricing::price(
            currency,
            &priced_lines,
            &discounts,
            &coupon_amounts,
            Money::new(request.freight_minor, currency),
        )
        .map_err(|e| match e.field.as_deref() {
            // pricing speaks of /marketing/...; the request calls them /promotions and /coupons
            Some(field) if field.starts_with("/marketing/") => DomainError::invalid(
                field
                    .replacen("/marketing", "", 1)
                    .replacen("/discount", "/discount_minor", 1),
                e.message,
            ),
            Some("/freight") => DomainError::invalid("/freight_minor", e.message),
            Some(field) if field.ends_with("/unit_price") => {
                DomainError::invalid(format!("{field}_minor"), e.message)
            }
            _ => e,
        })?;

        let now = now_ms(self.clock.as_ref());
        let id = self.ids.next(
            Bucket::of(&caller.tenant, &buyer),
            (now.unix_timestamp_nanos() / 1_000_000) as u64,
        );
        let order_record = id.to_string();

        // extension fields: order-level columns and KV identifiers, then line columns
        let (columns, identifiers) = self.validate_order_extension(
            type_config,
            &caller.tenant,
            &order_record,
            &request.extension,
            None,
        )?;
        let mut lines = Vec::with_capacity(request.lines.len());
        for (index, line) in request.lines.iter().enumerate() {
            let line_no = index as u32 + 1;
            let ext = self
                .validate_line_extension(
                    type_config,
                    &caller.tenant,
                    &line_record(id, line_no),
                    &line.extension,
                    None,
                )
                .map_err(|e| e.under(&format!("/lines/{index}")))?;
            lines.push(OrderLine {
                line_no,
                sku: line.sku.clone(),
                product_name: line.product_name.clone(),
                quantity: line.quantity,
                unit_price: Money::new(line.unit_price_minor, currency),
                unit_weight_grams: line.unit_weight_grams,
                promotion_type: line.promotion_type.clone(),
                payable: priced.line_payable[index],
                ext,
            });
        }
        let parties = Parties {
            shipper: request
                .shipper
                .as_ref()
                .map(|p| self.seal_party(&caller.tenant, &order_record, "shipper", p))
                .transpose()?,
            receiver: request
                .receiver
                .as_ref()
                .map(|p| self.seal_party(&caller.tenant, &order_record, "receiver", p))
                .transpose()?,
        };
        let order = Order {
            main: OrderMain {
                id,
                tenant: caller.tenant.clone(),
                business_identity: identity,
                order_type,
                status: machine.initial().clone(),
                version: 1,
                buyer_id: buyer,
                merchant_id: merchant,
                external_ref: request.external_ref.clone(),
                created_at: now,
                updated_at: now,
                pay_deadline: None,
            },
            lines,
            logistics: logistics_of(request.logistics.as_ref())?,
            marketing: Marketing {
                promotions,
                coupons,
                points_used: request.points_used,
            },
            finance: Finance {
                currency,
                goods_total: priced.goods_total,
                discount_total: priced.discount_total,
                freight: Money::new(request.freight_minor, currency),
                payable: priced.payable,
                payments: Vec::new(),
            },
            channel: Channel {
                source: request.channel.as_ref().and_then(|c| c.source.clone()),
                customer_channel: request
                    .channel
                    .as_ref()
                    .and_then(|c| c.customer_channel.clone()),
            },
            parties,
            operation: Operation {
                created_by: Some(caller.key_id.clone()),
                updated_by: Some(caller.key_id.clone()),
                source_system: request.channel.as_ref().and_then(|c| c.source.clone()),
                remark: request.remark.clone(),
                cancel_reason: None,
            },
            extension: Extension {
                columns,
                identifiers,
            },
        };
        order.check_invariants()?;
        Ok(order)
    }

    fn seal_party(
        &self,
        tenant: &TenantId,
        record: &str,
        role: &str,
        input: &PartyInput,
    ) -> DomainResult<Party> {
        let base = format!("/{role}");
        text_field(&format!("{base}/name"), &input.name, 128)?;
        text_field(&format!("{base}/address"), &input.address, MAX_TEXT)?;
        let digits = input.phone.chars().filter(char::is_ascii_digit).count();
        if !(5..=20).contains(&digits)
            || input
                .phone
                .chars()
                .any(|c| !(c.is_ascii_digit() || " +-()".contains(c)))
        {
            return Err(DomainError::invalid(
                format!("{base}/phone"),
                "phone must be 5 to 20 digits, optionally with + - ( ) and spaces",
            ));
        }
        optional_text(&format!("{base}/region"), &input.region, 32)?;
        let field = |name: &str| format!("{role}.{name}");
        let (name_field, phone_field, address_field) =
            (field("name"), field("phone"), field("address"));
        Ok(Party {
            name: self.sealer.seal_text(
                order_location(tenant, record, &name_field),
                input.name.trim(),
                party_normalizer("name").as_ref(),
            )?,
            phone: self.sealer.seal_text(
                order_location(tenant, record, &phone_field),
                &input.phone,
                party_normalizer("phone").as_ref(),
            )?,
            address: self.sealer.seal_text(
                order_location(tenant, record, &address_field),
                input.address.trim(),
                party_normalizer("address").as_ref(),
            )?,
            region: input.region.clone(),
        })
    }

    fn validate_value(
        &self,
        field: &ResolvedField,
        json: &serde_json::Value,
        tenant: &TenantId,
        table: &str,
        record: &str,
    ) -> DomainResult<Protected<ExtValue>> {
        let value = field
            .validate(json)
            .map_err(|e| e.under(&format!("/extension/{}", field.name)))?;
        if !field.encrypted {
            return Ok(Protected::Plain(value));
        }
        let slot = slot_field(&field.slot);
        self.sealer.seal_ext(
            Location {
                tenant,
                table,
                record_id: record,
                field: &slot,
            },
            &value,
            field.searchable,
        )
    }

    /// Order-level extension: the fields of the order table and KV identifiers. With
    /// `existing`, a merge-patch: present names replace, `null` removes.
    fn validate_order_extension(
        &self,
        type_config: &OrderTypeConfig,
        tenant_id: &TenantId,
        record: &str,
        input: &ExtensionInput,
        existing: Option<&Extension>,
    ) -> DomainResult<(ExtColumns, Vec<KvIdentifier>)> {
        let mut columns = existing.map(|e| e.columns.clone()).unwrap_or_default();
        let mut identifiers: BTreeMap<(oc_model::BusinessDomain, String), KvIdentifier> = existing
            .map(|e| {
                e.identifiers
                    .iter()
                    .filter(|i| i.line_no.is_none())
                    .map(|i| ((i.domain, i.key.clone()), i.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (name, json) in input {
            let path = format!("/extension/{name}");
            let field = type_config.field(name).ok_or_else(|| {
                DomainError::invalid(
                    &path,
                    format!("unknown extension field {name:?} for this order type"),
                )
            })?;
            match &field.slot {
                Slot::Column {
                    table: ExtTable::Line,
                    ..
                } => {
                    return Err(DomainError::invalid(
                        &path,
                        "this is a line field: send it in lines[].extension",
                    ));
                }
                Slot::Column {
                    table: ExtTable::Order,
                    column,
                } => {
                    if json.is_null() {
                        columns.remove(column);
                    } else {
                        columns.insert(
                            *column,
                            self.validate_value(field, json, tenant_id, "orders", record)?,
                        );
                    }
                }
                Slot::Kv { domain, key } => {
                    if json.is_null() {
                        identifiers.remove(&(*domain, key.clone()));
                    } else {
                        let stored =
                            self.validate_value(field, json, tenant_id, "orders", record)?;
                        // a KV row holds the value's canonical text (so the identifier
                        // index can look it up); an encrypted field holds its sealed form
                        let text = match &stored {
                            Protected::Plain(value) => value.canonical_text(),
                            Protected::Sealed { .. } => serde_json::to_string(&stored)
                                .map_err(|e| DomainError::internal(e.to_string()))?,
                        };
                        let identifier =
                            KvIdentifier::new(*domain, key.clone(), text).map_err(|_| {
                                DomainError::invalid(&path, "value too long for an identifier")
                            })?;
                        identifiers.insert((*domain, key.clone()), identifier);
                    }
                }
            }
        }
        for field in type_config.fields().iter().filter(|f| f.required) {
            let present = match &field.slot {
                Slot::Column {
                    table: ExtTable::Order,
                    column,
                } => columns.contains_key(column),
                Slot::Kv { domain, key } => identifiers.contains_key(&(*domain, key.clone())),
                Slot::Column {
                    table: ExtTable::Line,
                    ..
                } => true,
            };
            if !present {
                return Err(DomainError::invalid(
                    format!("/extension/{}", field.name),
                    "this field is required",
                ));
            }
        }
        let mut kept: Vec<KvIdentifier> = identifiers.into_values().collect();
        if let Some(existing) = existing {
            kept.extend(
                existing
                    .identifiers
                    .iter()
                    .filter(|i| i.line_no.is_some())
                    .cloned(),
            );
        }
        kept.sort();
        Ok((columns, kept))
    }

    fn validate_line_extension(
        &self,
        type_config: &OrderTypeConfig,
        tenant_id: &TenantId,
        record: &str,
        input: &ExtensionInput,
        existing: Option<&ExtColumns>,
    ) -> DomainResult<ExtColumns> {
        let mut columns = existing.cloned().unwrap_or_default();
        for (name, json) in input {
            let path = format!("/extension/{name}");
            let field = type_config.field(name).ok_or_else(|| {
                DomainError::invalid(
                    &path,
                    format!("unknown extension field {name:?} for this order type"),
                )
            })?;
            let Slot::Column {
                table: ExtTable::Line,
                column,
            } = &field.slot
            else {
                return Err(DomainError::invalid(
                    &path,
                    "this is an order field: send it in the order's extension",
                ));
            };
            if json.is_null() {
                columns.remove(column);
            } else {
                columns.insert(
                    *column,
                    self.validate_value(field, json, tenant_id, "order_lines", record)?,
                );
            }
        }
        for field in type_config.fields().iter().filter(|f| f.required) {
            if let Slot::Column {
                table: ExtTable::Line,
                column,
            } = &field.slot
                && !columns.contains_key(column)
            {
                return Err(DomainError::invalid(
                    format!("/extension/{}", field.name),
                    "this field is required",
                ));
            }
        }
        Ok(columns)
    }

    // ---------------------------------------------------------------- read

    pub async fn get(&self, caller: &Caller, id: &str) -> DomainResult<OrderView> {
        let tenant = self.tenant_config(caller)?;
        let order = self.load_for_read(caller, id).await?;
        self.view(&tenant, caller, &order)
    }

    /// GET path: cache → shard → cold store. The cache is a read model (it may trail the
    /// shard by its staleness bound); cache errors count as misses, never as failures.
    async fn load_for_read(&self, caller: &Caller, id: &str) -> DomainResult<Order> {
        let id: OrderId = id
            .parse()
            .map_err(|_| DomainError::not_found("order not found"))?;
        self.load_for_read_id(caller, id).await
    }

    pub(crate) async fn load_for_read_id(
        &self,
        caller: &Caller,
        id: OrderId,
    ) -> DomainResult<Order> {
        let order = self.load_any_for_read(caller, id).await?;
        if caller.sees(&order) {
            Ok(order)
        } else {
            Err(DomainError::not_found("order not found"))
        }
    }

    async fn load_any_for_read(&self, caller: &Caller, id: OrderId) -> DomainResult<Order> {
        if let Some(cache) = &self.read.cache {
            match cache.get(&caller.tenant, id).await {
                Ok(Some(order)) => return Ok(order),
                Ok(None) => {}
                Err(error) => {
                    tracing::debug!(error = %error.message, "cache read failed; reading the shard")
                }
            }
        }
        if let Some(order) = self.store.get(&caller.tenant, id).await? {
            self.remember(&order).await;
            return Ok(order);
        }
        if let Some(cold) = &self.read.cold
            && let Some(order) = cold.get(&caller.tenant, id).await?
        {
            return Ok(order);
        }
        Err(DomainError::not_found("order not found"))
    }

    /// Write the order's state through to the cache (set-if-newer, so a racing older write
    /// can never win). A cache failure is logged: the shard already holds the truth.
    async fn remember(&self, order: &Order) {
        if let Some(cache) = &self.read.cache
            && let Err(error) = cache.put_if_newer(order).await
        {
            tracing::warn!(error = %error.message, order_id = %order.main.id, "cache write-through failed");
        }
    }

    /// Write path: always the shard (the cache may trail it), so If-Match compares against
    /// the truth.
    async fn load(&self, caller: &Caller, id: &str) -> DomainResult<Order> {
        // a malformed id is as unknown as another tenant's: 404 either way
        let id: OrderId = id
            .parse()
            .map_err(|_| DomainError::not_found("order not found"))?;
        self.store
            .get(&caller.tenant, id)
            .await?
            .filter(|order| caller.sees(order))
            .ok_or_else(|| DomainError::not_found("order not found"))
    }

    pub async fn list_by_buyer(
        &self,
        caller: &Caller,
        buyer: &str,
        cursor: Option<String>,
        limit: Option<u32>,
    ) -> DomainResult<OrderList> {
        let tenant = self.tenant_config(caller)?;
        let buyer = PartyId::parse(buyer).map_err(|e| e.under("/query/buyer_id"))?;
        let limit = limit.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(DomainError::invalid(
                "/query/limit",
                "limit must be 1 to 100",
            ));
        }
        let page = self
            .store
            .list_by_buyer(&caller.tenant, &buyer, PageRequest { cursor, limit })
            .await
            .map_err(|e| {
                if e.field.as_deref() == Some("/cursor") {
                    DomainError::invalid("/query/cursor", e.message)
                } else {
                    e
                }
            })?;
        let items = page
            .items
            .iter()
            // a merchant-scoped key's role may not grant orders.list (the loader refuses it);
            // should one get here anyway, it still sees only its merchant's orders
            .filter(|o| caller.sees(o))
            .map(|o| self.view(&tenant, caller, o))
            .collect::<DomainResult<_>>()?;
        Ok(OrderList {
            items,
            next_cursor: page.next_cursor,
        })
    }

    // ---------------------------------------------------------------- change

    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        if_match: u64,
        request: UpdateOrderRequest,
    ) -> DomainResult<OrderView> {
        let tenant = self.tenant_config(caller)?;
        let current = self.load(caller, id).await?;
        if current.main.version != if_match {
            return Err(DomainError::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "order is at version {}, not {if_match}",
                    current.main.version
                ),
            ));
        }
        let machine = tenant
            .state_machine(&current.main.business_identity)
            .ok_or_else(|| {
                DomainError::internal("order's business identity is no longer configured")
            })?;
        if machine.is_terminal(&current.main.status) {
            return Err(DomainError::new(
                ErrorCode::InvalidTransition,
                format!("order is {}: it can no longer change", current.main.status),
            ));
        }
        let type_config = tenant
            .order_type(&current.main.business_identity, &current.main.order_type)
            .ok_or_else(|| DomainError::internal("order's type is no longer configured"))?;
        let mut next = current.clone();
        let record = current.main.id.to_string();
        if let Some(merchant) = &request.merchant_id {
            let merchant = PartyId::parse(merchant).map_err(|e| e.under("/merchant_id"))?;
            next.main.merchant_id = caller.merchant_for_write(Some(merchant), "/merchant_id")?;
        }
        if let Some(remark) = &request.remark {
            text_field("/remark", remark, MAX_TEXT)?;
            next.operation.remark = Some(remark.clone());
        }
        if let Some(logistics) = &request.logistics {
            next.logistics = logistics_of(Some(logistics))?;
        }
        if let Some(shipper) = &request.shipper {
            next.parties.shipper =
                Some(self.seal_party(&caller.tenant, &record, "shipper", shipper)?);
        }
        if let Some(receiver) = &request.receiver {
            next.parties.receiver =
                Some(self.seal_party(&caller.tenant, &record, "receiver", receiver)?);
        }
        if let Some(extension) = &request.extension {
            let (columns, identifiers) = self.validate_order_extension(
                type_config,
                &caller.tenant,
                &record,
                extension,
                Some(&current.extension),
            )?;
            next.extension = Extension {
                columns,
                identifiers,
            };
        }
        if let Some(lines) = &request.lines {
            for (index, update) in lines.iter().enumerate() {
                let position = next
                    .lines
                    .iter()
                    .position(|l| l.line_no == update.line_no)
                    .ok_or_else(|| {
                        DomainError::invalid(
                            format!("/lines/{index}/line_no"),
                            format!("line {} does not exist", update.line_no),
                        )
                    })?;
                let ext = self
                    .validate_line_extension(
                        type_config,
                        &caller.tenant,
                        &line_record(current.main.id, update.line_no),
                        &update.extension,
                        Some(&next.lines[position].ext),
                    )
                    .map_err(|e| e.under(&format!("/lines/{index}")))?;
                next.lines[position].ext = ext;
            }
        }
        next.operation.updated_by = Some(caller.key_id.clone());
        self.commit_change(&tenant, caller, current, next, OrderEventKind::Updated)
            .await
    }

    pub async fn cancel(
        &self,
        caller: &Caller,
        id: &str,
        if_match: Option<u64>,
        request: CancelRequest,
    ) -> DomainResult<OrderView> {
        let tenant = self.tenant_config(caller)?;
        optional_text("/reason", &request.reason, MAX_TEXT)?;
        let current = self.load(caller, id).await?;
        if let Some(expected) = if_match
            && expected != current.main.version
        {
            return Err(DomainError::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "order is at version {}, not {expected}",
                    current.main.version
                ),
            ));
        }
        let machine = tenant
            .state_machine(&current.main.business_identity)
            .ok_or_else(|| {
                DomainError::internal("order's business identity is no longer configured")
            })?;
        let cancel = TransitionEvent::parse("cancel")?;
        let to = machine.next(&current.main.status, &cancel)?.clone();
        let mut next = current.clone();
        next.main.status = to;
        next.operation.cancel_reason = request.reason.clone();
        next.operation.updated_by = Some(caller.key_id.clone());
        self.commit_change(&tenant, caller, current, next, OrderEventKind::Cancelled)
            .await
    }

    async fn commit_change(
        &self,
        tenant: &TenantConfig,
        caller: &Caller,
        current: Order,
        mut next: Order,
        kind: OrderEventKind,
    ) -> DomainResult<OrderView> {
        next.main.version = current.main.version + 1;
        next.main.updated_at = now_ms(self.clock.as_ref()).max(current.main.updated_at);
        // Values carried over from the stored order may be under an older data key: a write
        // stores them under the active one, so a write racing `keys reencrypt` (which does
        // not bump the version) never puts an old version back.
        self.sealer.reseal(&mut next).map_err(|error| {
            tracing::error!(%error, "re-sealing carried-over values failed");
            DomainError::internal("field encryption failed")
        })?;
        let event = OrderEvent::of(&next, kind);
        let stored = self.store.update(current.main.version, next, event).await?;
        self.remember(&stored).await;
        self.view(tenant, caller, &stored)
    }

    // ---------------------------------------------------------------- views

    /// The order as this caller may see it: extension fields by configured name, PII opened
    /// or masked by role.
    pub fn view(
        &self,
        tenant: &TenantConfig,
        caller: &Caller,
        order: &Order,
    ) -> DomainResult<OrderView> {
        let pii = caller.pii;
        let record = order.main.id.to_string();
        let type_config = tenant.order_type(&order.main.business_identity, &order.main.order_type);
        let mut extension = BTreeMap::new();
        if let Some(type_config) = type_config {
            for (column, value) in &order.extension.columns {
                let slot = Slot::Column {
                    table: ExtTable::Order,
                    column: *column,
                };
                if let Some(field) = type_config.field_at(&slot) {
                    extension.insert(
                        field.name.clone(),
                        self.render_ext(&caller.tenant, "orders", &record, field, value, pii)?,
                    );
                }
            }
            for identifier in order
                .extension
                .identifiers
                .iter()
                .filter(|i| i.line_no.is_none())
            {
                let slot = Slot::Kv {
                    domain: identifier.domain,
                    key: identifier.key.clone(),
                };
                if let Some(field) = type_config.field_at(&slot) {
                    let corrupt = |e: String| {
                        DomainError::internal(format!("corrupt identifier {}: {e}", identifier.key))
                    };
                    let stored: Protected<ExtValue> = if field.encrypted {
                        serde_json::from_str(&identifier.value)
                            .map_err(|e| corrupt(e.to_string()))?
                    } else {
                        Protected::Plain(
                            ExtValue::from_canonical_text(field.field_type, &identifier.value)
                                .map_err(|e| corrupt(e.message))?,
                        )
                    };
                    extension.insert(
                        field.name.clone(),
                        self.render_ext(&caller.tenant, "orders", &record, field, &stored, pii)?,
                    );
                }
            }
        }
        let mut lines = Vec::with_capacity(order.lines.len());
        for line in &order.lines {
            let mut line_extension = BTreeMap::new();
            if let Some(type_config) = type_config {
                let line_id = line_record(order.main.id, line.line_no);
                for (column, value) in &line.ext {
                    let slot = Slot::Column {
                        table: ExtTable::Line,
                        column: *column,
                    };
                    if let Some(field) = type_config.field_at(&slot) {
                        line_extension.insert(
                            field.name.clone(),
                            self.render_ext(
                                &caller.tenant,
                                "order_lines",
                                &line_id,
                                field,
                                value,
                                pii,
                            )?,
                        );
                    }
                }
            }
            lines.push(LineView {
                line_no: line.line_no,
                sku: line.sku.clone(),
                product_name: line.product_name.clone(),
                quantity: line.quantity,
                unit_price: line.unit_price,
                unit_weight_grams: line.unit_weight_grams,
                promotion_type: line.promotion_type.clone(),
                payable: line.payable,
                extension: line_extension,
            });
        }
        let party_view = |role: &str, party: &Option<Party>| -> DomainResult<Option<PartyView>> {
            let Some(party) = party else { return Ok(None) };
            let open = |name: &str,
                        value: &Protected<String>,
                        mask: fn(&str) -> String|
             -> DomainResult<String> {
                if pii == PiiView::None {
                    return Ok(crate::pii::WITHHELD.to_owned());
                }
                let field = format!("{role}.{name}");
                let plain = self
                    .sealer
                    .open_text(order_location(&caller.tenant, &record, &field), value)?;
                Ok(render(pii, &plain, mask))
            };
            Ok(Some(PartyView {
                name: open("name", &party.name, mask_name)?,
                phone: open("phone", &party.phone, mask_phone)?,
                address: open("address", &party.address, |a| mask_address(a, 6))?,
                region: party.region.clone(),
                pii: pii.as_str(),
            }))
        };
        Ok(OrderView {
            id: order.main.id.to_string(),
            tenant: order.main.tenant.to_string(),
            business_identity: order.main.business_identity.to_string(),
            order_type: order.main.order_type.to_string(),
            status: order.main.status.to_string(),
            version: order.main.version,
            buyer_id: order.main.buyer_id.to_string(),
            merchant_id: order.main.merchant_id.as_ref().map(ToString::to_string),
            external_ref: order.main.external_ref.clone(),
            created_at: order.main.created_at,
            updated_at: order.main.updated_at,
            lines,
            logistics: order.logistics.clone(),
            marketing: order.marketing.clone(),
            finance: order.finance.clone(),
            channel: order.channel.clone(),
            parties: PartiesView {
                shipper: party_view("shipper", &order.parties.shipper)?,
                receiver: party_view("receiver", &order.parties.receiver)?,
            },
            operation: order.operation.clone(),
            extension,
        })
    }

    fn render_ext(
        &self,
        tenant: &TenantId,
        table: &str,
        record: &str,
        field: &ResolvedField,
        value: &Protected<ExtValue>,
        pii: PiiView,
    ) -> DomainResult<serde_json::Value> {
        if let Some(plain) = value.plain() {
            return Ok(plain.to_json());
        }
        if pii == PiiView::None {
            return Ok(serde_json::Value::String(crate::pii::WITHHELD.to_owned()));
        }
        let slot = slot_field(&field.slot);
        let plain = self.sealer.open_ext(
            Location {
                tenant,
                table,
                record_id: record,
                field: &slot,
            },
            value,
        )?;
        Ok(match pii {
            PiiView::Full => plain.to_json(),
            _ => serde_json::Value::String(mask_middle(&plain.canonical_text(), 1, 1)),
        })
    }
}

fn logistics_of(input: Option<&LogisticsInput>) -> DomainResult<LogisticsService> {
    let Some(input) = input else {
        return Ok(LogisticsService::default());
    };
    optional_text("/logistics/service_product", &input.service_product, 64)?;
    optional_text("/logistics/waybill_no", &input.waybill_no, 64)?;
    Ok(LogisticsService {
        service_product: input.service_product.clone(),
        expected_pickup_at: input.expected_pickup_at,
        expected_delivery_at: input.expected_delivery_at,
        waybill_no: input.waybill_no.clone(),
    })
}
