//! Per-kind event writers: how each of the seven event kinds draws its fields
//! from the catalog, the calendar and the active anomaly, and prints itself.
//!
//! Writers append one NDJSON object (no newline) to the caller's buffer using
//! literal key fragments; field order and names are the wire schema, so they
//! are spelled out here once and checked by the schema test in `mod.rs`.
//! Values follow load (`Seasonality::load`): latencies, CPU and queue depths
//! rise with traffic, which is what makes seasonality visible in values and
//! not only in rates.

use super::SHARDS;
use super::anomaly::{AnomalyKind, Planned};
use super::catalog::{
    CACHES, CURRENCIES, CURRENCY_CUMULATIVE, Catalog, DATABASES, DB_CONNECTIONS, DB_ROLES, FEATURES, HOSTS, METRICS,
    ORGS, PRODUCTS, QUEUE_DEPTH, QUEUES, REGION_CUMULATIVE, REGIONS, SERVICES, SEVERITIES, SIGNAL_BASE_SCORE,
    SIGNAL_CUMULATIVE, SIGNALS, SOURCE_IPS, TASK_ERRORS, TASK_TYPE_CUMULATIVE, TASK_TYPES, USERS, host_is_batch,
    host_name, host_region,
};
use super::format::{fixed, hex, int, padded, raw};
use super::random::{Rng, cumulative, hash3};
use super::season::{DAY_MS, SECOND_MS, Seasonality};

/// Event kinds produced by the Poisson arrival process. (`system_sample` is
/// not among them: hosts sample on a fixed period instead.) The discriminant
/// indexes the seasonality tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Metric = 0,
    TaskExecution = 1,
    ApiRequest = 2,
    UserActivity = 3,
    Sale = 4,
    SecuritySignal = 5,
}

pub(crate) const POISSON_KINDS: [Kind; 6] = [
    Kind::Metric,
    Kind::TaskExecution,
    Kind::ApiRequest,
    Kind::UserActivity,
    Kind::Sale,
    Kind::SecuritySignal,
];

/// Average share of each Poisson kind in the stream (same order as above).
pub(crate) const KIND_CUMULATIVE: [f64; 6] = cumulative([0.18, 0.06, 0.40, 0.22, 0.10, 0.04]);

/// Everything an event writer reads besides its shard's own state.
pub(crate) struct Ctx<'a> {
    /// Event time (already shifted if this event is delivered out of order).
    pub(crate) ts: i64,
    pub(crate) season: &'a Seasonality,
    pub(crate) catalog: &'a Catalog,
    /// The anomaly of the current 6-hour window, possibly not yet active.
    pub(crate) anomaly: Option<Planned>,
    pub(crate) sample_interval_ms: i64,
}

impl Ctx<'_> {
    fn hits(&self, kind: AnomalyKind, target: usize) -> Option<f64> {
        self.anomaly
            .filter(|a| a.hits(kind, target, self.ts))
            .map(|a| a.magnitude)
    }

    fn during(&self, kind: AnomalyKind) -> Option<f64> {
        self.anomaly.filter(|a| a.during(kind, self.ts)).map(|a| a.magnitude)
    }
}

/// Session bookkeeping of one user, so logins, clicks and logouts form
/// plausible sessions instead of independent draws.
#[derive(Clone, Copy, Debug, Default)]
struct Session {
    number: u32,
    active: bool,
}

/// The mutable slice of the world a shard owns: its users' sessions and its
/// id counters. Ids are `counter * SHARDS + shard`, so they are unique across
/// shards without coordination.
#[derive(Clone, Debug)]
pub(crate) struct KindState {
    shard: u64,
    task_seq: u64,
    order_seq: u64,
    /// Local user `j` is global user `shard + SHARDS * j`.
    sessions: Vec<Session>,
}

impl KindState {
    pub(crate) fn new(shard: usize) -> Self {
        let users = (shard..USERS).step_by(SHARDS).count();
        Self {
            shard: shard as u64,
            task_seq: 0,
            order_seq: 0,
            sessions: vec![Session::default(); users],
        }
    }

    fn next_id(&self, seq: u64) -> u64 {
        seq * SHARDS as u64 + self.shard + 1
    }

    /// A local user index skewed towards the shard's "power users".
    fn pick_user(&self, rng: &mut Rng, power: i32) -> usize {
        rng.skewed(self.sessions.len(), power)
    }

    fn global_user(&self, local: usize) -> usize {
        self.shard as usize + SHARDS * local
    }
}

