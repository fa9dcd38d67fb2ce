//! [`FileSecrets`]: the tenants' provider accounts and shared secrets from a secrets file
//! (`OC_PAYMENT_SECRETS_FILE`), never from the tenant YAML (which operators read and keep in
//! version control). The sandbox reads the same file to know the accounts it signs for.
//!
//! ```json
//! { "accounts": [
//!     { "tenant": "retail", "provider": "sandbox", "account": "retail-shop",
//!       "secret_base64": "c2FuZGJveC1zZWNyZXQtcmV0YWlsLTAwMDAwMDAwMDA=" } ] }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use serde::Deserialize;

use oc_model::payment::{PaymentSecrets, ProviderCredentials};
use oc_model::{DomainError, DomainResult, ProviderName, TenantId};

/// A secret shorter than this is refused: an HMAC key is only as strong as its length.
const MIN_SECRET_BYTES: usize = 16;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    accounts: Vec<Entry>,
}

/// One account of a tenant with a provider.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub tenant: TenantId,
    pub provider: ProviderName,
    pub account: String,
    pub secret_base64: String,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("tenant", &self.tenant)
            .field("provider", &self.provider)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// The accounts of a secrets file, by tenant and provider and by provider and account.
#[derive(Debug, Clone, Default)]
pub struct FileSecrets {
    by_tenant: BTreeMap<(TenantId, ProviderName), ProviderCredentials>,
    by_account: BTreeMap<(ProviderName, String), TenantId>,
}

impl FileSecrets {
    pub fn load(path: &Path) -> DomainResult<FileSecrets> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            DomainError::invalid(
                "/payments/secrets_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        FileSecrets::parse(&text)
    }

    pub fn parse(text: &str) -> DomainResult<FileSecrets> {
        let file: File = serde_json::from_str(text).map_err(|e| {
            DomainError::invalid("/payments/secrets_file", format!("not a secrets file: {e}"))
        })?;
        FileSecrets::from_entries(file.accounts)
    }

    pub fn from_entries(entries: Vec<Entry>) -> DomainResult<FileSecrets> {
        let mut secrets = FileSecrets::default();
        for (index, entry) in entries.into_iter().enumerate() {
            let path = format!("/accounts/{index}");
            let secret = base64::engine::general_purpose::STANDARD
                .decode(entry.secret_base64.trim())
                .map_err(|_| DomainError::invalid(format!("{path}/secret_base64"), "not base64"))?;
            if secret.len() < MIN_SECRET_BYTES {
                return Err(DomainError::invalid(
                    format!("{path}/secret_base64"),
                    format!("a secret has at least {MIN_SECRET_BYTES} bytes"),
                ));
            }
            if entry.account.is_empty() {
                return Err(DomainError::invalid(format!("{path}/account"), "required"));
            }
            let account_key = (entry.provider.clone(), entry.account.clone());
            let tenant_key = (entry.tenant.clone(), entry.provider.clone());
            if secrets.by_account.contains_key(&account_key)
                || secrets.by_tenant.contains_key(&tenant_key)
            {
                return Err(DomainError::invalid(
                    path,
                    "one account per tenant and provider, and per provider and account name",
                ));
            }
            secrets.by_account.insert(account_key, entry.tenant.clone());
            secrets
                .by_tenant
                .insert(tenant_key, ProviderCredentials::new(entry.account, secret));
        }
        Ok(secrets)
    }

    /// Every account of `provider`: (account, secret), for the sandbox.
    pub fn accounts_of(&self, provider: &ProviderName) -> BTreeMap<String, ProviderCredentials> {
        self.by_tenant
            .iter()
            .filter(|((_, p), _)| p == provider)
            .map(|(_, credentials)| (credentials.account.clone(), credentials.clone()))
            .collect()
    }
}

impl PaymentSecrets for FileSecrets {
    fn credentials(
        &self,
        tenant: &TenantId,
        provider: &ProviderName,
    ) -> Option<ProviderCredentials> {
        self.by_tenant
            .get(&(tenant.clone(), provider.clone()))
            .cloned()
    }

    fn tenant_of_account(&self, provider: &ProviderName, account: &str) -> Option<TenantId> {
        self.by_account
            .get(&(provider.clone(), account.to_owned()))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secrets_file_maps_tenants_to_accounts_and_back() {
        let secrets = FileSecrets::parse(
            r#"{"accounts":[{"tenant":"retail","provider":"sandbox","account":"shop-1","secret_base64":"MDEyMzQ1Njc4OWFiY2RlZg=="}]}"#,
        )
        .unwrap();
        let retail = TenantId::parse("retail").unwrap();
        let sandbox = ProviderName::parse("sandbox").unwrap();
        let credentials = secrets.credentials(&retail, &sandbox).unwrap();
        assert_eq!(credentials.account, "shop-1");
        assert_eq!(credentials.secret(), b"0123456789abcdef");
        assert_eq!(secrets.tenant_of_account(&sandbox, "shop-1"), Some(retail));
        assert_eq!(secrets.tenant_of_account(&sandbox, "shop-2"), None);
    }

    #[test]
    fn short_or_malformed_secrets_are_refused_naming_the_entry() {
        let short = FileSecrets::parse(
            r#"{"accounts":[{"tenant":"retail","provider":"sandbox","account":"a","secret_base64":"c2hvcnQ="}]}"#,
        )
        .unwrap_err();
        assert_eq!(short.field.as_deref(), Some("/accounts/0/secret_base64"));
        assert!(FileSecrets::parse(r#"{"accounts":[{"tenant":"retail"}]}"#).is_err());
    }
}
