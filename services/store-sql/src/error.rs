//! sqlx errors → domain errors, in one place (duplicate key → AlreadyExists,
//! deadlock / busy → Retryable, pool exhaustion and I/O → Unavailable).

use oc_model::{DomainError, ErrorCode};
use sqlx::error::ErrorKind;

/// What a unique-key violation was about, so a caller can tell an idempotency replay from a
/// duplicate external reference.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation)
}

/// The connection itself failed (the server closed it, the socket broke) before the statement
/// was answered. Only the caller knows whether retrying on another connection is safe.
pub(crate) fn is_connection_lost(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_))
}

pub(crate) fn convert(error: sqlx::Error) -> DomainError {
    match &error {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            if db.kind() == ErrorKind::UniqueViolation {
                return DomainError::new(
                    ErrorCode::AlreadyExists,
                    "a record with the same key exists",
                );
            }
            // MySQL: 1213 deadlock (SQLSTATE 40001), 1205 lock wait timeout; SQLite: 5 busy, 6 locked
            let retryable = matches!(
                code.as_str(),
                "40001" | "HY000" | "1213" | "1205" | "5" | "6" | "517"
            ) && (db.message().contains("Deadlock")
                || db.message().contains("Lock wait timeout")
                || db.message().contains("database is locked")
                || db.message().contains("busy")
                || code == "40001"
                || code == "5"
                || code == "6"
                || code == "517");
            if retryable {
                return DomainError::new(
                    ErrorCode::Retryable,
                    "transient conflict in the order store, retry",
                );
            }
            tracing::error!(error = %error, code, "order store database error");
            DomainError::internal("order store database error")
        }
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => {
            tracing::warn!(error = %error, "order store unavailable");
            DomainError::unavailable("order store unavailable")
        }
        _ => {
            tracing::error!(error = %error, "order store error");
            DomainError::internal("order store error")
        }
    }
}

/// A failed write statement: the database's own error (for the caller to classify a unique
/// violation) or one already converted.
pub(crate) enum WriteError {
    Sql(sqlx::Error),
    Domain(DomainError),
}

impl From<sqlx::Error> for WriteError {
    fn from(error: sqlx::Error) -> Self {
        WriteError::Sql(error)
    }
}

impl From<DomainError> for WriteError {
    fn from(error: DomainError) -> Self {
        WriteError::Domain(error)
    }
}

impl WriteError {
    pub(crate) fn into_domain(self) -> DomainError {
        match self {
            WriteError::Sql(e) => convert(e),
            WriteError::Domain(e) => e,
        }
    }
}
