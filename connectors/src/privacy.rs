//! Pseudonymising personal data before it reaches any sink (`[privacy]`, on by default).
//!
//! Fields named in `privacy.fields` (default: user ids, e-mail addresses, IP addresses) are
//! replaced by a keyed hash — or dropped — wherever they could leave the process: as tag values
//! of series keys (so InfluxDB, Kafka, files, the API and the live page only ever see the
//! pseudonym) and inside the original bytes of dead letters (except undecodable Avro, below).
//!
//! The hash is keyed (HMAC-SHA-256, the first 64 bits in hex, prefixed `pii:`) because user
//! ids, e-mail addresses and IPv4 addresses are easy to enumerate: a plain hash would be reversed
//! by hashing every candidate. The same key gives the same pseudonym, so a user's series keep
//! their identity across restarts and across the processes of a cluster — which is why the key
//! comes from `TIDEMARK_PII_KEY` or a key file, never from a per-run random value.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The environment variable that, when set, holds the key (any text of at least 16 bytes).
pub const KEY_ENV: &str = "TIDEMARK_PII_KEY";

/// Prefix of every pseudonym, so a reader of a dashboard knows the value was hashed.
pub const PSEUDONYM_PREFIX: &str = "pii:";

/// What happens to a configured field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    /// Replace the value by its keyed hash: series stay per user, but anonymous.
    #[default]
    Hash,
    /// Leave the tag out: the series aggregates over all users.
    Drop,
}

/// `[privacy]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Whether personal fields are protected (default true).
    pub enabled: bool,
    /// Field names (event fields and generic-event tag keys) holding personal data.
    pub fields: Vec<String>,
    /// Hash (default) or drop them.
    pub action: PiiAction,
    /// Where the key lives when `TIDEMARK_PII_KEY` is not set; created with a random key on
    /// first use (default `$HOME/.local/state/tidemark/pii.key`, so every run of this user
    /// pseudonymises alike).
    pub key_file: PathBuf,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            enabled: true,
            fields: ["user_id", "email", "ip", "source_ip", "client_ip", "ip_address"]
                .map(String::from)
                .to_vec(),
            action: PiiAction::Hash,
            key_file: default_key_file(),
        }
    }
}

/// The key could not be read or created.
#[derive(Debug, Error)]
pub enum PrivacyError {
    /// The key is too short to resist guessing.
    #[error("{origin}: the PII key is {len} bytes; use at least 16 (e.g. `openssl rand -hex 32`)")]
    ShortKey {
        /// Where it came from.
        origin: String,
        /// Its length.
        len: usize,
    },
    /// The key file could not be read or written.
    #[error("privacy.key_file {path}: {error}; point privacy.key_file at a writable path or set {KEY_ENV}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// A cluster would hash with a different random key per process.
    #[error(
        "privacy: the processes of a cluster must share one PII key, and privacy.key_file {path} does not exist; set {KEY_ENV} to the same value on every process (or create the key file on shared storage)"
    )]
    ClusterNeedsKey {
        /// The missing key file.
        path: String,
    },
    /// A field name is empty.
    #[error("privacy.fields[{index}] is empty; list field names such as \"user_id\"")]
    EmptyField {
        /// Its index.
        index: usize,
    },
}

impl PrivacyConfig {
    /// Loads (or, for a single process, creates) the key and returns the pseudonymiser;
    /// `None` when privacy is off. `key_env` is the value of `TIDEMARK_PII_KEY`, if set.
    pub fn open(&self, key_env: Option<String>, cluster: bool) -> Result<Option<Pii>, PrivacyError> {
        if !self.enabled {
            return Ok(None);
        }
        if let Some(index) = self.fields.iter().position(|f| f.trim().is_empty()) {
            return Err(PrivacyError::EmptyField { index });
        }
        let key = match key_env {
            Some(key) => check_length(key.into_bytes(), KEY_ENV.into())?,
            None => self.file_key(cluster)?,
        };
        Ok(Some(Pii::new(&key, self.fields.clone(), self.action)))
    }

    fn file_key(&self, cluster: bool) -> Result<Vec<u8>, PrivacyError> {
        let path = &self.key_file;
        let io = |error| PrivacyError::KeyFile {
            path: path.display().to_string(),
            error,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).trim().as_bytes().to_vec();
                check_length(text, format!("privacy.key_file {}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && cluster => Err(PrivacyError::ClusterNeedsKey {
                path: path.display().to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(path).map_err(io),
            Err(e) => Err(io(e)),
        }
    }
}

fn default_key_file() -> PathBuf {
    let base = std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".tidemark"),
        |home| PathBuf::from(home).join(".local/state/tidemark"),
    );
    base.join("pii.key")
}

