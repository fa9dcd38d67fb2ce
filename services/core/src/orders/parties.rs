//! Shipper and receiver: checked, then sealed at their sites before anything is stored; and
//! the remark, sealed too where its order type's config says so.

use oc_model::order::Party;
use oc_model::sealing::{PartyField, PartyRole, SealedSite};
use oc_model::{DomainError, DomainResult, OrderId, Protected, TenantId};
use oc_tenant_config::OrderTypeConfig;

use crate::orders::input::PartyInput;
use crate::orders::validate::{MAX_TEXT, optional_text, text_field};
use crate::sealing::Sealer;

/// Check a party of the request (at `/shipper` or `/receiver`) and seal its personal data.
pub(crate) fn seal_party(
    sealer: &Sealer,
    tenant: &TenantId,
    order: OrderId,
    role: PartyRole,
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
    let seal = |field: PartyField, text: &str| {
        sealer.seal_party(tenant, order, &SealedSite::Party { role, field }, text)
    };
    Ok(Party {
        name: seal(PartyField::Name, input.name.trim())?,
        phone: seal(PartyField::Phone, &input.phone)?,
        address: seal(PartyField::Address, input.address.trim())?,
        region: input.region.clone(),
    })
}

/// The remark as stored: sealed at its site when the order type marks it `encrypted` (free
/// text often holding phone numbers), else as it is. Checked by the caller.
pub(crate) fn remark_value(
    sealer: &Sealer,
    tenant: &TenantId,
    order: OrderId,
    type_config: &OrderTypeConfig,
    text: &str,
) -> DomainResult<Protected<String>> {
    if type_config.remark_encrypted() {
        sealer.seal_party(tenant, order, &SealedSite::Remark, text)
    } else {
        Ok(Protected::Plain(text.to_owned()))
    }
}
