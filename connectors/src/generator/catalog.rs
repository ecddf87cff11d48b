//! The simulated world: services and routes, hosts, users and orgs, products
//! and sellers, and the vocabularies of every categorical field.
//!
//! Static tables hold names; per-entity numeric attributes (a product's price,
//! a host's CPU baseline, a user's org) are derived from the seed by hashing,
//! once, when a generator is built. Hashing rather than drawing from a shard's
//! stream matters: every shard must see the same world, whichever shards a
//! worker happens to own.
//!
//! All names are lowercase `[a-z0-9/_.-]+` (HTTP methods aside), so event
//! writers can emit them between quotes without escaping.

use super::random::{hash2, hash3, unit_of};

/// Regions events come from, with the share of traffic each carries.
pub(crate) const REGIONS: [&str; 4] = ["us", "eu", "ap", "sa"];
pub(crate) const REGION_CUMULATIVE: [f64; 4] = super::random::cumulative([0.45, 0.30, 0.20, 0.05]);

/// One HTTP endpoint of a service.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) path: &'static str,
    pub(crate) method: &'static str,
    /// Median latency at average load, in ms.
    pub(crate) latency_ms: f64,
    /// Median response size, in bytes.
    pub(crate) bytes: f64,
}

const fn route(path: &'static str, method: &'static str, latency_ms: f64, bytes: f64) -> Route {
    Route {
        path,
        method,
        latency_ms,
        bytes,
    }
}

/// A service behind the API gateway.
#[derive(Debug)]
pub(crate) struct Service {
    pub(crate) name: &'static str,
    pub(crate) routes: &'static [Route],
}

/// Ordered by popularity: services are picked with a skew towards the front.
pub(crate) const SERVICES: [Service; 7] = [
    Service {
        name: "search",
        routes: &[
            route("/v1/search", "GET", 45.0, 12_000.0),
            route("/v1/suggest", "GET", 12.0, 1_500.0),
        ],
    },
    Service {
        name: "catalog",
        routes: &[
            route("/v1/products", "GET", 30.0, 24_000.0),
            route("/v1/products/item", "GET", 14.0, 4_000.0),
            route("/v1/categories", "GET", 8.0, 2_000.0),
        ],
    },
    Service {
        name: "auth",
        routes: &[
            route("/v1/login", "POST", 60.0, 900.0),
            route("/v1/token/refresh", "POST", 9.0, 700.0),
            route("/v1/me", "GET", 6.0, 1_200.0),
            route("/v1/logout", "POST", 5.0, 200.0),
        ],
    },
    Service {
        name: "profile",
        routes: &[
            route("/v1/profile", "GET", 11.0, 2_500.0),
            route("/v1/profile", "PUT", 25.0, 2_500.0),
        ],
    },
    Service {
        name: "checkout",
        routes: &[
            route("/v1/cart", "GET", 15.0, 3_000.0),
            route("/v1/cart/items", "POST", 22.0, 3_200.0),
            route("/v1/checkout", "POST", 180.0, 1_800.0),
        ],
    },
    Service {
        name: "billing",
        routes: &[
            route("/v1/invoices", "GET", 40.0, 8_000.0),
            route("/v1/payments", "POST", 250.0, 1_000.0),
        ],
    },
    Service {
        name: "notifications",
        routes: &[
            route("/v1/notifications", "GET", 18.0, 5_000.0),
            route("/v1/notifications/ack", "POST", 7.0, 150.0),
        ],
    },
];

/// Host roles; host `h` has role `h % 8` and number `h / 8 + 1` ("web-01").
pub(crate) const HOST_ROLES: [&str; 8] = ["web", "api", "db", "cache", "worker", "ingest", "search", "batch"];
pub(crate) const HOSTS: usize = 128;

pub(crate) const USERS: usize = 5_000;
pub(crate) const ORGS: [&str; 50] = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "vandelay",
    "dunder",
    "pied-piper",
    "massive",
    "oscorp",
    "gringotts",
    "monarch",
    "nakatomi",
    "virtucon",
    "weyland",
    "bluth",
    "krusty",
    "duff",
    "prestige",
    "sirius",
    "vault-tec",
    "gekko",
    "oceanic",
    "dharma",
    "octan",
    "rekall",
    "zorg",
    "ingen",
    "biffco",
    "planet-express",
    "momcorp",
    "lacuna",
    "sterling",
    "stratton",
    "buy-n-large",
    "contoso",
    "fabrikam",
    "northwind",
    "tailspin",
    "adventure-works",
    "wide-world",
    "litware",
    "proseware",
];
pub(crate) const FEATURES: [&str; 8] = [
    "dashboards",
    "search",
    "reports",
    "alerts",
    "settings",
    "integrations",
    "billing",
    "api_keys",
];

pub(crate) const PRODUCTS: usize = 500;
pub(crate) const SELLERS: usize = 40;
pub(crate) const CURRENCIES: [&str; 3] = ["usd", "eur", "gbp"];
pub(crate) const CURRENCY_CUMULATIVE: [f64; 3] = super::random::cumulative([0.75, 0.18, 0.07]);