/// Writes one event of a Poisson kind.
pub(crate) fn write_event(kind: Kind, cx: &Ctx, st: &mut KindState, rng: &mut Rng, out: &mut Vec<u8>) {
    match kind {
        Kind::Metric => metric(cx, rng, out),
        Kind::TaskExecution => task_execution(cx, st, rng, out),
        Kind::ApiRequest => api_request(cx, rng, out),
        Kind::UserActivity => user_activity(cx, st, rng, out),
        Kind::Sale => sale(cx, st, rng, out),
        Kind::SecuritySignal => security_signal(cx, st, rng, out),
    }
}

fn head(out: &mut Vec<u8>, kind: &str, ts: i64) {
    raw(out, "{\"kind\":\"");
    raw(out, kind);
    raw(out, "\",\"ts\":");
    int(out, ts);
}

fn host(out: &mut Vec<u8>, h: usize) {
    let (role, n) = host_name(h);
    raw(out, role);
    raw(out, "-");
    padded(out, n as u64, 2);
}

fn user_id(out: &mut Vec<u8>, global: usize) {
    raw(out, "u-");
    padded(out, global as u64 + 1, 6);
}

fn region(rng: &mut Rng) -> &'static str {
    REGIONS[rng.weighted(&REGION_CUMULATIVE)]
}

/// `{"kind":"metric",...,"tags":{"<k1>":"<v1>","<k2>":"<v2>"},"value":<v>}`.
fn metric(cx: &Ctx, rng: &mut Rng, out: &mut Vec<u8>) {
    let m = rng.index(METRICS.len());
    let (name, k1, k2) = METRICS[m];
    let load = cx.season.load(cx.ts);
    head(out, "metric", cx.ts);
    raw(out, ",\"metric\":\"");
    raw(out, name);
    raw(out, "\",\"tags\":{\"");
    raw(out, k1);
    raw(out, "\":\"");
    let (value, decimals) = match m {
        0 => {
            let s = rng.skewed(SERVICES.len(), 2);
            raw(out, SERVICES[s].name);
            tag_mid(out, k2);
            raw(out, region(rng));
            let spike = cx.hits(AnomalyKind::LatencySpike, s).unwrap_or(1.0);
            let base = SERVICES[s].routes[0].latency_ms * (0.75 + 0.25 * load);
            (rng.lognormal(base, 0.3) * spike, 3)
        }
        1 => {
            raw(out, region(rng));
            tag_mid(out, k2);
            let q = rng.index(QUEUES.len());
            raw(out, QUEUES[q]);
            let depth = QUEUE_DEPTH[q] * load * load * rng.lognormal(1.0, 0.35);
            (depth.round(), 1)
        }
        2 => {
            let s = rng.skewed(SERVICES.len(), 2);
            raw(out, SERVICES[s].name);
            tag_mid(out, k2);
            raw(out, CACHES[rng.index(CACHES.len())]);
            // A latency spike is often a cache-miss storm: show it here too.
            let storm = cx.hits(AnomalyKind::LatencySpike, s).map_or(0.0, |_| 0.35);
            let ratio = 0.95 - 0.04 * (load - 1.0) - storm + rng.gaussian(0.0, 0.01);
            (ratio.clamp(0.0, 1.0), 4)
        }
        3 => {
            let primary = rng.chance(0.5);
            raw(out, DB_ROLES[usize::from(!primary)]);
            tag_mid(out, k2);
            let d = rng.index(DATABASES.len());
            raw(out, DATABASES[d]);
            let share = if primary { 1.0 } else { 0.6 };
            let conns = DB_CONNECTIONS[d] * share * load + rng.gaussian(0.0, 3.0);
            (conns.round().max(0.0), 1)
        }
        _ => {
            let s = rng.skewed(SERVICES.len(), 2);
            raw(out, SERVICES[s].name);
            tag_mid(out, k2);
            // GC pauses are reported by application ("api") hosts: h % 8 == 1.
            host(out, 1 + 8 * rng.index(HOSTS / 8));
            (rng.lognormal(6.0 * load.sqrt(), 0.6), 3)
        }
    };
    raw(out, "\"},\"value\":");
    fixed(out, value, decimals);
    raw(out, "}");
}

fn tag_mid(out: &mut Vec<u8>, key: &str) {
    raw(out, "\",\"");
    raw(out, key);
    raw(out, "\":\"");
}

