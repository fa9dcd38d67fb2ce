//! Changes to an existing order that are no transition: `update` (merge-patch of the
//! changeable groups) through [`OrderService::commit_change`]: compare-and-set on the
//! version, carried-over sealed values re-sealed under the active key, one transaction with
//! the outbox event. State-machine events (`cancel` among them) are the `transitions`
//! domain's.

use oc_model::order::Extension;
use oc_model::sealing::PartyRole;
use oc_model::{DomainError, DomainResult, ErrorCode, Order, OrderEvent, OrderEventKind, PartyId};

use crate::caller::Caller;
use crate::orders::extension::ExtensionWriter;
use crate::orders::input::UpdateOrderRequest;
use crate::orders::output::OrderView;
use crate::orders::parties::{remark_value, seal_party};
use crate::orders::service::OrderService;
use crate::orders::validate::{MAX_TEXT, logistics_of, text_field};
use crate::orders::view::Renderer;
use crate::sealing::kv_sealing;

pub(crate) fn stale(current: &Order, expected: u64) -> DomainError {
    DomainError::new(
        ErrorCode::PreconditionFailed,
        format!(
            "order is at version {}, not {expected}",
            current.main.version
        ),
    )
}

impl OrderService {
    /// Update an order at version `if_match`: present members of the request replace.
    pub async fn update(
        &self,
        caller: &Caller,
        id: &str,
        if_match: u64,
        request: UpdateOrderRequest,
    ) -> DomainResult<OrderView> {
        let tenant = caller.tenant_config();
        let current = self.load(caller, id).await?;
        if current.main.version != if_match {
            return Err(stale(&current, if_match));
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
        let order_id = current.main.id;
        if let Some(merchant) = &request.merchant_id {
            let merchant = PartyId::parse(merchant).map_err(|e| e.under("/merchant_id"))?;
            next.main.merchant_id = caller.merchant_for_write(Some(merchant), "/merchant_id")?;
        }
        if let Some(remark) = &request.remark {
            text_field("/remark", remark, MAX_TEXT)?;
            next.operation.remark = Some(remark_value(
                &self.sealer,
                &caller.tenant,
                order_id,
                type_config,
                remark,
            )?);
        }
        if let Some(logistics) = &request.logistics {
            next.logistics = logistics_of(Some(logistics))?;
        }
        if let Some(shipper) = &request.shipper {
            next.parties.shipper = Some(seal_party(
                &self.sealer,
                &caller.tenant,
                order_id,
                PartyRole::Shipper,
                shipper,
            )?);
        }
        if let Some(receiver) = &request.receiver {
            next.parties.receiver = Some(seal_party(
                &self.sealer,
                &caller.tenant,
                order_id,
                PartyRole::Receiver,
                receiver,
            )?);
        }
        let writer = ExtensionWriter {
            sealer: &self.sealer,
            tenant: &caller.tenant,
            order: order_id,
            fields: type_config,
        };
        if let Some(extension) = &request.extension {
            let (columns, identifiers) =
                writer.order_extension(extension, Some(&current.extension))?;
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
                let ext = writer
                    .line_extension(
                        update.line_no,
                        &update.extension,
                        Some(&next.lines[position].ext),
                    )
                    .map_err(|e| e.under(&format!("/lines/{index}")))?;
                next.lines[position].ext = ext;
            }
        }
        next.operation.updated_by = Some(caller.key_id.clone());
        self.commit_change(caller, current, next, OrderEventKind::Updated)
            .await
    }

    /// Store `next` as the version after `current` (compare-and-set), with its event.
    pub(crate) async fn commit_change(
        &self,
        caller: &Caller,
        current: Order,
        mut next: Order,
        kind: OrderEventKind,
    ) -> DomainResult<OrderView> {
        self.prepare_next(caller, &current, &mut next)?;
        let event = OrderEvent::of(&next, kind);
        let stored = self.store.update(current.main.version, next, event).await?;
        self.remember(&stored).await;
        self.render(caller, &stored)
    }

    /// Make `next` the version after `current`: the version bumped, the update time set,
    /// and values carried over from the stored order re-sealed under the active key (a write
    /// racing `keys reencrypt`, which does not bump the version, never puts an old key back).
    pub(crate) fn prepare_next(
        &self,
        caller: &Caller,
        current: &Order,
        next: &mut Order,
    ) -> DomainResult<()> {
        self.prepare_next_in(caller.tenant_config(), current, next)
    }

    /// [`Self::prepare_next`] under `tenant`'s config, for a change no caller makes (the
    /// timeout worker's).
    pub(crate) fn prepare_next_in(
        &self,
        tenant: &oc_tenant_config::TenantConfig,
        current: &Order,
        next: &mut Order,
    ) -> DomainResult<()> {
        next.main.version = current.main.version + 1;
        next.main.updated_at = self.now_ms().max(current.main.updated_at);
        let kv = kv_sealing(Some(tenant), next);
        self.sealer.reseal(next, &kv).map_err(|error| {
            tracing::error!(%error, "re-sealing carried-over values failed");
            DomainError::internal("field encryption failed")
        })?;
        Ok(())
    }

    /// The order as `caller` may see it.
    pub(crate) fn render(&self, caller: &Caller, order: &Order) -> DomainResult<OrderView> {
        Renderer {
            sealer: &self.sealer,
            caller,
        }
        .view(order)
    }
}
