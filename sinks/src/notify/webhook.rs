//! The generic webhook: the [`AlertEvent`] itself as the JSON body (documented in
//! `docs/alerts.md`), with the id also in an `X-Tidemark-Alert-Id` header so a receiver can
//! deduplicate before parsing.

use super::format::header_token;
use super::http::HttpTarget;
use super::transport::{Outcome, Transport};
use tidemark_schemas::AlertEvent;

/// Posts alert events to one URL.
pub struct Webhook {
    http: HttpTarget,
    headers: Vec<(String, String)>,
    target: String,
}

impl Webhook {
    /// A transport posting through `http` with the configured `headers`; `url` is only for
    /// logs, and loses its query string there (it may hold a token).
    pub fn new(http: HttpTarget, url: &str, headers: Vec<(String, String)>) -> Self {
        let target = url.split(['?', '#']).next().unwrap_or_default().to_string();
        Webhook { http, headers, target }
    }
}

impl Transport for Webhook {
    fn send(&mut self, event: &AlertEvent) -> Outcome {
        let body = match serde_json::to_vec(event) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Refused {
                    status: None,
                    response: format!("the event does not serialize: {e}"),
                };
            }
        };
        let mut headers = self.headers.clone();
        headers.push(("X-Tidemark-Alert-Id".into(), header_token(&event.id)));
        self.http.post_json(&body, &headers)
    }

    fn target(&self) -> &str {
        &self.target
    }
}