fn check_length(key: Vec<u8>, origin: String) -> Result<Vec<u8>, PrivacyError> {
    if key.len() < 16 {
        return Err(PrivacyError::ShortKey { origin, len: key.len() });
    }
    Ok(key)
}

/// Writes 32 random bytes as hex, readable by the owner only, and returns the key. The file
/// is written under a unique name and hard-linked into place, so processes starting at the
/// same time agree on one key (the loser of the race reads the winner's).
fn create_key_file(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let staged = dir.join(format!(".pii.key.{}.{}", std::process::id(), &hex[..8]));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&staged).and_then(|mut file| {
        file.write_all(hex.as_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&staged, path));
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created a PII key; keep it to keep pseudonyms stable across restarts");
            Ok(hex.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(String::from_utf8_lossy(&std::fs::read(path)?)
            .trim()
            .as_bytes()
            .to_vec()),
        Err(e) => Err(e),
    }
}

/// The pseudonymiser: which fields are personal, and the keyed hash.
#[derive(Clone)]
pub struct Pii {
    fields: Vec<String>,
    action: PiiAction,
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pii {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Pii")
            .field("fields", &self.fields)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl Pii {
    /// A pseudonymiser with `key` for `fields`.
    pub fn new(key: &[u8], fields: Vec<String>, action: PiiAction) -> Self {
        Pii {
            fields,
            action,
            mac: Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"),
        }
    }

    /// What happens to personal fields.
    pub fn action(&self) -> PiiAction {
        self.action
    }

    /// Whether `field` holds personal data. A linear scan: the list is a handful of names and
    /// this runs once per tag of a definition at start-up, or per generic tag key.
    pub fn covers(&self, field: &str) -> bool {
        self.fields.iter().any(|f| f == field)
    }

    /// Appends the pseudonym of `value` (`pii:` and 16 hex digits) to `out`.
    pub fn pseudonym_into(&self, value: &[u8], out: &mut String) {
        let mut mac = self.mac.clone();
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        out.push_str(PSEUDONYM_PREFIX);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in &digest[..8] {
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 15)] as char);
        }
    }

    /// The original bytes of a dead letter with every personal field's value replaced (by its
    /// pseudonym, or by `"pii:dropped"`). The scan is textual — `"field"`, optional spaces, `:`,
    /// a string or a bare token — so it also covers lines too broken to parse, nested objects
    /// truncated prefixes and invalid UTF-8. An Avro message that failed to decode (framed by
    /// the Confluent magic byte 0 or the single-object marker `C3 01`) has no field names to
    /// search for and is returned unchanged: it is the replayable copy of a message that is in
    /// the input topic anyway, so dead-letter outputs fall under the input's access rules.
    pub fn redact<'a>(&self, original: &'a [u8]) -> Cow<'a, [u8]> {
        if original.first() == Some(&0) || original.starts_with(&[0xC3, 0x01]) {
            return Cow::Borrowed(original);
        }
        let mut text = Cow::Borrowed(original);
        for field in &self.fields {
            if let Some(redacted) = self.redact_field(&text, field) {
                text = Cow::Owned(redacted);
            }
        }
        text
    }

    fn redact_field(&self, text: &[u8], field: &str) -> Option<Vec<u8>> {
        let needle = format!("\"{field}\"");
        let finder = memchr::memmem::Finder::new(needle.as_bytes());
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut search = 0;
        while let Some(found) = finder.find(&text[search..]) {
            let after_key = search + found + needle.len();
            search = after_key;
            let Some((value_start, value_end)) = value_after_key(text, after_key) else {
                continue;
            };
            let out = out.get_or_insert_with(|| Vec::with_capacity(text.len()));
            out.extend_from_slice(&text[copied..value_start]);
            let mut replacement = String::with_capacity(24);
            replacement.push('"');
            match self.action {
                PiiAction::Hash => {
                    let raw = &text[value_start..value_end];
                    let inner = raw
                        .strip_prefix(b"\"")
                        .map_or(raw, |r| r.strip_suffix(b"\"").unwrap_or(r));
                    self.pseudonym_into(inner, &mut replacement);
                }
                PiiAction::Drop => replacement.push_str("pii:dropped"),
            }
            replacement.push('"');
            out.extend_from_slice(replacement.as_bytes());
            copied = value_end;
            search = value_end;
        }
        let mut out = out?;
        out.extend_from_slice(&text[copied..]);
        Some(out)
    }
}

