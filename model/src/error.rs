//! Domain errors: a small, closed set of codes that every layer maps the same way.
//!
//! Policy: the domain and every adapter return [`DomainError`]. The HTTP layer maps
//! [`ErrorCode`] to a status with one function; `Internal` errors are logged with their cause
//! and answered opaquely. `anyhow` is only used outside the request path (CLI, start-up).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The closed set of machine-readable error codes. Stable: clients match on these strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The input is malformed or violates a constraint; `field` names the offending path.
    InvalidInput,
    /// The resource does not exist for this tenant (also used for other tenants' resources).
    NotFound,
    /// A resource with the same identity exists already.
    AlreadyExists,
    /// The request conflicts with earlier state (e.g. an idempotency key reused with another body).
    Conflict,
    /// An optimistic-concurrency precondition (version / If-Match) did not hold.
    PreconditionFailed,
    /// The order's state machine does not allow this transition from the current status.
    InvalidTransition,
    /// Not enough stock of a SKU for the order; `field` names the line, the message the SKU.
    OutOfStock,
    /// No or bad credentials.
    Unauthenticated,
    /// Authenticated, but the role may not do this.
    Forbidden,
    /// Too many requests for this tenant or key.
    RateLimited,
    /// A dependency is down or overloaded; retrying later may succeed.
    Unavailable,
    /// A transient conflict inside a store (deadlock, serialization failure); safe to retry.
    Retryable,
    /// A bug or an unexpected failure; never echoed to clients in detail.
    Internal,
}

impl ErrorCode {
    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::InvalidInput,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::Conflict,
        ErrorCode::PreconditionFailed,
        ErrorCode::InvalidTransition,
        ErrorCode::OutOfStock,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Retryable,
        ErrorCode::Internal,
    ];

    /// The code named `name` (its [`ErrorCode::as_str`]), e.g. when read back from a table.
    pub fn parse(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
    }

    /// Whether a failure with this code is about the *dependency* rather than the item it was
    /// given: the same call may succeed later (it is down, overloaded, throttling, or lost a
    /// race). Every other code is *permanent for that item*: the dependency answered, and
    /// it refuses this item (a document its mapping cannot hold, an argument it rejects, a
    /// bug in what we sent), so retrying the same item cannot help while other items go
    /// through.
    ///
    /// Adapters choose the code with this in mind: a failure every item would hit (no
    /// connection, bad credentials, a read-only cluster, a protocol mismatch) is
    /// `Unavailable`, even when it is a misconfiguration, so a consumer stalls on it instead
    /// of giving up on every item; a refusal of one item is `InvalidInput` (or `Internal`
    /// when the answer itself is unexpected).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorCode::Unavailable | ErrorCode::Retryable | ErrorCode::RateLimited
        )
    }

    /// The stable snake_case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::OutOfStock => "out_of_stock",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Retryable => "retryable",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain error: a code, a human message and, for input errors, the field path
/// (a JSON Pointer such as `/lines/0/quantity` or `/extension/temperature_max`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DomainError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// The call was refused before anything was sent to the dependency (a circuit breaker
    /// open, or half-open with every probe slot taken). Such an error tells about the
    /// dependency's recent past and nothing about the item it was given, so a consumer that
    /// judges an item by its failures (the projector's dead-letter rule) passes over it.
    pub unsent: bool,
}

impl DomainError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DomainError {
            code,
            message: message.into(),
            field: None,
            unsent: false,
        }
    }

    /// An input error that names the offending field by JSON Pointer.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError {
            code: ErrorCode::InvalidInput,
            message: message.into(),
            field: Some(field.into()),
            unsent: false,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The same error, marked as refused before anything was sent ([`DomainError::unsent`]).
    pub fn refused_unsent(mut self) -> Self {
        self.unsent = true;
        self
    }

    /// See [`ErrorCode::is_transient`]: retrying may succeed; otherwise the failure is
    /// permanent for the item that was refused.
    pub fn is_transient(&self) -> bool {
        self.code.is_transient()
    }

    /// Prefix the field path, for errors raised by a nested validator.
    pub fn under(mut self, parent: &str) -> Self {
        self.field = Some(match self.field {
            Some(child) => format!("{parent}{child}"),
            None => parent.to_owned(),
        });
        self
    }
}

pub type DomainResult<T> = Result<T, DomainError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_back_from_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::parse("nonsense"), None);
    }

    #[test]
    fn only_dependency_failures_are_transient() {
        let transient: Vec<ErrorCode> = ErrorCode::ALL
            .into_iter()
            .filter(|code| code.is_transient())
            .collect();
        assert_eq!(
            transient,
            [
                ErrorCode::RateLimited,
                ErrorCode::Unavailable,
                ErrorCode::Retryable
            ]
        );
    }
}
