//! Posting JSON to a webhook with `ureq`, the blocking client the InfluxDB sink uses: delivery
//! runs on its own threads, so an async runtime would buy nothing.

use super::format::truncate;
use super::transport::Outcome;
use std::time::Duration;

/// One URL to post to.
pub struct HttpTarget {
    agent: ureq::Agent,
    url: String,
}

/// Longest response body kept in `failed/`.
const RESPONSE_LIMIT: usize = 4096;

impl HttpTarget {
    /// A target whose requests (connect, send, answer) take at most `timeout`. Redirects are
    /// not followed: a webhook that moved is a configuration to fix, and following it could
    /// send the alert somewhere unintended.
    pub fn new(url: String, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("tidemark/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        HttpTarget { agent, url }
    }

    /// Posts `body` as JSON with `headers`.
    pub fn post_json(&self, body: &[u8], headers: &[(String, String)]) -> Outcome {
        let mut request = self.agent.post(&self.url).content_type("application/json");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let mut response = match request.send(body) {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Transient {
                    reason: e.to_string(),
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.trim().parse().ok())
            .map(Duration::from_secs);
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_string()
            .unwrap_or_default();
        classify(status, retry_after, &text)
    }
}

/// 2xx is delivered; 408, 429 and 5xx are the receiver's momentary trouble; anything else
/// (other 4xx, 3xx) means this request will never be taken as it is.
fn classify(status: u16, retry_after: Option<Duration>, body: &str) -> Outcome {
    let response = truncate(body.trim(), RESPONSE_LIMIT);
    match status {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Transient {
            reason: format!("HTTP {status}: {response}"),
            retry_after,
        },
        _ => Outcome::Refused {
            status: Some(status),
            response,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        assert_eq!(classify(204, None, ""), Outcome::Delivered);
        assert!(matches!(classify(503, Some(Duration::from_secs(2)), "busy"),
            Outcome::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(2)));
        assert!(matches!(classify(429, None, ""), Outcome::Transient { .. }));
        assert_eq!(
            classify(400, None, " invalid_payload\n"),
            Outcome::Refused {
                status: Some(400),
                response: "invalid_payload".into()
            }
        );
        assert!(matches!(
            classify(301, None, ""),
            Outcome::Refused { status: Some(301), .. }
        ));
    }
}
