//! Response handling: pure functions from Elasticsearch status codes and JSON bodies to
//! domain results. Golden-tested against response shapes from the Elasticsearch docs.

use oc_model::search::{SearchHit, SearchPage, SearchSort, TotalHits};
use oc_model::{DomainError, DomainResult, ErrorCode, OrderId};
use serde_json::Value;

use crate::cursor::Cursor;

/// The `error.type` of an Elasticsearch error body, if any.
pub fn error_type(body: &Value) -> Option<&str> {
    body.pointer("/error/type").and_then(Value::as_str)
}

fn error_reason(body: &Value) -> String {
    body.pointer("/error/reason")
        .and_then(Value::as_str)
        .map_or_else(|| body.to_string(), str::to_owned)
}

/// Failures every request shares: throttling and server errors are retryable
/// unavailability; anything else unexpected is internal (a bug or a mapping mismatch).
pub fn unexpected(operation: &str, status: u16, body: &Value) -> DomainError {
    let message = format!(
        "elasticsearch {operation}: status {status}, {}: {}",
        error_type(body).unwrap_or("no error type"),
        error_reason(body)
    );
    if status == 429 || status >= 500 {
        DomainError::unavailable(message)
    } else {
        DomainError::internal(message)
    }
}

/// The outcome of an externally versioned index request: written, or stale (409
/// `version_conflict_engine_exception`: the index holds the same or a newer version).
///
/// A failure is classified for the projector ([`oc_model::ErrorCode::is_transient`]):
/// - refused *for this document* (400 `mapper_parsing_exception`,
///   `document_parsing_exception`, `illegal_argument_exception` such as an immense term,
///   `strict_dynamic_mapping_exception`; 413 too large): `InvalidInput`, permanent: the
///   same document is refused again, other documents go in;
/// - refused *for every document* (401/403: credentials, or a `cluster_block_exception` when
///   the disk is full and the index read-only; 404: the tenant's alias is missing; 408;
///   429 throttling; 5xx): `Unavailable`, transient: the index must be fixed or come back,
///   and the projector stalls rather than dead-letter every order;
/// - anything else is unexpected: `Internal` (permanent for the document).
pub fn index_outcome(status: u16, body: &Value) -> DomainResult<bool> {
    match status {
        200 | 201 => Ok(true),
        409 if error_type(body) == Some("version_conflict_engine_exception") => Ok(false),
        404 => Err(DomainError::unavailable(format!(
            "elasticsearch index: the tenant's alias is missing (create the index first): {}",
            error_reason(body)
        ))),
        400 | 413 => Err(DomainError::new(
            ErrorCode::InvalidInput,
            format!(
                "elasticsearch refused the document: status {status}, {}: {}",
                error_type(body).unwrap_or("no error type"),
                error_reason(body)
            ),
        )),
        401 | 403 | 408 => Err(DomainError::unavailable(format!(
            "elasticsearch refused every write: status {status}, {}: {}",
            error_type(body).unwrap_or("no error type"),
            error_reason(body)
        ))),
        _ => Err(unexpected("index", status, body)),
    }
}

/// The version a get-by-id answer reports; `None` when the document (or the tenant's
/// index) does not exist.
pub fn parse_get_version(status: u16, body: &Value) -> DomainResult<Option<u64>> {
    match status {
        200 if body.get("found").and_then(Value::as_bool) == Some(true) => body
            .get("_version")
            .and_then(Value::as_u64)
            .map(Some)
            .ok_or_else(|| {
                DomainError::internal("elasticsearch get: no _version in a found document")
            }),
        200 | 404 => Ok(None),
        _ => Err(unexpected("get", status, body)),
    }
}

/// A delete succeeds whether or not the document existed.
pub fn delete_outcome(status: u16, body: &Value) -> DomainResult<()> {
    match status {
        200 | 404 => Ok(()),
        _ => Err(unexpected("delete", status, body)),
    }
}

/// One hit of a search answer: its document id, version and first sort key.
pub(crate) struct Hit<Id> {
    pub id: Id,
    pub version: u64,
    pub key: i64,
}

/// The hits of a search answer, at most `limit`, and whether it held more (the next page
/// starts after the last one): the checks every search answer gets (timed out, failed
/// shards, the hits array; each hit's `_id` parsed as `Id`, `_version`, numeric sort key).
/// `search` names the request in errors, `id_kind` what `_id` should be.
pub(crate) fn parse_hits<Id: std::str::FromStr>(
    body: &Value,
    limit: u32,
    search: &str,
    id_kind: &str,
) -> DomainResult<(Vec<Hit<Id>>, bool)> {
    let malformed = |what: &str| DomainError::internal(format!("{search}: {what}"));
    if body.get("timed_out").and_then(Value::as_bool) == Some(true) {
        return Err(DomainError::unavailable("elasticsearch search timed out"));
    }
    if let Some(failed) = body.pointer("/_shards/failed").and_then(Value::as_u64)
        && failed > 0
    {
        return Err(DomainError::unavailable(format!(
            "elasticsearch search: {failed} shard(s) failed"
        )));
    }
    let raw_hits = body
        .pointer("/hits/hits")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no hits array"))?;
    let limit = limit as usize;
    let mut hits = Vec::with_capacity(raw_hits.len().min(limit));
    for raw in raw_hits.iter().take(limit) {
        let id = raw
            .get("_id")
            .and_then(Value::as_str)
            .ok_or_else(|| malformed("hit without _id"))?
            .parse()
            .map_err(|_| malformed(&format!("hit _id is not {id_kind}")))?;
        let version = raw
            .get("_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("hit without _version"))?;
        let key = raw
            .pointer("/sort/0")
            .and_then(Value::as_i64)
            .ok_or_else(|| malformed("hit without a numeric sort key"))?;
        hits.push(Hit { id, version, key });
    }
    Ok((hits, raw_hits.len() > limit))
}

/// The page of a search answer to a body from
/// [`build_search_body`](super::request::build_search_body) (which asked `limit + 1` hits).
pub fn parse_search_response(
    body: &Value,
    sort: SearchSort,
    limit: u32,
) -> DomainResult<SearchPage> {
    let (found, more) = parse_hits::<OrderId>(body, limit, "elasticsearch search", "an order id")?;
    let hits = found
        .iter()
        .map(|hit| SearchHit {
            order_id: hit.id,
            version: hit.version,
        })
        .collect();
    let next_cursor = found.last().filter(|_| more).map(|hit| {
        Cursor {
            sort,
            key: hit.key,
            order_id: hit.id,
        }
        .encode()
    });
    let total = body.pointer("/hits/total").and_then(|total| {
        Some(TotalHits {
            value: total.get("value")?.as_u64()?,
            exact: total.get("relation").and_then(Value::as_str) == Some("eq"),
        })
    });
    Ok(SearchPage {
        hits,
        next_cursor,
        total,
    })
}
