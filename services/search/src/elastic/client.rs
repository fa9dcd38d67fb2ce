//! The Elasticsearch adapter over the official `elasticsearch` client. Requests come from
//! [`super::request`], answers are read by [`super::response`]; this file only moves them.

use async_trait::async_trait;
use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::indices::{
    IndicesCreateParts, IndicesPutMappingParts, IndicesPutSettingsParts, IndicesRefreshParts,
};
use elasticsearch::params::VersionType;
use elasticsearch::{DeleteParts, Elasticsearch, GetParts, IndexParts, SearchParts};
use oc_model::aftersale::AfterSaleId;
use oc_model::aftersale::listing::{AfterSaleDocument, AfterSalePage, AfterSaleQuery};
use oc_model::ports::SearchIndex;
use oc_model::search::{SearchDocument, SearchFieldSpec, SearchPage, SearchQuery};
use oc_model::{DomainError, DomainResult, OrderId, TenantId};
use serde_json::Value;

use super::config::EsConfig;
use super::{after_sales, request, response};

/// The cluster-mode search index.
#[derive(Debug, Clone)]
pub struct EsSearchIndex {
    client: Elasticsearch,
    config: EsConfig,
}

impl EsSearchIndex {
    /// Build the client (no request is sent).
    pub fn connect(config: EsConfig) -> DomainResult<EsSearchIndex> {
        let url = Url::parse(&config.url).map_err(|e| {
            DomainError::invalid("/search/url", format!("bad elasticsearch url: {e}"))
        })?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .disable_proxy()
            .timeout(config.request_timeout);
        if let Some((user, password)) = &config.basic_auth {
            builder = builder.auth(Credentials::Basic(user.clone(), password.clone()));
        }
        let transport = builder.build().map_err(|e| {
            DomainError::invalid(
                "/search/url",
                format!("cannot build elasticsearch client: {e}"),
            )
        })?;
        Ok(EsSearchIndex {
            client: Elasticsearch::new(transport),
            config,
        })
    }

    pub fn config(&self) -> &EsConfig {
        &self.config
    }

    /// Create the tenant's index (generation 1, behind its alias) with the mapping for
    /// `fields`, or, when it exists, add fields that are new (and set the configured
    /// refresh interval). Run on start-up and after a
    /// tenant-config apply.
    pub async fn ensure_index(
        &self,
        tenant: &TenantId,
        fields: &[SearchFieldSpec],
    ) -> DomainResult<()> {
        let physical = self.config.physical_index(tenant, 1);
        let body = request::build_create_index_body(&self.config, tenant, fields)?;
        let answer = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&physical))
            .body(body)
            .send()
            .await;
        let (status, json) = read(answer).await?;
        match status {
            200 => return Ok(()),
            400 if response::error_type(&json) == Some("resource_already_exists_exception") => {}
            _ => return Err(response::unexpected("create index", status, &json)),
        }
        let alias = self.config.alias(tenant);
        let answer = self
            .client
            .indices()
            .put_mapping(IndicesPutMappingParts::Index(&[&alias]))
            .body(request::build_put_mapping_body(fields)?)
            .send()
            .await;
        let (status, json) = read(answer).await?;
        if status != 200 {
            return Err(response::unexpected("put mapping", status, &json));
        }
        // an index created before the interval was configured (or changed) takes it now
        let Some(settings) = request::build_refresh_settings_body(&self.config) else {
            return Ok(());
        };
        let answer = self
            .client
            .indices()
            .put_settings(IndicesPutSettingsParts::Index(&[&alias]))
            .body(settings)
            .send()
            .await;
        let (status, json) = read(answer).await?;
        if status == 200 {
            Ok(())
        } else {
            Err(response::unexpected("put settings", status, &json))
        }
    }
}

impl EsSearchIndex {
    /// The version of document `id` under `alias` (orders' or after-sales'), without its
    /// source.
    async fn version_in(&self, alias: &str, id: &str) -> DomainResult<Option<u64>> {
        let answer = self
            .client
            .get(GetParts::IndexId(alias, id))
            ._source(&["false"])
            .send()
            .await;
        let (status, json) = read(answer).await?;
        response::parse_get_version(status, &json)
    }

    /// Create the tenant's after-sale index (fixed mapping) unless it exists.
    async fn ensure_after_sale_index(&self, tenant: &TenantId) -> DomainResult<()> {
        let physical = after_sales::physical_index(&self.config, tenant);
        let answer = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(&physical))
            .body(after_sales::build_create_index_body(&self.config, tenant))
            .send()
            .await;
        let (status, json) = read(answer).await?;
        match status {
            200 => Ok(()),
            400 if response::error_type(&json) == Some("resource_already_exists_exception") => {
                Ok(())
            }
            _ => Err(response::unexpected(
                "create after-sale index",
                status,
                &json,
            )),
        }
    }

    async fn index_after_sale(
        &self,
        request: &request::IndexRequest,
    ) -> DomainResult<(u16, Value)> {
        let answer = self
            .client
            .index(IndexParts::IndexId(&request.index, &request.id))
            .version(request.version)
            .version_type(VersionType::External)
            .require_alias(true)
            .body(request.body.clone())
            .send()
            .await;
        read(answer).await
    }
}

