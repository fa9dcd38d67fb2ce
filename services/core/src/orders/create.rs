//! `create`: a new order from a request, validated against the caller's tenant config,
//! priced in minor units, sealed, and written in one local transaction with its outbox
//! event and idempotency record.

use sha2::{Digest, Sha256};

use oc_model::order::{
    Channel, Coupon, Extension, Finance, Marketing, Operation, OrderLine, OrderMain, Parties,
    Promotion,
};
use oc_model::ports::{IdempotencyRecord, InsertOutcome, NewOrder};
use oc_model::pricing::{self, DiscountInput, LineInput as PricedLine};
use oc_model::sealing::PartyRole;
use oc_model::{
    Bucket, BusinessIdentity, Currency, DomainError, DomainResult, Money, Order, OrderEvent,
    OrderEventKind, OrderType, PartyId, UnixMillis,
};

use crate::caller::Caller;
use crate::orders::extension::ExtensionWriter;
use crate::orders::input::{CreateOrderRequest, PartyInput};
use crate::orders::output::Created;
use crate::orders::parties::{remark_value, seal_party};
use crate::orders::service::OrderService;
use crate::orders::validate::{MAX_TEXT, logistics_of, optional_text, text_field};
use crate::orders::view::Renderer;
use crate::stock::Taken;

/// Lines per order.
const MAX_LINES: usize = 500;

