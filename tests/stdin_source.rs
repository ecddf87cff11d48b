//! A quiet stdin does not stall the job: windows close while the pipe stays open, and a stop
//! signal ends the run at once, flushing what is open.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const START_MS: i64 = 1_732_233_600_000;

#[test]
fn windows_close_while_stdin_is_quiet_and_a_stop_signal_is_not_kept_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = dir.path().join("stdin.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\ntype = \"stdin\"\n\n[pipeline]\nbase = \"1s\"\nrollups = []\nallowed_lateness = \"0s\"\n\n\
             [sinks.files]\ndir = {:?}\ncsv = false\n",
            out.display().to_string()
        ),
    )
    .unwrap();
    let mut child = tidemark()
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let killer = KillOnDrop(child.id());
    let mut stdin = child.stdin.take().unwrap();
    // Ten values in the first second, then one four seconds later: its arrival closes the
    // first window, and the pipe stays open and quiet after it.
    let mut lines: Vec<String> = (0..10)
        .map(|i| format!(r#"{{"ts":{},"metric":"quiet","value":{}}}"#, START_MS + i * 90, i * i))
        .collect();
    lines.push(format!(r#"{{"ts":{},"metric":"quiet","value":7.5}}"#, START_MS + 4_200));
    stdin.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    let expected = batch_windows(&observations(&lines), &[1000]);
    let windows = out.join("windows.ndjson");
    let first = ("quiet".to_string(), 1000, START_MS);
    let row = wait_for(
        "the first window's result, with stdin still open",
        Duration::from_secs(60),
        || {
            windows
                .exists()
                .then(|| final_updates(&windows).remove(&first))
                .flatten()
        },
    );
    assert_eq!(row["count"], expected[&first].count);
    assert!(close(row["sum"].as_f64().unwrap(), expected[&first].sum, 1e-12));

    let stop = Instant::now();
    succeed(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    let status = wait_for("the run ending after SIGTERM", Duration::from_secs(20), || {
        child.try_wait().unwrap()
    });
    drop(killer);
    assert!(status.success(), "tidemark run ended with {status}");
    let open = ("quiet".to_string(), 1000, START_MS + 4_000);
    let flushed = final_updates(&windows);
    assert_eq!(
        flushed[&open]["count"],
        1,
        "the open window is flushed on the stop (in {:?})",
        stop.elapsed()
    );
    drop(stdin);
}

/// Kills the process if the test fails before it ended.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).status();
        }
    }
}
