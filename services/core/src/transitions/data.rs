//! A transition's event data: every value checked against the field the tenant config
//! declares for the transition (type, allowed values, constraints, required), unknown names
//! refused; values declared `into` an order field are written there too.
//!
//! A value written into a sealed remark is sealed there and left out of the event's data
//! (which the history row and the outbox event carry in clear).

use std::collections::BTreeMap;

use oc_model::{DomainError, DomainResult, Order, Protected};
use oc_tenant_config::{DataTarget, TransitionConfig};

/// The checked data of one event.
#[derive(Debug, Default)]
pub(crate) struct Accepted {
    /// Every value, by name, as JSON of its typed value.
    values: BTreeMap<String, serde_json::Value>,
    /// The values that also go into the order: target, name, canonical text.
    into: Vec<(DataTarget, String, String)>,
}

impl Accepted {
    pub(crate) fn into_json(self) -> BTreeMap<String, serde_json::Value> {
        self.values
    }

    /// Leave the values written into the remark out of the event's data: the remark is
    /// sealed, the history row and outbox event are not.
    pub(crate) fn withhold_remark(&mut self) {
        for (target, name, _) in &self.into {
            if *target == DataTarget::OperationRemark {
                self.values.remove(name);
            }
        }
    }
}

/// Check `data` against the transition's declared fields; errors name `/data/<name>`.
pub(crate) fn accept(
    config: &TransitionConfig,
    data: &BTreeMap<String, serde_json::Value>,
) -> DomainResult<Accepted> {
    let mut accepted = Accepted::default();
    for (name, json) in data {
        let path = format!("/data/{}", name.replace('~', "~0").replace('/', "~1"));
        let Some(field) = config.data_field(name) else {
            let declared: Vec<&str> = config.data.iter().map(|f| f.name.as_str()).collect();
            return Err(DomainError::invalid(
                path,
                format!(
                    "event {} takes no value {name:?}; it takes [{}]",
                    config.event,
                    declared.join(", ")
                ),
            ));
        };
        if json.is_null() {
            if field.required {
                return Err(DomainError::invalid(path, "required"));
            }
            continue;
        }
        let value = field.validate(json).map_err(|e| e.under(&path))?;
        if let Some(target) = field.into {
            accepted
                .into
                .push((target, name.clone(), value.canonical_text()));
        }
        accepted.values.insert(name.clone(), value.to_json());
    }
    if let Some(missing) = config
        .data
        .iter()
        .find(|field| field.required && !accepted.values.contains_key(&field.name))
    {
        return Err(DomainError::invalid(
            format!("/data/{}", missing.name),
            format!("event {} requires {:?}", config.event, missing.name),
        ));
    }
    Ok(accepted)
}

/// Write the values declared `into` an order field into `order`; a remark as `remark` makes
/// it (sealed where the order type says so).
pub(crate) fn apply(
    accepted: &Accepted,
    order: &mut Order,
    remark: impl Fn(&str) -> DomainResult<Protected<String>>,
) -> DomainResult<()> {
    for (target, _, text) in &accepted.into {
        let slot = match target {
            DataTarget::LogisticsCarrier => &mut order.logistics.carrier,
            DataTarget::LogisticsWaybillNo => &mut order.logistics.waybill_no,
            DataTarget::LogisticsServiceProduct => &mut order.logistics.service_product,
            DataTarget::OperationRemark => {
                order.operation.remark = Some(remark(text)?);
                continue;
            }
        };
        *slot = Some(text.clone());
    }
    Ok(())
}
