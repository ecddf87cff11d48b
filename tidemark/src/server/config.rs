//! `[server]`: the HTTP API, WebSocket stream and live page.
//!
//! ```toml
//! [server]
//! addr = "127.0.0.1:8080"          # also --http-addr and TIDEMARK_HTTP_ADDR
//! max_body_bytes = 65536
//! rate_limit_per_second = 50       # per API key
//! rate_limit_burst = 100
//! max_series = 50000               # live store cap
//! replay_events = 100000           # WebSocket resume / slow-client buffer
//! retention = { "1m" = "2h", "1h" = "7d" }
//!
//! [[server.api_keys]]
//! name = "grafana"
//! sha256 = "…"                     # printf %s "$KEY" | sha256sum
//! role = "read"                    # or "admin"
//! ```
//!
//! Without API keys the server runs open, which is only allowed on a loopback address.

use super::auth::Role;
use anyhow::{Result, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tidemark_sinks::live::{LiveSettings, StoreLimits};

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Whether `tidemark run` starts the server (default true).
    pub enabled: bool,
    /// Listen address (default 127.0.0.1:8080).
    pub addr: SocketAddr,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Requests per second allowed per API key (sustained).
    pub rate_limit_per_second: f64,
    /// Requests allowed in a burst per API key.
    pub rate_limit_burst: u32,
    /// API keys; none means open access (loopback only).
    pub api_keys: Vec<ApiKeyConfig>,
    /// Most series the live store holds.
    pub max_series: usize,
    /// Events kept for WebSocket resumes and slow readers.
    pub replay_events: usize,
    /// How long each window size is kept live, by size (`"1m" = "2h"`).
    pub retention: BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// Windows kept for sizes without a `retention` entry.
    pub default_retained_windows: usize,
    /// WebSocket heartbeat period.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Most WebSocket clients at once.
    pub max_ws_clients: usize,
}

/// `[[server.api_keys]]`: one key, stored as the SHA-256 of the secret, never the secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Who holds the key (appears in logs and silences, the key itself never does).
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// What it may do.
    pub role: Role,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let retention = [
            ("1m", 2 * 3600),
            ("5m", 12 * 3600),
            ("15m", 86_400),
            ("1h", 7 * 86_400),
            ("1d", 30 * 86_400),
        ]
        .into_iter()
        .map(|(size, secs)| (size.to_string(), Duration::from_secs(secs).into()))
        .collect();
        ServerConfig {
            enabled: true,
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 64 * 1024,
            rate_limit_per_second: 50.0,
            rate_limit_burst: 100,
            api_keys: Vec::new(),
            max_series: 50_000,
            replay_events: 100_000,
            retention,
            default_retained_windows: 120,
            heartbeat: Duration::from_secs(10),
            max_ws_clients: 1000,
        }
    }
}

impl ServerConfig {
    /// Whether the server runs without API keys.
    pub fn is_open(&self) -> bool {
        self.api_keys.is_empty()
    }

    /// Checks what serde cannot; errors name the key and the fix.
    pub fn validate(&self) -> Result<()> {
        if self.is_open() && !self.addr.ip().is_loopback() {
            bail!(
                "server.addr: {} is not a loopback address and no [[server.api_keys]] are configured; \
                 add API keys or listen on 127.0.0.1",
                self.addr
            );
        }
        if !(1024..=64 << 20).contains(&self.max_body_bytes) {
            bail!(
                "server.max_body_bytes: {} is outside 1024..=67108864; the default 65536 fits every request",
                self.max_body_bytes
            );
        }
        if !(self.rate_limit_per_second.is_finite() && self.rate_limit_per_second > 0.0) || self.rate_limit_burst == 0 {
            bail!(
                "server.rate_limit_per_second and server.rate_limit_burst must be positive; the defaults are 50 and 100"
            );
        }
        let mut names = std::collections::HashSet::new();
        for (i, key) in self.api_keys.iter().enumerate() {
            if key.name.is_empty() || !names.insert(key.name.as_str()) {
                bail!(
                    "server.api_keys[{i}].name: {:?} is empty or used twice; give every key its own name",
                    key.name
                );
            }
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "server.api_keys[{i}].sha256: expected 64 hex digits; store the key's hash, \
                     e.g. printf %s \"$KEY\" | sha256sum"
                );
            }
        }
        if !(1..=10_000_000).contains(&self.max_series) {
            bail!("server.max_series: {} is outside 1..=10000000", self.max_series);
        }
        if !(1000..=10_000_000).contains(&self.replay_events) {
            bail!(
                "server.replay_events: {} is outside 1000..=10000000",
                self.replay_events
            );
        }
        if !(1..=100_000).contains(&self.default_retained_windows) {
            bail!(
                "server.default_retained_windows: {} is outside 1..=100000",
                self.default_retained_windows
            );
        }
        for size in self.retention.keys() {
            if window_ms(size).is_none() {
                bail!("server.retention: {size:?} is not a window size; use keys such as \"1m\" or \"1h\"");
            }
        }
        if self.heartbeat < Duration::from_millis(100) || self.heartbeat > Duration::from_secs(300) {
            bail!(
                "server.heartbeat: {:?} is outside 100ms..=5m; the default is 10s",
                self.heartbeat
            );
        }
        if self.max_ws_clients == 0 {
            bail!("server.max_ws_clients must be positive; the default is 1000");
        }
        Ok(())
    }

    /// The live-state settings this configuration stands for.
    pub fn live_settings(&self) -> LiveSettings {
        let retention = self
            .retention
            .iter()
            .filter_map(|(size, keep)| {
                let size_ms = window_ms(size)?;
                Some((size_ms, (keep.as_millis() as u64 / size_ms).max(1) as usize))
            })
            .collect();
        LiveSettings {
            store: StoreLimits {
                max_series: self.max_series,
                retention,
                default_windows: self.default_retained_windows,
                ..StoreLimits::default()
            },
            replay_events: self.replay_events,
        }
    }
}

/// Milliseconds of a window label such as `1m`.
pub fn window_ms(label: &str) -> Option<u64> {
    humantime::parse_duration(label)
        .ok()
        .map(|d| d.as_millis() as u64)
        .filter(|ms| *ms > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig> {
        let config: ServerConfig = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn the_default_is_open_on_loopback() {
        let config = parse("").unwrap();
        assert!(config.is_open());
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        let settings = config.live_settings();
        assert!(settings.store.retention.contains(&(60_000, 120)));
    }

    #[test]
    fn mistakes_name_the_key() {
        let cases = [
            ("addr = \"0.0.0.0:8080\"", "server.addr"),
            ("max_body_bytes = 10", "server.max_body_bytes"),
            ("retention = { \"fortnightly\" = \"1h\" }", "server.retention"),
            (
                "[[api_keys]]\nname = \"a\"\nsha256 = \"abc\"\nrole = \"read\"",
                "server.api_keys[0].sha256",
            ),
        ];
        for (text, key) in cases {
            let err = format!("{:#}", parse(text).unwrap_err());
            assert!(err.contains(key), "{text}: {err}");
        }
        assert!(parse("adr = \"127.0.0.1:1\"").is_err());
    }
}
