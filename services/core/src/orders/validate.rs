//! Input checks shared by the order commands: free text and the logistics group.

use oc_model::order::LogisticsService;
use oc_model::{DomainError, DomainResult};

use crate::orders::input::LogisticsInput;

/// Longest accepted free text (remarks, reasons, product names).
pub(crate) const MAX_TEXT: usize = 512;

pub(crate) fn text_field(path: &str, value: &str, max: usize) -> DomainResult<()> {
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

pub(crate) fn optional_text(path: &str, value: &Option<String>, max: usize) -> DomainResult<()> {
    value
        .as_deref()
        .map_or(Ok(()), |v| text_field(path, v, max))
}

pub(crate) fn logistics_of(input: Option<&LogisticsInput>) -> DomainResult<LogisticsService> {
    let Some(input) = input else {
        return Ok(LogisticsService::default());
    };
    optional_text("/logistics/service_product", &input.service_product, 64)?;
    optional_text("/logistics/waybill_no", &input.waybill_no, 64)?;
    optional_text("/logistics/carrier", &input.carrier, 64)?;
    Ok(LogisticsService {
        service_product: input.service_product.clone(),
        expected_pickup_at: input.expected_pickup_at,
        expected_delivery_at: input.expected_delivery_at,
        waybill_no: input.waybill_no.clone(),
        carrier: input.carrier.clone(),
    })
}