/// Batch task types: name, queue, median duration (ms), timeout (ms), mean
/// CPU %, median memory (MB).
pub(crate) struct TaskType {
    pub(crate) name: &'static str,
    pub(crate) queue: &'static str,
    pub(crate) median_ms: f64,
    pub(crate) timeout_ms: f64,
    pub(crate) cpu_pct: f64,
    pub(crate) memory_mb: f64,
}

const fn task(
    name: &'static str,
    queue: &'static str,
    median_ms: f64,
    timeout_ms: f64,
    cpu_pct: f64,
    memory_mb: f64,
) -> TaskType {
    TaskType {
        name,
        queue,
        median_ms,
        timeout_ms,
        cpu_pct,
        memory_mb,
    }
}

pub(crate) const TASK_TYPES: [TaskType; 6] = [
    task("etl", "default", 60_000.0, 900_000.0, 55.0, 768.0),
    task("report", "high", 8_000.0, 120_000.0, 35.0, 384.0),
    task("email_batch", "low", 20_000.0, 300_000.0, 15.0, 192.0),
    task("index_rebuild", "batch", 120_000.0, 1_800_000.0, 70.0, 1_536.0),
    task("backup", "batch", 300_000.0, 3_600_000.0, 25.0, 512.0),
    task("ml_train", "batch", 900_000.0, 7_200_000.0, 90.0, 4_096.0),
];
pub(crate) const TASK_TYPE_CUMULATIVE: [f64; 6] = super::random::cumulative([0.35, 0.25, 0.20, 0.10, 0.06, 0.04]);
pub(crate) const TASK_ERRORS: [&str; 5] = [
    "bad_input",
    "upstream_timeout",
    "oom_killed",
    "dependency_failed",
    "crash_loop",
];

pub(crate) const SIGNALS: [&str; 4] = ["login_failure", "impossible_travel", "card_testing", "port_scan"];
pub(crate) const SIGNAL_CUMULATIVE: [f64; 4] = super::random::cumulative([0.55, 0.12, 0.10, 0.23]);
/// Typical score of each signal: impossible travel is rarely benign.
pub(crate) const SIGNAL_BASE_SCORE: [f64; 4] = [0.35, 0.75, 0.6, 0.45];
pub(crate) const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
/// Distinct source addresses, skewed so a few noisy scanners dominate.
pub(crate) const SOURCE_IPS: usize = 2_000;

/// Infrastructure metric names with their two tag keys, in emission order
/// (deliberately not alphabetical: consumers must not rely on tag order).
pub(crate) const METRICS: [(&str, &str, &str); 5] = [
    ("api.request.duration_ms", "service", "region"),
    ("queue.depth", "region", "queue"),
    ("cache.hit_ratio", "service", "cache"),
    ("db.connections.active", "role", "db"),
    ("gc.pause_ms", "service", "host"),
];
pub(crate) const QUEUES: [&str; 5] = ["emails", "payments", "exports", "webhooks", "ingest"];
/// Median depth of each queue at average load.
pub(crate) const QUEUE_DEPTH: [f64; 5] = [40.0, 6.0, 15.0, 25.0, 120.0];
pub(crate) const CACHES: [&str; 3] = ["redis", "memcached", "local"];
pub(crate) const DATABASES: [&str; 3] = ["orders", "users", "events"];
pub(crate) const DB_CONNECTIONS: [f64; 3] = [80.0, 45.0, 140.0];
pub(crate) const DB_ROLES: [&str; 2] = ["primary", "replica"];

/// Fixed per-host behaviour, derived from the seed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HostProfile {
    pub(crate) cpu_base: f64,
    pub(crate) cpu_amplitude: f64,
    pub(crate) mem_base: f64,
    pub(crate) disk_base: f64,
    pub(crate) disk_growth_per_day: f64,
    pub(crate) net_bytes_per_s: f64,
    pub(crate) out_ratio: f64,
}

/// Seed-dependent attributes of the world, shared read-only by all shards.
#[derive(Clone, Debug)]
pub(crate) struct Catalog {
    pub(crate) seed: u64,
    pub(crate) hosts: Vec<HostProfile>,
    pub(crate) user_org: Vec<u8>,
    pub(crate) product_price: Vec<f64>,
    pub(crate) product_seller: Vec<u8>,
}

const HOST_SALT: u64 = 0x4057;
const USER_SALT: u64 = 0x05E5;
const PRODUCT_SALT: u64 = 0x9D0C;
const IP_SALT: u64 = 0x1A1A;

/// Uniform `[0, 1)` attribute number `k` of entity `id` under `salt`.
fn attr(seed: u64, salt: u64, id: usize, k: u64) -> f64 {
    unit_of(hash3(seed ^ salt, id as u64, k))
}

