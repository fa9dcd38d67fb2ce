//! Request extractors that turn every malformed input into a problem with a field path.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use oc_model::DomainError;

use crate::problem::ApiError;

/// Largest accepted request body; bigger bodies are refused before parsing.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// JSON body parsed with the path of the first offending field, as a JSON Pointer.
#[derive(Debug)]
pub struct ValidJson<T> {
    pub value: T,
    /// The body as a JSON value, for the idempotency hash.
    pub raw: serde_json::Value,
}

/// `lines[0].quantity` (serde_path_to_error) → `/lines/0/quantity`.
pub fn pointer_from_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            }
            Segment::Enum { variant } => pointer.push_str(&format!("/{variant}")),
            Segment::Unknown => pointer.push_str("/?"),
        }
    }
    pointer
}

/// Serde's wording for a struct ("expected struct CreateOrderRequest with 17 elements") names
/// our types; a client was sent a JSON object's shape, so say that.
fn plain_wording(message: &str) -> String {
    match message.find("expected struct ") {
        Some(at) => format!("{}expected a JSON object", &message[..at]),
        None => message.to_owned(),
    }
}

/// Where a JSON array stands for an object. Serde reads a struct from an array too (its
/// members by position), so an array body fails at `/0` with a complaint about its first
/// element. Each array on the failing path is probed by emptying it: a struct then says
/// "expected struct …" at the array itself, a list does not.
fn array_given_for_object<T: DeserializeOwned>(
    raw: &serde_json::Value,
    path: &serde_path_to_error::Path,
) -> Option<String> {
    use serde_path_to_error::Segment;
    let mut prefixes = vec![String::new()];
    let mut pointer = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => pointer.push_str(&format!("/{index}")),
            Segment::Map { key } => {
                pointer.push_str(&format!("/{}", key.replace('~', "~0").replace('/', "~1")))
            }
            Segment::Enum { .. } | Segment::Unknown => break,
        }
        prefixes.push(pointer.clone());
    }
    prefixes.into_iter().find(|prefix| {
        if !raw.pointer(prefix).is_some_and(serde_json::Value::is_array) {
            return false;
        }
        let mut probe = raw.clone();
        if let Some(node) = probe.pointer_mut(prefix) {
            *node = serde_json::Value::Array(Vec::new());
        }
        match serde_path_to_error::deserialize::<_, T>(&probe) {
            Ok(_) => false,
            Err(e) => {
                &pointer_from_path(e.path()) == prefix
                    && e.inner().to_string().contains("expected struct ")
            }
        }
    })
}

/// Parse JSON bytes into `T`, naming the field that failed.
pub fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
) -> Result<(T, serde_json::Value), DomainError> {
    let raw: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| DomainError::invalid("", format!("request body is not valid JSON: {e}")))?;
    let value = serde_path_to_error::deserialize(&raw).map_err(|e| {
        if let Some(pointer) = array_given_for_object::<T>(&raw, e.path()) {
            return DomainError::invalid(pointer, "invalid type: array, expected a JSON object");
        }
        let pointer = pointer_from_path(e.path());
        // "unknown field `x`" errors point at the parent: name the field itself
        let message = e.inner().to_string();
        let pointer = match message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            Some(field) if !pointer.ends_with(&format!("/{field}")) => format!("{pointer}/{field}"),
            _ => pointer,
        };
        DomainError::invalid(pointer, plain_wording(&message))
    })?;
    Ok((value, raw))
}

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let essence = v
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
        if !is_json {
            return Err(DomainError::invalid(
                "/header/content-type",
                "expected Content-Type: application/json",
            )
            .into());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::from(DomainError::invalid(
                    "",
                    format!("cannot read request body: {rejection}"),
                ))
                .with_status(rejection.status())
            })?;
        let (value, raw) = parse_json(&bytes)?;
        Ok(ValidJson { value, raw })
    }
}

/// Query string parsed with a field path (`/query/limit`).
#[derive(Debug)]
pub struct ValidQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let pairs: Vec<(String, String)> = url_pairs(query)?;
        let mut map = serde_json::Map::new();
        for (key, value) in pairs {
            if map
                .insert(key.clone(), serde_json::Value::String(value))
                .is_some()
            {
                return Err(
                    DomainError::invalid(format!("/query/{key}"), "parameter given twice").into(),
                );
            }
        }
        let value =
            serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
                DomainError::invalid(
                    format!("/query{}", pointer_from_path(e.path())),
                    e.inner().to_string(),
                )
            })?;
        Ok(ValidQuery(value))
    }
}

/// Minimal application/x-www-form-urlencoded decoding for query strings.
fn url_pairs(query: &str) -> Result<Vec<(String, String)>, DomainError> {
    let decode = |text: &str| -> Result<String, DomainError> {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            match bytes[index] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = bytes
                        .get(index + 1..index + 3)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| {
                            DomainError::invalid("/query", "malformed percent-encoding")
                        })?;
                    out.push(hex);
                    index += 2;
                }
                other => out.push(other),
            }
            index += 1;
        }
        String::from_utf8(out).map_err(|_| DomainError::invalid("/query", "query is not UTF-8"))
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Numbers in query strings arrive as strings: accept them for integer parameters.
pub mod number_from_string {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        raw.map(|text| {
            text.parse::<u32>()
                .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a whole number")))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        lines: Vec<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        quantity: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let err =
            parse_json::<Outer>(br#"{"lines":[{"quantity":1},{"quantity":-1}]}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("/lines/1/quantity"));
        let err = parse_json::<Outer>(br#"{"lines":[{"quantity":1,"qty":2}]}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("/lines/0/qty"));
        let err = parse_json::<Outer>(b"{").unwrap_err();
        assert_eq!(err.field.as_deref(), Some(""));
    }

    #[test]
    fn query_decoding() {
        assert_eq!(
            url_pairs("a=1&b=x%20y+z").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x y z".into())]
        );
        assert!(url_pairs("a=%zz").is_err());
        assert!(url_pairs("a=%ff").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_json::<Outer>(&bytes);
            let _ = parse_json::<crate::dto::CreateOrderRequest>(&bytes);
            let _ = parse_json::<crate::dto::UpdateOrderRequest>(&bytes);
        }

        #[test]
        fn arbitrary_json_never_panics(json in crate::tests_support::arb_json()) {
            let bytes = serde_json::to_vec(&json).unwrap();
            let _ = parse_json::<crate::dto::CreateOrderRequest>(&bytes);
            let _ = parse_json::<crate::dto::UpdateOrderRequest>(&bytes);
        }

        #[test]
        fn arbitrary_queries_never_panic(query in "\\PC{0,64}") {
            let _ = url_pairs(&query);
        }
    }
}
