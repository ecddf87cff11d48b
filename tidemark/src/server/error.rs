//! API errors: every failure is a JSON body `{"error": code, "message": text}` with the
//! matching status, so clients and people see what went wrong and how to fix it.

use serde::Serialize;
use std::convert::Infallible;
use warp::http::StatusCode;
use warp::http::header::{HeaderValue, RETRY_AFTER};
use warp::reject::Rejection;
use warp::reply::{Reply, Response};

/// A request failed.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `unauthorized`.
    pub code: &'static str,
    /// What went wrong and how to fix it.
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

impl warp::reject::Reject for ApiError {}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400: a parameter or field is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400: the body is not JSON.
    pub fn malformed_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_json", message)
    }

    /// 401: no key, or an unknown one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403: the key's role does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404: nothing by that name.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413: the body exceeds the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes (server.max_body_bytes)"),
        )
    }

    /// 429: the key's rate limit is exhausted.
    pub fn rate_limited(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("this API key's rate limit is exhausted; retry in {retry_after}s"),
            )
        }
    }

    /// 503: cannot serve right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The JSON response.
    pub fn response(&self) -> Response {
        let body = ErrorBody {
            error: self.code,
            message: &self.message,
        };
        let mut response = warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Turns every rejection, ours or warp's, into a JSON error.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    use warp::reject::{InvalidHeader, InvalidQuery, MethodNotAllowed, PayloadTooLarge};
    let error = if let Some(error) = rejection.find::<ApiError>() {
        return Ok(error.response());
    } else if rejection.is_not_found() {
        ApiError::not_found("no such endpoint; the API is described in docs/api.md and /api/v1/openapi.yaml")
    } else if rejection.find::<MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not accept that method; see /api/v1/openapi.yaml",
        )
    } else if rejection.find::<PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    } else if let Some(query) = rejection.find::<InvalidQuery>() {
        ApiError::bad_request(format!("invalid query string: {query}"))
    } else if let Some(header) = rejection.find::<InvalidHeader>() {
        ApiError::bad_request(header.to_string())
    } else {
        ApiError::bad_request(format!("the request could not be handled: {rejection:?}"))
    };
    Ok(error.response())
}
