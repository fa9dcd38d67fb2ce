//! RFC 9457 problem details. Every error leaves the API as `application/problem+json` with a
//! stable machine-readable `code` and, for input errors, the offending `field` as a JSON
//! Pointer into the request body (or `/query/...`, `/header/...`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use oc_model::{DomainError, ErrorCode};

/// The one mapping from error code to HTTP status.
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists
        | ErrorCode::Conflict
        | ErrorCode::InvalidTransition
        | ErrorCode::OutOfStock => StatusCode::CONFLICT,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable | ErrorCode::Retryable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn title_of(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidInput => "Invalid input",
        ErrorCode::NotFound => "Not found",
        ErrorCode::AlreadyExists => "Already exists",
        ErrorCode::Conflict => "Conflict",
        ErrorCode::PreconditionFailed => "Precondition failed",
        ErrorCode::InvalidTransition => "Transition not allowed",
        ErrorCode::OutOfStock => "Out of stock",
        ErrorCode::Unauthenticated => "Unauthenticated",
        ErrorCode::Forbidden => "Forbidden",
        ErrorCode::RateLimited => "Too many requests",
        ErrorCode::Unavailable => "Service unavailable",
        ErrorCode::Retryable => "Temporarily unavailable",
        ErrorCode::Internal => "Internal error",
    }
}

/// The problem+json body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: ErrorCode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// A handler error. Internal errors are logged with their message and answered opaquely.
#[derive(Debug)]
pub struct ApiError {
    pub error: DomainError,
    /// Extra headers (e.g. `Retry-After`, `WWW-Authenticate`).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Overrides the status mapped from the code (428 for a missing If-Match).
    pub status: Option<StatusCode>,
}

impl ApiError {
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }

    pub fn problem(&self) -> Problem {
        let code = self.error.code;
        let status = self.status.unwrap_or_else(|| status_of(code));
        let detail = if code == ErrorCode::Internal {
            "the server could not complete the request; it has been logged".to_owned()
        } else {
            self.error.message.clone()
        };
        Problem {
            type_uri: format!(
                "https://ordercenter.dev/problems/{}",
                code.as_str().replace('_', "-")
            ),
            title: title_of(code),
            status: status.as_u16(),
            detail,
            code,
            field: self.error.field.clone().filter(|f| !f.is_empty()),
        }
    }
}

impl From<DomainError> for ApiError {
    fn from(error: DomainError) -> Self {
        ApiError {
            error,
            headers: Vec::new(),
            status: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.error.code == ErrorCode::Internal {
            tracing::error!(error = %self.error.message, "internal error");
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_internal_details_stay_inside() {
        for code in ErrorCode::ALL {
            let status = status_of(code);
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{code}"
            );
        }
        let problem = ApiError::from(DomainError::internal("password=hunter2 in sql")).problem();
        assert_eq!(problem.status, 500);
        assert!(!problem.detail.contains("hunter2"));
        let problem = ApiError::from(DomainError::invalid(
            "/lines/0/quantity",
            "must be at least 1",
        ))
        .problem();
        assert_eq!(problem.field.as_deref(), Some("/lines/0/quantity"));
        assert_eq!(
            problem.type_uri,
            "https://ordercenter.dev/problems/invalid-input"
        );
    }
}
