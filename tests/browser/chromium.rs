//! Debian's chromium, headless: loads a page, lets its scripts run and prints the DOM they left.
//!
//! `--dump-dom` with a virtual-time budget is all these tests need: the page writes what it saw
//! into the DOM, and the browser exits once the page is idle (virtual time does not advance while a
//! fetch is pending). No WebDriver, no DevTools protocol.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// Where Debian's `chromium` package puts the browser.
const BINARY: &str = "/usr/bin/chromium";

/// A run that takes longer is killed (with every process it started) and fails the test.
const LIMIT: Duration = Duration::from_secs(60);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// What one run of the browser printed.
pub(crate) struct Dump {
    pub(crate) dom: String,
    pub(crate) stderr: String,
}

impl Dump {
    /// The text of `<pre id="out">`, where the probe page writes its results.
    pub(crate) fn out(&self) -> Option<&str> {
        let start = self.dom.find(r#"<pre id="out">"#)? + r#"<pre id="out">"#.len();
        let len = self.dom[start..].find("</pre>")?;
        Some(&self.dom[start..start + len]).filter(|s| !s.is_empty())
    }

    /// The end of stderr, for failure messages (chromium's is long and mostly D-Bus noise).
    pub(crate) fn stderr_tail(&self) -> &str {
        let from = self.stderr.len().saturating_sub(2000);
        let from = (from..self.stderr.len())
            .find(|&i| self.stderr.is_char_boundary(i))
            .unwrap_or(self.stderr.len());
        &self.stderr[from..]
    }
}

/// Fails the test, with what to do, when chromium is not installed: a browser test that skips
/// silently would report a CORS layer as proven when nothing proved it.
pub(crate) fn require() {
    assert!(
        Path::new(BINARY).is_file(),
        "{BINARY} is missing: run ./scripts/test, which installs Debian's chromium \
         (or `apt-get install -y chromium`)"
    );
}

/// Loads `url` in a fresh headless chromium and returns the DOM its scripts left.
pub(crate) fn dump_dom(url: &str) -> Dump {
    require();
    let profile = fresh_profile();
    let child = Command::new(BINARY)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so the guard can kill the renderer and helpers too.
        .process_group(0)
        .spawn()
        .expect("start chromium");
    let group = format!("-{}", child.id());
    let (finished, guard_rx) = mpsc::channel::<()>();
    let guard = std::thread::spawn(move || {
        let timed_out = guard_rx.recv_timeout(LIMIT) == Err(RecvTimeoutError::Timeout);
        if timed_out {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        timed_out
    });
    let output = child.wait_with_output();
    drop(finished);
    let timed_out = guard.join().expect("guard thread");
    let _ = std::fs::remove_dir_all(&profile);
    let output = output.expect("wait for chromium");
    let dump = Dump {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !timed_out,
        "chromium ran longer than {LIMIT:?} on {url} and was killed; stderr:\n{}",
        dump.stderr_tail()
    );
    assert!(
        output.status.success(),
        "chromium failed ({}) on {url}; stderr:\n{}",
        output.status,
        dump.stderr_tail()
    );
    dump
}

/// A new, empty profile directory: no cookies, no cached preflights from another run.
fn fresh_profile() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "protothrive-chromium-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("chromium profile dir");
    dir
}
