//! After-sale documents in the embedded adapter (issue #20 item 6): a tantivy index of their
//! own beside the orders' (in memory, or in the `after_sales` directory inside the order
//! index's directory, which tantivy leaves alone: it only ever deletes files it wrote), so
//! the order schema, and every order index already on disk, stays as it is.
//!
//! Same rules as the order index: one index for all tenants with the tenant clause added by
//! the one query builder here, replace/delete key `tenant/after_sale_id`, strictly newer
//! versions only (read under the writer lock, uncommitted writes first), committed by the
//! order index's [`super::CommitPolicy`].

use std::collections::HashMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use oc_model::aftersale::AfterSaleId;
use oc_model::aftersale::listing::{
    AfterSaleDocument, AfterSaleHit, AfterSalePage, AfterSaleQuery,
};
use oc_model::{DomainError, DomainResult, OrderId, TenantId};
use tantivy::collector::TopDocs;
use tantivy::collector::sort_key::SortByStaticFastValue;
use tantivy::directory::MmapDirectory;
use tantivy::query::{BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STRING, Schema};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

use super::{engine_error, highest_version};
use crate::cursor::{AFTER_SALE_SORT as SORT, Cursor, epoch_millis};

const AFTER_SALE_ID: &str = "after_sale_id";
const CREATED_AT: &str = "created_at";
use super::schema::VERSION;
/// The smallest budget tantivy takes; after-sales are few and small next to orders.
const WRITER_MEMORY_BYTES: usize = 15_000_000;

struct Fields {
    schema: Schema,
    doc_key: Field,
    tenant: Field,
    after_sale_id: Field,
    order_id: Field,
    version: Field,
    status: Field,
    kind: Field,
    channel: Field,
    merchant_id: Field,
    sku: Field,
    created_at: Field,
    updated_at: Field,
}

impl Fields {
    fn new() -> Fields {
        let mut builder = Schema::builder();
        let doc_key = builder.add_text_field("doc_key", STRING);
        let tenant = builder.add_text_field("tenant", STRING);
        let after_sale_id = builder.add_u64_field(AFTER_SALE_ID, INDEXED | FAST);
        let order_id = builder.add_u64_field("order_id", INDEXED);
        let version = builder.add_u64_field(VERSION, FAST);
        let status = builder.add_text_field("status", STRING);
        let kind = builder.add_text_field("kind", STRING);
        let channel = builder.add_text_field("channel", STRING);
        let merchant_id = builder.add_text_field("merchant_id", STRING);
        let sku = builder.add_text_field("sku", STRING);
        let created_at = builder.add_i64_field(CREATED_AT, INDEXED | FAST);
        let updated_at = builder.add_i64_field("updated_at", FAST);
        Fields {
            schema: builder.build(),
            doc_key,
            tenant,
            after_sale_id,
            order_id,
            version,
            status,
            kind,
            channel,
            merchant_id,
            sku,
            created_at,
            updated_at,
        }
    }

    fn to_document(&self, doc: &AfterSaleDocument) -> TantivyDocument {
        let mut out = TantivyDocument::new();
        out.add_text(
            self.doc_key,
            doc_key(doc.tenant.as_str(), doc.after_sale_id),
        );
        out.add_text(self.tenant, doc.tenant.as_str());
        out.add_u64(self.after_sale_id, doc.after_sale_id.get());
        out.add_u64(self.order_id, doc.order_id.get());
        out.add_u64(self.version, doc.version);
        out.add_text(self.status, doc.status.as_str());
        out.add_text(self.kind, doc.kind.as_str());
        out.add_text(self.channel, doc.channel.as_str());
        if let Some(merchant) = &doc.merchant_id {
            out.add_text(self.merchant_id, merchant.as_str());
        }
        for sku in &doc.skus {
            out.add_text(self.sku, sku);
        }
        out.add_i64(self.created_at, epoch_millis(doc.created_at));
        out.add_i64(self.updated_at, epoch_millis(doc.updated_at));
        out
    }
}

fn doc_key(tenant: &str, id: AfterSaleId) -> String {
    format!("{tenant}/{id}")
}

