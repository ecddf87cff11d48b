//! The live page in a real headless Chromium (Debian's `chromium`, never a downloaded
//! browser): it loads from a running `tidemark run`, its charts' data changes within a few
//! seconds, and a screenshot of it is saved and checked to show drawn charts, not a blank page.
//!
//! Without `/usr/bin/chromium` the test is skipped, unless `TIDEMARK_REQUIRE_SERVERS=1` (as
//! `scripts/test` sets after installing it), where a missing browser is a failure.

mod support;

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::running::Running;

const CHROMIUM: &str = "/usr/bin/chromium";

const FAST_WINDOWS: &str = r#"
[source]
type = "generator"
pace = "realtime"
events_per_second = 2000.0

[pipeline]
base = "1s"
rollups = ["5s", "1m"]
allowed_lateness = "500ms"
"#;

fn chromium() -> Option<PathBuf> {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return Some(path.to_path_buf());
    }
    assert!(
        std::env::var("TIDEMARK_REQUIRE_SERVERS").as_deref() != Ok("1"),
        "{CHROMIUM} is missing and TIDEMARK_REQUIRE_SERVERS=1: install Debian's chromium package (scripts/test does)"
    );
    eprintln!("skipping the browser test: {CHROMIUM} is not installed (scripts/test installs it)");
    None
}

fn number(tab: &Tab, expression: &str) -> f64 {
    tab.evaluate(expression, false)
        .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
        .value
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_live_page_draws_changing_charts_in_headless_chromium() {
    let Some(path) = chromium() else { return };
    let server = Running::start(FAST_WINDOWS);
    assert!(
        server.url.starts_with("http://127.0.0.1:"),
        "only loopback URLs are opened"
    );
    let profile = tempfile::tempdir().unwrap();
    let flags = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
    ];
    let browser = Browser::new(LaunchOptions {
        path: Some(path),
        headless: true,
        sandbox: false,
        enable_gpu: false,
        disable_default_args: true,
        ignore_certificate_errors: false,
        user_data_dir: Some(profile.path().to_path_buf()),
        window_size: Some((1400, 1000)),
        args: flags.iter().map(OsStr::new).collect(),
        idle_browser_timeout: Duration::from_secs(120),
        ..LaunchOptions::default()
    })
    .expect("launching chromium");
    let tab = browser.new_tab().expect("a tab");
    tab.navigate_to(&format!("{}/", server.url))
        .unwrap()
        .wait_until_navigated()
        .unwrap();

    wait_until("the first chart points", Duration::from_secs(30), || {
        number(&tab, "window.tidemarkLive ? window.tidemarkLive.points : 0") > 0.0
    });
    let first_window = number(&tab, "window.tidemarkLive.lastWindowStart");
    let first_events = number(&tab, "window.tidemarkLive.events");
    wait_until("the chart data to change", Duration::from_secs(5), || {
        number(&tab, "window.tidemarkLive.lastWindowStart") > first_window
            && number(&tab, "window.tidemarkLive.events") > first_events
    });
    let charts = number(&tab, "document.querySelectorAll('#charts .card canvas').length");
    assert!(charts >= 1.0, "charts are drawn with canvases");
    let alerts = tab
        .evaluate("document.getElementById('alerts').textContent", false)
        .unwrap()
        .value
        .unwrap();
    assert!(alerts.as_str().unwrap().contains("no active alerts"), "{alerts}");

    std::thread::sleep(Duration::from_millis(600));
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .expect("a screenshot");
    let shot = std::env::var_os("TIDEMARK_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tidemark-live-page.png"));
    std::fs::write(&shot, &png).unwrap();
    eprintln!("screenshot of the live page: {}", shot.display());
    assert_not_blank(&png);
}

/// Decodes the screenshot and checks it shows a page with drawn charts: many colours, a
/// good share of non-background pixels, and plenty of the value line's blue.
fn assert_not_blank(png_bytes: &[u8]) {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let rgb: Vec<[u8; 3]> = pixels[..info.buffer_size()]
        .chunks(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    let background = rgb[rgb.len() / 2];
    let distinct: std::collections::HashSet<_> = rgb.iter().collect();
    let differing = rgb.iter().filter(|p| **p != background).count();
    let line_blue = rgb
        .iter()
        .filter(|p| p[0].abs_diff(37) < 40 && p[1].abs_diff(99) < 40 && p[2].abs_diff(235) < 40)
        .count();
    eprintln!(
        "screenshot {}x{}: {} colours, {:.1} % non-background, {line_blue} line pixels",
        info.width,
        info.height,
        distinct.len(),
        100.0 * differing as f64 / rgb.len() as f64
    );
    assert!(info.width >= 800 && info.height >= 600);
    assert!(distinct.len() > 50, "the screenshot has {} colours", distinct.len());
    assert!(
        differing * 20 > rgb.len(),
        "more than 5 % of the pixels differ from the background"
    );
    assert!(
        line_blue > 300,
        "the charts' value lines are drawn ({line_blue} pixels)"
    );
}
