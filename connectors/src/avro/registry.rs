//! A client for the Confluent schema registry REST API, with a cache.
//!
//! Only the endpoints tidemark uses: `GET /schemas/ids/{id}`, `POST /subjects/{subject}/versions`
//! and `POST /compatibility/subjects/{subject}/versions/latest`. Schemas are immutable per id, so
//! the cache never expires; an unknown id is an input error (dead-lettered), an unreachable
//! registry is retried with backoff, since dead-lettering good data for an outage would lose it.

use apache_avro::Schema;
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use thiserror::Error;
use tracing::warn;

/// Why a registry call failed.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The registry has no schema with this id.
    #[error("schema id {0} is unknown to the registry")]
    UnknownId(u32),
    /// The registry's schema does not parse.
    #[error("schema id {id} does not parse: {error}")]
    Invalid {
        /// The id.
        id: u32,
        /// Why.
        error: String,
    },
    /// The registry answered with an error.
    #[error("schema registry: {0}")]
    Http(String),
}

/// A cached registry client.
pub struct SchemaRegistry {
    url: String,
    agent: ureq::Agent,
    cache: HashMap<u32, Schema>,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct CompatibilityResponse {
    is_compatible: bool,
}

/// Retries of a registry call that could not connect, at 0.5 s, 1 s, 2 s … 30 s apart.
const MAX_ATTEMPTS: u32 = 12;

impl SchemaRegistry {
    /// A client for the registry at `url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        SchemaRegistry {
            url: url.trim_end_matches('/').to_owned(),
            agent,
            cache: HashMap::new(),
        }
    }

    /// The schema with `id`, from the cache or the registry.
    pub fn schema(&mut self, id: u32) -> Result<&Schema, RegistryError> {
        if !self.cache.contains_key(&id) {
            let url = format!("{}/schemas/ids/{id}", self.url);
            let (status, body) = self.call(|agent| agent.get(&url).call())?;
            if status == 404 {
                return Err(RegistryError::UnknownId(id));
            }
            if status != 200 {
                return Err(RegistryError::Http(format!("GET {url} answered {status}: {body}")));
            }
            let response: SchemaResponse =
                serde_json::from_str(&body).map_err(|e| RegistryError::Http(format!("GET {url}: {e}")))?;
            let schema = Schema::parse_str(&response.schema).map_err(|e| RegistryError::Invalid {
                id,
                error: e.to_string(),
            })?;
            self.cache.insert(id, schema);
        }
        Ok(&self.cache[&id])
    }

    /// Registers `schema` under `subject` (idempotent) and returns its id.
    pub fn register(&mut self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let url = format!("{}/subjects/{subject}/versions", self.url);
        self.post_schema::<IdResponse>(&url, schema).map(|r| r.id)
    }

    /// Whether `schema` is compatible with the latest version under `subject`.
    pub fn is_compatible(&mut self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        let url = format!("{}/compatibility/subjects/{subject}/versions/latest", self.url);
        self.post_schema::<CompatibilityResponse>(&url, schema)
            .map(|r| r.is_compatible)
    }

    /// POSTs `{"schema": …}` to `url` and parses the 200 answer.
    fn post_schema<T: serde::de::DeserializeOwned>(&self, url: &str, schema: &str) -> Result<T, RegistryError> {
        let body = serde_json::json!({ "schema": schema }).to_string();
        let (status, text) = self.call(|agent| {
            agent
                .post(url)
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .send(&body)
        })?;
        if status != 200 {
            return Err(RegistryError::Http(format!("POST {url} answered {status}: {text}")));
        }
        serde_json::from_str(&text).map_err(|e| RegistryError::Http(format!("POST {url}: {e}")))
    }

    /// Runs a request, retrying while the registry cannot be reached; returns status and body.
    fn call(
        &self,
        request: impl Fn(&ureq::Agent) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, String), RegistryError> {
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            match request(&self.agent) {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let body = response.body_mut().read_to_string().unwrap_or_default();
                    return Ok((status, body));
                }
                Err(error) if attempt < MAX_ATTEMPTS => {
                    warn!(registry = %self.url, %error, attempt, "schema registry unreachable; retrying");
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_secs(30));
                    attempt += 1;
                }
                Err(error) => return Err(RegistryError::Http(format!("{}: {error}", self.url))),
            }
        }
    }
}