/// The byte range of the value that follows a member name ending at `at`: after optional
/// whitespace and a colon, a JSON string (to its closing quote, or the end of a truncated
/// line) or a bare token (number, literal) up to a delimiter. `None` when no colon follows:
/// the name was a value, not a key.
fn value_after_key(text: &[u8], at: usize) -> Option<(usize, usize)> {
    let skip_space = |mut i: usize| {
        while i < text.len() && text[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let colon = skip_space(at);
    if text.get(colon) != Some(&b':') {
        return None;
    }
    let start = skip_space(colon + 1);
    match text.get(start) {
        None => None,
        Some(b'"') => {
            let mut i = start + 1;
            while i < text.len() {
                match text[i] {
                    b'\\' => i += 2,
                    b'"' => return Some((start, i + 1)),
                    _ => i += 1,
                }
            }
            Some((start, text.len()))
        }
        Some(b'{' | b'[') => None,
        Some(_) => {
            let end = text[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())
                .map_or(text.len(), |p| start + p);
            Some((start, end))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pii(action: PiiAction) -> Pii {
        Pii::new(b"0123456789abcdef-test", PrivacyConfig::default().fields, action)
    }

    fn pseudonym(p: &Pii, value: &str) -> String {
        let mut out = String::new();
        p.pseudonym_into(value.as_bytes(), &mut out);
        out
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_short() {
        let a = pii(PiiAction::Hash);
        let b = Pii::new(b"another key of 16+ bytes", vec!["user_id".into()], PiiAction::Hash);
        let p = pseudonym(&a, "alice@example.com");
        assert_eq!(p, pseudonym(&a, "alice@example.com"));
        assert_ne!(p, pseudonym(&a, "bob@example.com"));
        assert_ne!(
            p,
            pseudonym(&b, "alice@example.com"),
            "a different key gives different pseudonyms"
        );
        assert!(p.starts_with("pii:") && p.len() == 20, "{p}");
    }

    #[test]
    fn pseudonym_is_the_hmac_sha256_prefix() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let p = Pii::new(b"Jefe", vec![], PiiAction::Hash);
        assert_eq!(pseudonym(&p, "what do ya want for nothing?"), "pii:5bdcc146bf60754e");
    }

    #[test]
    fn dead_letter_bytes_lose_every_personal_value() {
        let p = pii(PiiAction::Hash);
        let line =
            br#"{"kind":"user_activity","user_id":"u-1","tags":{"email" : "a@b.c","ip":10},"source_ip":"1.2.3.4"#;
        let redacted = p.redact(line);
        let text = std::str::from_utf8(&redacted).unwrap();
        for secret in ["u-1", "a@b.c", "1.2.3.4", "\"ip\":10"] {
            assert!(!text.contains(secret), "{secret} survived in {text}");
        }
        assert!(
            text.contains(&format!("\"user_id\":\"{}\"", pseudonym(&p, "u-1"))),
            "{text}"
        );
        assert!(text.contains("\"kind\":\"user_activity\""), "{text}");
        assert_eq!(text.matches("pii:").count(), 4, "{text}");
    }

    #[test]
    fn names_used_as_values_or_objects_are_left_alone() {
        let p = pii(PiiAction::Drop);
        let line = br#"{"field":"user_id","user_id":{"nested":1},"email":"x\"y","n":1}"#;
        let text = String::from_utf8(p.redact(line).into_owned()).unwrap();
        assert_eq!(
            text,
            r#"{"field":"user_id","user_id":{"nested":1},"email":"pii:dropped","n":1}"#
        );
        assert!(matches!(p.redact(b"{\"ts\":1}"), Cow::Borrowed(_)));
    }

    #[test]
    fn avro_payloads_are_kept_and_invalid_utf8_is_still_redacted() {
        let p = pii(PiiAction::Hash);
        let avro = [0, 0, 0, 0, 1, 0x0a, b'u'];
        assert_eq!(&*p.redact(&avro), &avro);
        let broken = b"{\"email\":\"a@b\xff\",\"v\":1}";
        let redacted = p.redact(broken);
        assert!(!redacted.windows(3).any(|w| w == b"a@b"));
        assert!(redacted.ends_with(b"\",\"v\":1}"));
    }

    #[test]
    fn keys_come_from_the_environment_or_a_created_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = PrivacyConfig {
            key_file: dir.path().join("k/pii.key"),
            ..PrivacyConfig::default()
        };
        let err = config.open(None, true).unwrap_err();
        assert!(err.to_string().contains(KEY_ENV), "{err}");
        let first = config.open(None, false).unwrap().unwrap();
        let again = config.open(None, true).unwrap().unwrap();
        assert_eq!(
            pseudonym(&first, "u"),
            pseudonym(&again, "u"),
            "the created key is reused"
        );
        let short = config.open(Some("short".into()), false).unwrap_err();
        assert!(short.to_string().contains("at least 16"), "{short}");
        let off = PrivacyConfig {
            enabled: false,
            ..PrivacyConfig::default()
        };
        assert!(off.open(None, false).unwrap().is_none());
    }
}