const SERVER_ERRORS: [i64; 4] = [500, 502, 503, 504];
const SERVER_ERROR_CUMULATIVE: [f64; 4] = cumulative([0.4, 0.25, 0.25, 0.1]);
const CLIENT_ERRORS: [i64; 5] = [400, 401, 403, 404, 429];
const CLIENT_ERROR_CUMULATIVE: [f64; 5] = cumulative([0.3, 0.2, 0.1, 0.3, 0.1]);

/// An HTTP request through the gateway: status mix, latency and size depend
/// on the route, the load and any latency/error anomaly on its service.
fn api_request(cx: &Ctx, rng: &mut Rng, out: &mut Vec<u8>) {
    let s = rng.skewed(SERVICES.len(), 2);
    let service = &SERVICES[s];
    let route = &service.routes[rng.index(service.routes.len())];
    let load = cx.season.load(cx.ts);
    let server_p = cx.hits(AnomalyKind::ErrorSurge, s).unwrap_or(0.003 * load.max(0.5));
    let client_p = 0.045;
    let u = rng.unit();
    let status = if u < server_p {
        SERVER_ERRORS[rng.weighted(&SERVER_ERROR_CUMULATIVE)]
    } else if u < server_p + client_p {
        CLIENT_ERRORS[rng.weighted(&CLIENT_ERROR_CUMULATIVE)]
    } else {
        match route.method {
            "POST" if rng.chance(0.3) => 201,
            "PUT" if rng.chance(0.5) => 204,
            "GET" if rng.chance(0.04) => 304,
            _ => 200,
        }
    };
    let mut latency = route.latency_ms * (0.75 + 0.25 * load) * rng.lognormal(1.0, 0.45);
    latency *= match status {
        504 => 0.0,
        500..=599 => 1.5,
        400..=499 => 0.35,
        _ => 1.0,
    };
    if status == 504 {
        latency = 30_000.0 + rng.uniform(0.0, 500.0);
    }
    latency *= cx.hits(AnomalyKind::LatencySpike, s).unwrap_or(1.0);
    let bytes = match status {
        204 | 304 => 0,
        200..=299 => rng.lognormal(route.bytes, 0.6).max(1.0) as i64,
        _ => 80 + rng.below(400) as i64,
    };
    head(out, "api_request", cx.ts);
    raw(out, ",\"service\":\"");
    raw(out, service.name);
    raw(out, "\",\"route\":\"");
    raw(out, route.path);
    raw(out, "\",\"method\":\"");
    raw(out, route.method);
    raw(out, "\",\"region\":\"");
    raw(out, region(rng));
    raw(out, "\",\"status_code\":");
    int(out, status);
    raw(out, ",\"latency_ms\":");
    fixed(out, latency, 3);
    raw(out, ",\"bytes\":");
    int(out, bytes);
    raw(out, "}");
}

/// A batch job that just finished (`ts` = `end_ts`).
fn task_execution(cx: &Ctx, st: &mut KindState, rng: &mut Rng, out: &mut Vec<u8>) {
    let t = &TASK_TYPES[rng.weighted(&TASK_TYPE_CUMULATIVE)];
    let fail_p = cx.during(AnomalyKind::ErrorSurge).unwrap_or(0.03);
    let timeout_p = 0.015;
    let u = rng.unit();
    let mut memory = rng.lognormal(t.memory_mb, 0.35);
    let (status, error, duration) = if u < fail_p {
        // Memory-hungry jobs die of OOM more often than of anything else.
        let e = if t.memory_mb >= 1_000.0 && rng.chance(0.5) {
            "oom_killed"
        } else {
            TASK_ERRORS[rng.index(TASK_ERRORS.len())]
        };
        if e == "oom_killed" {
            memory = t.memory_mb * 2.5;
        }
        let d = rng.lognormal(t.median_ms, 0.7).min(t.timeout_ms) * rng.uniform(0.05, 1.0);
        ("failed", Some(e), d)
    } else if u < fail_p + timeout_p {
        (
            "timeout",
            Some("deadline_exceeded"),
            t.timeout_ms + rng.uniform(0.0, 2_000.0),
        )
    } else {
        let d = rng.lognormal(t.median_ms, 0.7).min(t.timeout_ms * 0.98);
        ("success", None, d)
    };
    let duration_ms = (duration.round() as i64).max(1);
    let end_ts = cx.ts;
    let start_ts = end_ts - duration_ms;
    let cpu = rng.gaussian(t.cpu_pct, 12.0).clamp(1.0, 100.0);
    let id = st.next_id(st.task_seq);
    st.task_seq += 1;

    head(out, "task_execution", end_ts);
    raw(out, ",\"task_id\":\"t-");
    padded(out, id, 6);
    raw(out, "\",\"task_type\":\"");
    raw(out, t.name);
    raw(out, "\",\"queue\":\"");
    raw(out, t.queue);
    raw(out, "\",\"start_ts\":");
    int(out, start_ts);
    raw(out, ",\"end_ts\":");
    int(out, end_ts);
    raw(out, ",\"duration_ms\":");
    // Exactly end_ts - start_ts, printed as a float.
    fixed(out, (end_ts - start_ts) as f64, 1);
    raw(out, ",\"status\":\"");
    raw(out, status);
    raw(out, "\",\"cpu_pct\":");
    fixed(out, cpu, 1);
    raw(out, ",\"memory_mb\":");
    fixed(out, memory, 1);
    match error {
        None => raw(out, ",\"error\":null}"),
        Some(e) => {
            raw(out, ",\"error\":\"");
            raw(out, e);
            raw(out, "\"}");
        }
    }
}

