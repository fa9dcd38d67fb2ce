//! Thrift and HBase errors → domain errors, in one place.
//!
//! Classified for the projector ([`oc_model::ErrorCode::is_transient`]): what every row
//! would hit is transient, what only this row hits is permanent for it.
//!
//! - transport failures (refused, reset, timed out) and HBase `IOError` (region moving,
//!   server busy, table disabled…) → `Unavailable`: a dependency problem, retry later;
//! - protocol errors (often a framed/buffered or binary/compact mismatch) and application
//!   errors (an unknown method) → `Unavailable` too: a misconfiguration of the connection
//!   that every call hits, so a consumer must stall on it (and the operator fix it), not
//!   give up on each order;
//! - `IllegalArgument` → `InvalidInput`: HBase refuses this request's row or cells (a cell
//!   over `hbase.client.keyvalue.maxsize`, a malformed row), permanent for this order;
//! - any other HBase exception → `Internal` (permanent for the order).

use hbase_thrift::hbase::{AlreadyExists, IOError, IllegalArgument};
use oc_model::{DomainError, ErrorCode};

/// What a call on one connection can fail with.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The wire or the server failed.
    Thrift(thrift::Error),
    /// The call went through but the domain says no (bad row, CAS exhausted…).
    Domain(DomainError),
}

impl From<thrift::Error> for CallError {
    fn from(error: thrift::Error) -> Self {
        CallError::Thrift(error)
    }
}

impl From<DomainError> for CallError {
    fn from(error: DomainError) -> Self {
        CallError::Domain(error)
    }
}

impl CallError {
    /// Whether the connection can still be used: only after a clean server answer. After a
    /// transport or protocol failure the stream may hold half a message, so it is dropped.
    pub(crate) fn connection_is_reusable(&self) -> bool {
        match self {
            CallError::Domain(_) => true,
            CallError::Thrift(thrift::Error::User(_) | thrift::Error::Application(_)) => true,
            CallError::Thrift(_) => false,
        }
    }
}

/// Whether a thrift error is HBase's `AlreadyExists` (a concurrent `createTable`).
pub(crate) fn is_already_exists(error: &thrift::Error) -> bool {
    matches!(error, thrift::Error::User(user) if user.downcast_ref::<AlreadyExists>().is_some())
}

pub(crate) fn convert(error: CallError) -> DomainError {
    let error = match error {
        CallError::Domain(domain) => return domain,
        CallError::Thrift(error) => error,
    };
    match &error {
        thrift::Error::Transport(transport) => {
            tracing::warn!(error = %transport, "hbase unreachable");
            DomainError::unavailable("cold store unavailable")
        }
        thrift::Error::User(user) => {
            if let Some(io) = user.downcast_ref::<IOError>() {
                tracing::warn!(
                    message = io.message.as_deref().unwrap_or_default(),
                    can_retry = io.can_retry.unwrap_or_default(),
                    "hbase io error"
                );
                return DomainError::unavailable("cold store unavailable");
            }
            if let Some(illegal) = user.downcast_ref::<IllegalArgument>() {
                tracing::error!(
                    message = illegal.message.as_deref().unwrap_or_default(),
                    "hbase refused an argument"
                );
                // the first line names the exception; the rest is the server's stack trace
                let reason = illegal
                    .message
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default();
                return DomainError::new(
                    ErrorCode::InvalidInput,
                    format!("cold store refused the row: {reason}"),
                );
            }
            if let Some(exists) = user.downcast_ref::<AlreadyExists>() {
                return DomainError::new(
                    ErrorCode::AlreadyExists,
                    exists.message.clone().unwrap_or_default(),
                );
            }
            tracing::error!(error = %user, "hbase error");
            DomainError::internal("cold store error")
        }
        thrift::Error::Protocol(_) | thrift::Error::Application(_) => {
            tracing::error!(%error, "hbase protocol error (check framed/compact settings)");
            DomainError::unavailable("cold store protocol error (check framed/compact settings)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(error: impl std::error::Error + Send + Sync + 'static) -> CallError {
        CallError::Thrift(thrift::Error::User(Box::new(error)))
    }

    /// The projector dead-letters permanent failures and stalls on transient ones, so what
    /// only this row hits must be permanent and what every call hits transient.
    #[test]
    fn errors_are_permanent_for_the_row_or_transient_for_the_store() {
        let refused = convert(user(IllegalArgument::new(
            "KeyValue size too large".to_owned(),
        )));
        assert_eq!(refused.code, ErrorCode::InvalidInput);
        assert!(!refused.is_transient());
        assert!(refused.message.contains("KeyValue size too large"));

        let busy = convert(user(IOError::new("region moving".to_owned(), true)));
        assert!(busy.is_transient(), "{busy}");

        let refused_connection = convert(CallError::Thrift(thrift::Error::Transport(
            thrift::TransportError::new(thrift::TransportErrorKind::NotOpen, "refused"),
        )));
        assert!(refused_connection.is_transient(), "{refused_connection}");

        let mismatch = convert(CallError::Thrift(thrift::Error::Protocol(
            thrift::ProtocolError::new(thrift::ProtocolErrorKind::BadVersion, "framed?"),
        )));
        assert!(
            mismatch.is_transient(),
            "a misconfiguration every call hits: {mismatch}"
        );

        let domain = convert(CallError::Domain(DomainError::internal("bug")));
        assert!(!domain.is_transient());
    }
}