struct WriterState {
    writer: IndexWriter<TantivyDocument>,
    /// Versions written since the last commit, by document key.
    pending: HashMap<String, u64>,
}

pub(super) struct AfterSaleIndex {
    fields: Fields,
    reader: IndexReader,
    writer: Mutex<WriterState>,
}

impl AfterSaleIndex {
    /// Open (or create) the after-sale index; `order_index_dir` is the order index's
    /// directory (`None`: in memory).
    pub(super) fn open(order_index_dir: Option<&Path>) -> DomainResult<AfterSaleIndex> {
        let fields = Fields::new();
        let index = match order_index_dir {
            Some(dir) => {
                let path = dir.join("after_sales");
                std::fs::create_dir_all(&path).map_err(|e| {
                    DomainError::unavailable(format!(
                        "cannot create after-sale index directory {}: {e}",
                        path.display()
                    ))
                })?;
                let directory = MmapDirectory::open(&path).map_err(|e| {
                    DomainError::unavailable(format!(
                        "cannot open after-sale index directory {}: {e}",
                        path.display()
                    ))
                })?;
                Index::open_or_create(directory, fields.schema.clone()).map_err(|e| {
                    DomainError::internal(format!(
                        "after-sale index at {} cannot be opened with this schema \
                         (remove it and rebuild with a backfill): {e}",
                        path.display()
                    ))
                })?
            }
            None => Index::create_in_ram(fields.schema.clone()),
        };
        let writer = index
            .writer_with_num_threads(1, WRITER_MEMORY_BYTES)
            .map_err(engine_error)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(engine_error)?;
        Ok(AfterSaleIndex {
            fields,
            reader,
            writer: Mutex::new(WriterState {
                writer,
                pending: HashMap::new(),
            }),
        })
    }

    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn version_locked(&self, state: &WriterState, key: &str) -> DomainResult<Option<u64>> {
        if let Some(pending) = state.pending.get(key) {
            return Ok(Some(*pending));
        }
        highest_version(
            &self.reader.searcher(),
            Term::from_field_text(self.fields.doc_key, key),
        )
    }

    /// Write unless the same or a newer version is held; `commit_now` under
    /// [`super::CommitPolicy::EveryWrite`].
    pub(super) fn upsert(&self, doc: &AfterSaleDocument, commit_now: bool) -> DomainResult<bool> {
        let key = doc_key(doc.tenant.as_str(), doc.after_sale_id);
        let mut state = self.lock_writer();
        let held = self.version_locked(&state, &key)?;
        if held.is_some_and(|held| held >= doc.version) {
            return Ok(false);
        }
        state
            .writer
            .delete_term(Term::from_field_text(self.fields.doc_key, &key));
        state
            .writer
            .add_document(self.fields.to_document(doc))
            .map_err(engine_error)?;
        state.pending.insert(key, doc.version);
        if commit_now {
            self.commit_locked(state)?;
        }
        Ok(true)
    }

    pub(super) fn version(&self, tenant: &TenantId, id: AfterSaleId) -> DomainResult<Option<u64>> {
        let key = doc_key(tenant.as_str(), id);
        let state = self.lock_writer();
        self.version_locked(&state, &key)
    }

    pub(super) fn commit(&self) -> DomainResult<()> {
        let state = self.lock_writer();
        if state.pending.is_empty() {
            return Ok(());
        }
        self.commit_locked(state)
    }

    fn commit_locked(&self, mut state: MutexGuard<'_, WriterState>) -> DomainResult<()> {
        state.writer.commit().map_err(engine_error)?;
        self.reader.reload().map_err(engine_error)?;
        state.pending.clear();
        Ok(())
    }