/// One step of a user session: a logged-out user logs in, a logged-in user
/// browses, clicks, uses features or logs out.
fn user_activity(cx: &Ctx, st: &mut KindState, rng: &mut Rng, out: &mut Vec<u8>) {
    let local = st.pick_user(rng, 2);
    let global = st.global_user(local);
    let session = &mut st.sessions[local];
    let (event, feature, median_ms, sigma) = if !session.active {
        session.active = true;
        session.number += 1;
        ("login", "session", 900.0, 0.4)
    } else {
        let u = rng.unit();
        if u < 0.07 {
            session.active = false;
            ("logout", "session", 120.0, 0.3)
        } else {
            let f = FEATURES[rng.skewed(FEATURES.len(), 2)];
            if u < 0.57 {
                ("page_view", f, 5_000.0, 0.8)
            } else if u < 0.87 {
                ("click", f, 250.0, 0.5)
            } else {
                ("feature_use", f, 20_000.0, 0.9)
            }
        }
    };
    // Session ids are a hash of (user, session number): stable and unique
    // enough without any shared counter.
    let sid = hash3(cx.catalog.seed, global as u64, u64::from(session.number));
    let duration = (rng.lognormal(median_ms, sigma).round() as i64).max(1);

    head(out, "user_activity", cx.ts);
    raw(out, ",\"user_id\":\"");
    user_id(out, global);
    raw(out, "\",\"org\":\"");
    raw(out, ORGS[usize::from(cx.catalog.user_org[global])]);
    raw(out, "\",\"session_id\":\"s-");
    hex(out, sid, 6);
    raw(out, "\",\"event\":\"");
    raw(out, event);
    raw(out, "\",\"feature\":\"");
    raw(out, feature);
    raw(out, "\",\"duration_ms\":");
    int(out, duration);
    raw(out, "}");
}

/// An order: skewed product popularity (and through product ownership,
/// skewed sellers), small quantities, occasional discounts.
fn sale(cx: &Ctx, st: &mut KindState, rng: &mut Rng, out: &mut Vec<u8>) {
    let p = rng.skewed(PRODUCTS, 3);
    let seller = usize::from(cx.catalog.product_seller[p]);
    let quantity = 1 + rng.poisson(0.45).min(9);
    let discount = if rng.chance(0.12) { rng.uniform(0.05, 0.3) } else { 0.0 };
    let amount = cx.catalog.product_price[p] * quantity as f64 * (1.0 - discount);
    let currency = CURRENCIES[rng.weighted(&CURRENCY_CUMULATIVE)];
    let id = st.next_id(st.order_seq);
    st.order_seq += 1;

    head(out, "sale", cx.ts);
    raw(out, ",\"order_id\":\"o-");
    padded(out, id, 7);
    raw(out, "\",\"seller\":\"seller-");
    padded(out, seller as u64 + 1, 2);
    raw(out, "\",\"product\":\"sku-");
    padded(out, p as u64 + 1, 4);
    raw(out, "\",\"amount\":");
    fixed(out, amount, 2);
    raw(out, ",\"currency\":\"");
    raw(out, currency);
    raw(out, "\",\"quantity\":");
    int(out, quantity as i64);
    raw(out, "}");
}

