//! Request bodies: size-limited and parsed as JSON with errors that say where and what.
//!
//! warp's own `content_length_limit` only looks at the `Content-Length` header; this filter
//! also counts the bytes as they arrive, so a chunked body cannot exceed the limit either.

use super::error::ApiError;
use bytes::Buf;
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::Filter;

/// A filter reading at most `limit` bytes of body and parsing them as `T`.
pub fn json<T: DeserializeOwned + Send + 'static>(
    limit: usize,
) -> impl Filter<Extract = (T,), Error = warp::Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |length: Option<u64>, body| async move {
            if length.is_some_and(|n| n > limit as u64) {
                return Err(warp::reject::custom(ApiError::too_large(limit)));
            }
            let bytes = read(body, limit).await?;
            parse(&bytes).map_err(warp::reject::custom)
        })
}

/// Collects the body, failing as soon as it exceeds `limit`.
async fn read<B: Buf>(body: impl Stream<Item = Result<B, warp::Error>>, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading the body failed: {e}")))?;
        if bytes.len() + chunk.remaining() > limit {
            return Err(ApiError::too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            bytes.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(bytes)
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::malformed_json("the request needs a JSON body"));
    }
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::bad_request(format!("invalid request: {e}")),
        _ => ApiError::malformed_json(format!("the body is not valid JSON: {e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Request {
        name: String,
    }

    #[test]
    fn syntax_and_shape_errors_are_told_apart() {
        assert_eq!(parse::<Request>(b"{\"name\":").unwrap_err().code, "malformed_json");
        assert_eq!(parse::<Request>(b"").unwrap_err().code, "malformed_json");
        let wrong = parse::<Request>(b"{\"nme\":\"x\"}").unwrap_err();
        assert_eq!(wrong.code, "bad_request");
        assert!(wrong.message.contains("nme"), "{}", wrong.message);
        assert_eq!(parse::<Request>(b"{\"name\":\"x\"}").unwrap().name, "x");
    }
}