    fn term(&self, field: Field, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, value),
            IndexRecordOption::Basic,
        ))
    }

    /// The tenant clause, every filter of `query` and the page position: the only way a
    /// query on this index is built.
    fn tenant_scoped(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
        after: Option<&Cursor>,
    ) -> BooleanQuery {
        let fields = &self.fields;
        let mut clauses: Vec<Box<dyn Query>> = vec![self.term(fields.tenant, tenant.as_str())];
        if !query.statuses.is_empty() {
            clauses.push(Box::new(TermSetQuery::new(query.statuses.iter().map(
                |status| Term::from_field_text(fields.status, status.as_str()),
            ))));
        }
        if let Some(kind) = query.kind {
            clauses.push(self.term(fields.kind, kind.as_str()));
        }
        if let Some(channel) = query.channel {
            clauses.push(self.term(fields.channel, channel.as_str()));
        }
        if let Some(merchant) = &query.merchant_id {
            clauses.push(self.term(fields.merchant_id, merchant.as_str()));
        }
        if let Some(order) = query.order_id {
            clauses.push(Box::new(TermQuery::new(
                Term::from_field_u64(fields.order_id, order.get()),
                IndexRecordOption::Basic,
            )));
        }
        if let Some(sku) = &query.sku {
            clauses.push(self.term(fields.sku, sku));
        }
        let range = query.created_at;
        if range.from.is_some() || range.to.is_some() {
            let lower = range
                .from
                .map_or(Bound::Unbounded, |at| Bound::Included(epoch_millis(at)));
            let upper = range
                .to
                .map_or(Bound::Unbounded, |at| Bound::Excluded(epoch_millis(at)));
            clauses.push(self.created_range(lower, upper));
        }
        if let Some(cursor) = after {
            // newest first: an older time, or the same time and a smaller id
            let same_time_smaller_id = BooleanQuery::new(vec![
                (
                    Occur::Must,
                    self.created_range(Bound::Included(cursor.key), Bound::Included(cursor.key)),
                ),
                (
                    Occur::Must,
                    Box::new(RangeQuery::new(
                        Bound::Unbounded,
                        Bound::Excluded(Term::from_field_u64(
                            fields.after_sale_id,
                            cursor.order_id.get(),
                        )),
                    )) as Box<dyn Query>,
                ),
            ]);
            clauses.push(Box::new(BooleanQuery::new(vec![
                (
                    Occur::Should,
                    self.created_range(Bound::Unbounded, Bound::Excluded(cursor.key)),
                ),
                (Occur::Should, Box::new(same_time_smaller_id)),
            ])));
        }
        BooleanQuery::new(
            clauses
                .into_iter()
                .map(|clause| (Occur::Must, clause))
                .collect(),
        )
    }

    fn created_range(&self, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
        let to_term = |value| Term::from_field_i64(self.fields.created_at, value);
        Box::new(RangeQuery::new(lower.map(to_term), upper.map(to_term)))
    }

    pub(super) fn search(
        &self,
        tenant: &TenantId,
        query: &AfterSaleQuery,
    ) -> DomainResult<AfterSalePage> {
        query.validate()?;
        let after = query
            .cursor
            .as_deref()
            .map(|text| Cursor::decode(text, SORT))
            .transpose()?;
        let page_query = self.tenant_scoped(tenant, query, after.as_ref());
        let limit = query.limit as usize;
        let collector = TopDocs::with_limit(limit + 1).order_by((
            (
                SortByStaticFastValue::<i64>::for_field(CREATED_AT),
                tantivy::Order::Desc,
            ),
            (
                SortByStaticFastValue::<u64>::for_field(AFTER_SALE_ID),
                tantivy::Order::Desc,
            ),
        ));
        let searcher = self.reader.searcher();
        let found = searcher
            .search(&page_query, &collector)
            .map_err(engine_error)?;
        let mut hits = Vec::with_capacity(limit.min(found.len()));
        let mut last = None;
        for ((key, id), address) in found.iter().take(limit) {
            let (Some(key), Some(id)) = (key, id) else {
                return Err(DomainError::internal(
                    "indexed after-sale without a sort key",
                ));
            };
            let versions = searcher
                .segment_reader(address.segment_ord)
                .fast_fields()
                .u64(VERSION)
                .map_err(engine_error)?;
            hits.push(AfterSaleHit {
                after_sale_id: AfterSaleId::from_raw(*id)?,
                version: versions.first(address.doc_id).unwrap_or_default(),
            });
            last = Some((*key, *id));
        }
        let next_cursor = match last {
            Some((key, id)) if found.len() > limit => Some(
                Cursor {
                    sort: SORT,
                    key,
                    order_id: OrderId::from_raw(id)?,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(AfterSalePage { hits, next_cursor })
    }
}