/// Status and JSON body of an answer; transport failures are `Unavailable`.
async fn read(answer: Result<Response, elasticsearch::Error>) -> DomainResult<(u16, Value)> {
    let answer = answer.map_err(transport_error)?;
    let status = answer.status_code().as_u16();
    let text = answer.text().await.map_err(transport_error)?;
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok((status, json))
}

fn transport_error(error: elasticsearch::Error) -> DomainError {
    DomainError::unavailable(format!("elasticsearch unreachable: {error}"))
}

#[async_trait]
impl SearchIndex for EsSearchIndex {
    async fn upsert(&self, document: &SearchDocument) -> DomainResult<bool> {
        let request = request::build_index_request(&self.config, document)?;
        let answer = self
            .client
            .index(IndexParts::IndexId(&request.index, &request.id))
            .version(request.version)
            .version_type(VersionType::External)
            .require_alias(true)
            .body(request.body)
            .send()
            .await;
        let (status, json) = read(answer).await?;
        response::index_outcome(status, &json)
    }

    async fn delete(&self, tenant: &TenantId, id: OrderId) -> DomainResult<()> {
        let alias = self.config.alias(tenant);
        let id = id.to_string();
        let answer = self
            .client
            .delete(DeleteParts::IndexId(&alias, &id))
            .send()
            .await;
        let (status, json) = read(answer).await?;
        response::delete_outcome(status, &json)
    }

    async fn get_version(&self, tenant: &TenantId, id: OrderId) -> DomainResult<Option<u64>> {
        self.version_in(&self.config.alias(tenant), &id.to_string())
            .await
    }

    async fn search(&self, tenant: &TenantId, query: &SearchQuery) -> DomainResult<SearchPage> {
        let body = request::build_search_body(tenant, query)?;
        let alias = self.config.alias(tenant);
        let answer = self
            .client
            .search(SearchParts::Index(&[&alias]))
            .body(body)
            .send()
            .await;
        let (status, json) = read(answer).await?;
        match status {
            200 => response::parse_search_response(&json, query.sort, query.limit),
            // the tenant has no index yet: nothing was ever indexed for it
            404 if response::error_type(&json) == Some("index_not_found_exception") => {
                Ok(SearchPage {
                    hits: Vec::new(),
                    next_cursor: None,
                    total: None,
                })
            }
            _ => Err(response::unexpected("search", status, &json)),
        }
    }

    async fn upsert_after_sale(&self, document: &AfterSaleDocument) -> DomainResult<bool> {
        let request = after_sales::build_index_request(&self.config, document)?;
        let (mut status, mut json) = self.index_after_sale(&request).await?;
        // the tenant's first after-sale: its index does not exist yet (`require_alias`
        // refused to auto-create one with a dynamic mapping)
        if status == 404 {
            self.ensure_after_sale_index(&document.tenant).await?;
            (status, json) = self.index_after_sale(&request).await?;
        }
        response::index_outcome(status, &json)
    }

    async fn after_sale_version(
        &self,
        tenant: &TenantId,
        id: AfterSaleId,
    ) -> DomainResult<Option<u64>> {
        self.version_in(&after_sales::alias(&self.config, tenant), &id.to_string())
            .await
    }

    async fn search_after_sales(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<AfterSalePage> {
        let body = after_sales::build_search_body(tenant, query)?;
        let alias = after_sales::alias(&self.config, tenant);
        let answer = self
            .client
            .search(SearchParts::Index(&[&alias]))
            .body(body)
            .send()
            .await;
        let (status, json) = read(answer).await?;
        match status {
            200 => after_sales::parse_search_response(&json, query.limit),
            // no after-sale of the tenant was ever indexed
            404 if response::error_type(&json) == Some("index_not_found_exception") => {
                Ok(AfterSalePage {
                    hits: Vec::new(),
                    next_cursor: None,
                })
            }
            _ => Err(response::unexpected("after-sale search", status, &json)),
        }
    }

    async fn refresh(&self) -> DomainResult<()> {
        let pattern = self.config.all_aliases_pattern();
        let after_sale_pattern = after_sales::all_aliases_pattern(&self.config);
        let answer = self
            .client
            .indices()
            .refresh(IndicesRefreshParts::Index(&[&pattern, &after_sale_pattern]))
            .send()
            .await;
        let (status, json) = read(answer).await?;
        if status == 200 {
            Ok(())
        } else {
            Err(response::unexpected("refresh", status, &json))
        }
    }

    async fn health(&self) -> DomainResult<()> {
        let (status, json) = read(self.client.ping().send().await).await?;
        if status == 200 {
            Ok(())
        } else {
            Err(DomainError::unavailable(format!(
                "elasticsearch ping: status {status}: {json}"
            )))
        }
    }
}