/// Hex SHA-256 of the canonical JSON of a request (object keys sorted).
pub fn request_hash(raw: &serde_json::Value) -> String {
    let canonical = serde_json::to_vec(raw).unwrap_or_default();
    let digest = Sha256::digest(&canonical);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The idempotency fingerprint: the request's hash, and for a merchant-scoped key its
/// merchant too, so a merchant key reusing another caller's key and body is a conflict, not
/// a replay of an order it may not see. Callers without a merchant scope keep the plain
/// hash (records written before the scope was part of it still replay).
fn scoped_request_hash(caller: &Caller, raw: &serde_json::Value) -> String {
    match &caller.merchant {
        None => request_hash(raw),
        Some(merchant) => request_hash(&serde_json::json!({
            "merchant_scope": merchant.as_str(),
            "request": raw,
        })),
    }
}

/// Pricing speaks of `/marketing/...`, `/freight` and `/unit_price`; the request calls them
/// `/promotions`, `/coupons`, `/freight_minor` and `/unit_price_minor`.
fn pricing_error_path(e: DomainError) -> DomainError {
    match e.field.as_deref() {
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
    }
}

impl OrderService {
    /// Create an order. `raw` is the request as sent (its hash, with the caller's merchant
    /// scope, guards the idempotency key: the same key with another body, or from a caller
    /// of another scope, is refused); a retry with the same key and body answers the first
    /// order (`replayed`), but only if the caller may see it, as a GET would (else 404).
    pub async fn create(
        &self,
        caller: &Caller,
        request: CreateOrderRequest,
        raw: &serde_json::Value,
        idempotency_key: Option<String>,
    ) -> DomainResult<Created> {
        let order = self.build_order(caller, request)?;
        let idempotency = idempotency_key.map(|key| IdempotencyRecord {
            key,
            request_hash: scoped_request_hash(caller, raw),
        });
        // stock first, all lines or none; given back below if the order is not written
        let reserved = self.reserve_stock(caller, &order).await?;
        let event = OrderEvent::of(&order, OrderEventKind::Created);
        let outcome = self
            .with_retries(|| {
                self.store.insert(NewOrder {
                    order: order.clone(),
                    idempotency: idempotency.clone(),
                    event: event.clone(),
                })
            })
            .await;
        let (stored, replayed) = match outcome {
            Ok(InsertOutcome::Created(order)) => (order, false),
            Ok(InsertOutcome::Replayed(first)) => {
                // the first attempt holds its own reservations; this one's go back
                self.reserver
                    .release(&order.main.tenant, order.main.id, &reserved, self.now_ms())
                    .await;
                // the order may have left the caller's view since (another merchant now): a
                // replay tells no more than a GET of it would
                if !caller.sees(&first) {
                    return Err(DomainError::not_found("order not found"));
                }
                (first, true)
            }
            Err(error) => {
                self.reserver
                    .release(&order.main.tenant, order.main.id, &reserved, self.now_ms())
                    .await;
                return Err(error);
            }
        };
        self.remember(&stored).await;
        let renderer = Renderer {
            sealer: &self.sealer,
            caller,
        };
        Ok(Created {
            view: renderer.view(&stored)?,
            replayed,
        })
    }

    /// Reserve the order's stock when its business identity keeps stock; the SKUs reserved.
    async fn reserve_stock(&self, caller: &Caller, order: &Order) -> DomainResult<Vec<Taken>> {
        let tenant = caller.tenant_config();
        let main = &order.main;
        let Some(identity) = tenant.business_identity(&main.business_identity) else {
            return Ok(Vec::new());
        };
        let inventory = identity.inventory();
        if !inventory.is_builtin() {
            return Ok(Vec::new());
        }
        let window = tenant
            .order_type(&main.business_identity, &main.order_type)
            .and_then(|config| config.payment_window());
        // from the order's own creation time: the hold ends exactly at its pay deadline
        self.reserver
            .reserve_order(order, window, inventory, order.main.created_at)
            .await
    }

    fn build_order(&self, caller: &Caller, request: CreateOrderRequest) -> DomainResult<Order> {
        let tenant = caller.tenant_config();
        let identity = BusinessIdentity::parse(&request.business_identity)
            .map_err(|e| e.under("/business_identity"))?;
        let order_type =
            OrderType::parse(&request.order_type).map_err(|e| e.under("/order_type"))?;
        if tenant.business_identity(&identity).is_none() {
            return Err(DomainError::invalid(
                "/business_identity",
                format!("business identity {identity} is not configured for this tenant"),
            ));
        }
        let type_config = tenant.order_type(&identity, &order_type).ok_or_else(|| {
            DomainError::invalid(
                "/order_type",
                format!("order type {order_type} of business identity {identity} is not configured for this tenant"),
            )
        })?;
        if type_config.receiver_required() && request.receiver.is_none() {
            return Err(DomainError::invalid(
                "/receiver",
                format!("orders of type {order_type} are shipped: a receiver is required"),
            ));
        }
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
        // the tenant's amounts, limits and searches are in its one currency
        if currency != tenant.currency() {
            return Err(DomainError::invalid(
                "/currency",
                format!("this tenant takes orders in {} only", tenant.currency()),
            ));
        }
        // points are redeemed for money: a count no amount in minor units can hold is no
        // order's
        if i64::try_from(request.points_used).is_err() {
            return Err(DomainError::invalid(
                "/points_used",
                format!("at most {} points", i64::MAX),
            ));
        }
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
            request.points_used,
            Money::new(request.freight_minor, currency),
        )
        .map_err(pricing_error_path)?;

        let now = self.now_ms();
        let id = self.ids.next(
            Bucket::of(&caller.tenant, &buyer),
            UnixMillis::floor(now).as_u64(),
        );

        // extension fields: order-level columns and KV identifiers, then line columns
        let writer = ExtensionWriter {
            sealer: &self.sealer,
            tenant: &caller.tenant,
            order: id,
            fields: type_config,
        };
        let (columns, identifiers) = writer.order_extension(&request.extension, None)?;
        let mut lines = Vec::with_capacity(request.lines.len());
        for (index, line) in request.lines.iter().enumerate() {
            let line_no = index as u32 + 1;
            let ext = writer
                .line_extension(line_no, &line.extension, None)
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
        let party = |role: PartyRole, input: &Option<PartyInput>| {
            input
                .as_ref()
                .map(|p| seal_party(&self.sealer, &caller.tenant, id, role, p))
                .transpose()
        };
        let parties = Parties {
            shipper: party(PartyRole::Shipper, &request.shipper)?,
            receiver: party(PartyRole::Receiver, &request.receiver)?,
        };
        let remark = request
            .remark
            .as_deref()
            .map(|text| remark_value(&self.sealer, &caller.tenant, id, type_config, text))
            .transpose()?;
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
                // the timeout worker cancels the order when this passes unpaid; orders
                // start in their state machine's first state, from which the config
                // loader checked a `timeout` transition exists wherever a window is set
                pay_deadline: type_config.payment_window().map(|window| now + window),
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
                remark,
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
}
