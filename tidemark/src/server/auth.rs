//! API keys, roles and per-key rate limits.
//!
//! Keys are configured as SHA-256 hashes, so the config file never holds a usable secret.
//! A presented key is hashed and compared with every stored hash in constant time (no early
//! exit on the first differing byte, no early exit on the first matching key), so response
//! timing reveals nothing about the stored keys. Keys are never logged; the key's *name* is
//! what appears in logs and silences.
//!
//! Clients send `Authorization: Bearer KEY` or `X-API-Key: KEY`; browsers cannot set headers
//! on a WebSocket, so `/ws/live` also accepts `?access_token=KEY`.
//!
//! Without configured keys the server is open (allowed on loopback only): every request acts
//! as the `anonymous` admin, still rate-limited.

use super::config::ApiKeyConfig;
use super::error::ApiError;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use subtle::ConstantTimeEq;
use warp::Filter;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Query, discover, export, stream, list alerts.
    Read,
    /// Everything, including silencing alerts.
    Admin,
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The key's configured name (`anonymous` when the server is open).
    pub name: Arc<str>,
    /// Its role.
    pub role: Role,
}

struct StoredKey {
    name: Arc<str>,
    hash: [u8; 32],
    role: Role,
}

/// A token bucket.
struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// Authentication and rate limiting for every protected route.
pub struct Auth {
    keys: Vec<StoredKey>,
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<Arc<str>, Bucket>>,
    anonymous: Arc<str>,
}

impl Auth {
    /// From the configured keys (already validated) and limits.
    pub fn new(keys: &[ApiKeyConfig], per_second: f64, burst: u32) -> Self {
        let keys = keys
            .iter()
            .map(|key| {
                let mut hash = [0u8; 32];
                for (i, byte) in hash.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&key.sha256[2 * i..2 * i + 2], 16).expect("validated hex");
                }
                StoredKey {
                    name: key.name.as_str().into(),
                    hash,
                    role: key.role,
                }
            })
            .collect();
        Auth {
            keys,
            per_second,
            burst: burst as f64,
            buckets: Mutex::new(HashMap::new()),
            anonymous: "anonymous".into(),
        }
    }

    /// Whether requests need a key.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Identifies the caller, checks the role and takes a rate-limit token.
    pub fn check(&self, presented: Option<&str>, needed: Role) -> Result<Caller, ApiError> {
        let caller = self.identify(presented)?;
        if caller.role < needed {
            return Err(ApiError::forbidden(format!(
                "the API key {:?} has the read role; this endpoint needs an admin key",
                &*caller.name
            )));
        }
        self.take_token(&caller.name)?;
        Ok(caller)
    }

    fn identify(&self, presented: Option<&str>) -> Result<Caller, ApiError> {
        if self.is_open() {
            return Ok(Caller {
                name: self.anonymous.clone(),
                role: Role::Admin,
            });
        }
        let Some(key) = presented.filter(|k| !k.is_empty()) else {
            return Err(ApiError::unauthorized(
                "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>",
            ));
        };
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for stored in &self.keys {
            if bool::from(stored.hash.ct_eq(&digest)) {
                found = Some(stored);
            }
        }
        found
            .map(|stored| Caller {
                name: stored.name.clone(),
                role: stored.role,
            })
            .ok_or_else(|| ApiError::unauthorized("the API key is not valid"))
    }

    fn take_token(&self, name: &Arc<str>) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = buckets.entry(name.clone()).or_insert(Bucket {
            tokens: self.burst,
            refilled: now,
        });
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.refilled = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0);
            Err(ApiError::rate_limited(wait as u64))
        }
    }
}

/// The key a request presents in its headers, if any.
pub fn presented_key() -> impl Filter<Extract = (Option<String>,), Error = std::convert::Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: warp::http::HeaderMap| {
        let bearer = headers
            .get(warp::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        let header = headers.get("x-api-key").and_then(|v| v.to_str().ok());
        bearer.or(header).map(|k| k.trim().to_string())
    })
}

/// A filter that admits callers with at least `role`, yielding who they are.
pub fn require(auth: Arc<Auth>, role: Role) -> impl Filter<Extract = (Caller,), Error = warp::Rejection> + Clone {
    presented_key().and_then(move |key: Option<String>| {
        let auth = auth.clone();
        async move { auth.check(key.as_deref(), role).map_err(warp::reject::custom) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Vec<ApiKeyConfig> {
        let hex = |key: &str| {
            Sha256::digest(key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        vec![
            ApiKeyConfig {
                name: "reader".into(),
                sha256: hex("read-secret"),
                role: Role::Read,
            },
            ApiKeyConfig {
                name: "ops".into(),
                sha256: hex("admin-secret"),
                role: Role::Admin,
            },
        ]
    }

    #[test]
    fn keys_roles_and_failures() {
        let auth = Auth::new(&keys(), 100.0, 100);
        assert_eq!(auth.check(None, Role::Read).unwrap_err().status, 401);
        assert_eq!(auth.check(Some("nope"), Role::Read).unwrap_err().status, 401);
        assert_eq!(&*auth.check(Some("read-secret"), Role::Read).unwrap().name, "reader");
        assert_eq!(auth.check(Some("read-secret"), Role::Admin).unwrap_err().status, 403);
        assert_eq!(auth.check(Some("admin-secret"), Role::Admin).unwrap().role, Role::Admin);
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let auth = Auth::new(&keys(), 0.001, 2);
        assert!(auth.check(Some("read-secret"), Role::Read).is_ok());
        assert!(auth.check(Some("read-secret"), Role::Read).is_ok());
        let limited = auth.check(Some("read-secret"), Role::Read).unwrap_err();
        assert_eq!(limited.status, 429);
        assert!(limited.retry_after.unwrap() >= 1);
        assert!(auth.check(Some("admin-secret"), Role::Read).is_ok());
    }

    #[test]
    fn open_mode_admits_everyone_as_admin() {
        let auth = Auth::new(&[], 10.0, 10);
        assert_eq!(auth.check(None, Role::Admin).unwrap().role, Role::Admin);
    }
}