/// A detection from the security pipeline; severity is derived from the
/// score so the two never disagree.
fn security_signal(cx: &Ctx, st: &mut KindState, rng: &mut Rng, out: &mut Vec<u8>) {
    let s = rng.weighted(&SIGNAL_CUMULATIVE);
    let score = (rng.gaussian(SIGNAL_BASE_SCORE[s], 0.18).clamp(0.0, 1.0) * 100.0).round() / 100.0;
    let severity = match score {
        x if x >= 0.9 => SEVERITIES[3],
        x if x >= 0.7 => SEVERITIES[2],
        x if x >= 0.4 => SEVERITIES[1],
        _ => SEVERITIES[0],
    };
    let ip = cx.catalog.source_ip(rng.skewed(SOURCE_IPS, 3));
    let global = st.global_user(st.pick_user(rng, 3));

    head(out, "security_signal", cx.ts);
    raw(out, ",\"signal\":\"");
    raw(out, SIGNALS[s]);
    raw(out, "\",\"severity\":\"");
    raw(out, severity);
    raw(out, "\",\"score\":");
    fixed(out, score, 2);
    raw(out, ",\"source_ip\":\"");
    for (i, octet) in ip.iter().enumerate() {
        if i > 0 {
            raw(out, ".");
        }
        int(out, i64::from(*octet));
    }
    raw(out, "\",\"user_id\":\"");
    user_id(out, global);
    raw(out, "\"}");
}

/// One periodic host sample. CPU and memory follow the host's load profile
/// (interactive or batch), disk fills slowly and is periodically cleaned up,
/// network volume scales with load and the sampling interval.
pub(crate) fn write_system_sample(h: usize, cx: &Ctx, rng: &mut Rng, out: &mut Vec<u8>) {
    let p = &cx.catalog.hosts[h];
    let load = if host_is_batch(h) {
        cx.season.batch_load(cx.ts)
    } else {
        cx.season.load(cx.ts)
    };
    let shift = cx.hits(AnomalyKind::CpuLevelShift, h).unwrap_or(0.0);
    let cpu = (p.cpu_base + p.cpu_amplitude * (load - 1.0) + rng.gaussian(0.0, 3.0) + shift).clamp(0.5, 100.0);
    let mem = (p.mem_base + 6.0 * (load - 1.0) + rng.gaussian(0.0, 1.2)).clamp(1.0, 99.5);
    let days = cx.ts as f64 / DAY_MS as f64;
    let disk = (p.disk_base + (days * p.disk_growth_per_day) % 20.0 + rng.gaussian(0.0, 0.05)).clamp(1.0, 99.9);
    let seconds = cx.sample_interval_ms as f64 / SECOND_MS as f64;
    let net_in = p.net_bytes_per_s * load.max(0.05) * seconds * rng.lognormal(1.0, 0.2);
    let net_out = net_in * p.out_ratio * rng.lognormal(1.0, 0.1);

    head(out, "system_sample", cx.ts);
    raw(out, ",\"host\":\"");
    host(out, h);
    raw(out, "\",\"region\":\"");
    raw(out, host_region(h));
    raw(out, "\",\"cpu_pct\":");
    fixed(out, cpu, 1);
    raw(out, ",\"mem_pct\":");
    fixed(out, mem, 1);
    raw(out, ",\"disk_pct\":");
    fixed(out, disk, 1);
    raw(out, ",\"net_in_bytes\":");
    int(out, net_in as i64);
    raw(out, ",\"net_out_bytes\":");
    int(out, net_out as i64);
    raw(out, "}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_order_matches_discriminants() {
        for (i, k) in POISSON_KINDS.iter().enumerate() {
            assert_eq!(*k as usize, i);
        }
        assert!((KIND_CUMULATIVE[5] - 1.0).abs() < 1e-12);
    }

    #[test]
    fn every_user_belongs_to_exactly_one_shard() {
        let total: usize = (0..SHARDS).map(|s| KindState::new(s).sessions.len()).sum();
        assert_eq!(total, USERS);
        let st = KindState::new(5);
        assert_eq!(st.global_user(2), 5 + 2 * SHARDS);
        assert_eq!(st.next_id(0), 6);
    }

    #[test]
    fn sessions_start_with_a_login() {
        let season = Seasonality::new();
        let catalog = Catalog::new(1);
        let cx = Ctx {
            ts: 1_732_233_600_000,
            season: &season,
            catalog: &catalog,
            anomaly: None,
            sample_interval_ms: 10_000,
        };
        let mut st = KindState::new(0);
        let mut rng = Rng::seeded(1);
        let mut out = Vec::new();
        user_activity(&cx, &mut st, &mut rng, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.contains("\"event\":\"login\""), "{line}");
        assert!(st.sessions.iter().filter(|s| s.active).count() == 1);
    }
}