impl Catalog {
    pub(crate) fn new(seed: u64) -> Self {
        let hosts = (0..HOSTS)
            .map(|h| {
                let a = |k| attr(seed, HOST_SALT, h, k);
                HostProfile {
                    cpu_base: 12.0 + 33.0 * a(0),
                    cpu_amplitude: 8.0 + 22.0 * a(1),
                    mem_base: 38.0 + 37.0 * a(2),
                    disk_base: 25.0 + 45.0 * a(3),
                    disk_growth_per_day: 0.3 + 1.2 * a(4),
                    net_bytes_per_s: 40_000.0 * (100.0f64).powf(a(5)),
                    out_ratio: 0.3 * (10.0f64).powf(a(6)),
                }
            })
            .collect();
        // Org sizes are skewed: org 0 gets ~14 % of users, the last ones few.
        let user_org = (0..USERS)
            .map(|u| {
                let x = attr(seed, USER_SALT, u, 0);
                ((ORGS.len() as f64 * x * x) as usize).min(ORGS.len() - 1) as u8
            })
            .collect();
        // Prices: lognormal-ish around $30 (sum of uniforms ≈ normal), so a
        // few expensive items coexist with many cheap ones.
        let product_price = (0..PRODUCTS)
            .map(|p| {
                let z = (0..4).map(|k| attr(seed, PRODUCT_SALT, p, k)).sum::<f64>() - 2.0;
                let price = 30.0 * (1.6 * z).exp();
                (price.clamp(1.0, 5_000.0) * 100.0).round() / 100.0 - 0.01
            })
            .collect();
        // Sellers own products with a skew, so seller popularity is skewed too.
        let product_seller = (0..PRODUCTS)
            .map(|p| {
                let x = attr(seed, PRODUCT_SALT, p, 9);
                ((SELLERS as f64 * x.powf(1.5)) as usize).min(SELLERS - 1) as u8
            })
            .collect();
        Self {
            seed,
            hosts,
            user_org,
            product_price,
            product_seller,
        }
    }

    /// The four octets of source address number `i` (private range, so the
    /// strings never name a real host).
    pub(crate) fn source_ip(&self, i: usize) -> [u8; 4] {
        let h = hash2(self.seed ^ IP_SALT, i as u64);
        [10, (h >> 8) as u8, (h >> 16) as u8, (h >> 24) as u8 | 1]
    }
}

/// Host role name and number: host 0 is ("web", 1), host 9 is ("api", 2).
pub(crate) fn host_name(h: usize) -> (&'static str, usize) {
    (HOST_ROLES[h % HOST_ROLES.len()], h / HOST_ROLES.len() + 1)
}

/// Region a host lives in.
pub(crate) fn host_region(h: usize) -> &'static str {
    REGIONS[(h / HOST_ROLES.len()) % REGIONS.len()]
}

/// Whether a host runs batch work (its load follows the batch profile).
pub(crate) fn host_is_batch(h: usize) -> bool {
    matches!(HOST_ROLES[h % HOST_ROLES.len()], "worker" | "batch" | "ingest")
}

/// Human-readable name of host `h`, for ground-truth reports (not hot path).
pub(crate) fn host_label(h: usize) -> String {
    let (role, n) = host_name(h);
    format!("{role}-{n:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"/_.-".contains(&b))
    }

    #[test]
    fn names_never_need_escaping() {
        let mut all: Vec<&str> = Vec::new();
        all.extend(REGIONS);
        all.extend(HOST_ROLES);
        all.extend(ORGS);
        all.extend(FEATURES);
        all.extend(CURRENCIES);
        all.extend(TASK_TYPES.iter().flat_map(|t| [t.name, t.queue]));
        all.extend(TASK_ERRORS);
        all.extend(SIGNALS);
        all.extend(SEVERITIES);
        all.extend(METRICS.iter().flat_map(|m| [m.0, m.1, m.2]));
        all.extend(QUEUES);
        all.extend(CACHES);
        all.extend(DATABASES);
        all.extend(DB_ROLES);
        for s in &SERVICES {
            all.push(s.name);
            all.extend(s.routes.iter().map(|r| r.path));
            assert!(s.routes.iter().all(|r| ["GET", "POST", "PUT"].contains(&r.method)));
        }
        for s in all {
            assert!(clean(s), "{s:?}");
        }
        for (_, a, b) in METRICS {
            assert!(a > b, "tags of every metric are emitted out of alphabetical order");
        }
    }

    #[test]
    fn world_is_seeded_and_plausible() {
        let c = Catalog::new(42);
        let d = Catalog::new(42);
        assert_eq!(c.product_price, d.product_price);
        assert_ne!(c.product_price, Catalog::new(43).product_price);
        assert!(c.product_price.iter().all(|&p| p > 0.5 && p < 5_000.0));
        let org0 = c.user_org.iter().filter(|&&o| o == 0).count();
        assert!(org0 > USERS / 20, "org 0 is one of the big ones: {org0}");
        assert_eq!(host_label(9), "api-02");
        assert_eq!(c.source_ip(3)[0], 10);
    }
}
