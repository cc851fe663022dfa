//! Scenario I (only when named): the instructions the server executes per
//! `GET /api/orders/{id}` and per list page of 200, counted by valgrind's
//! callgrind. Unlike requests per second, the count does not move with
//! what else the machine is doing, so two builds can be compared on a
//! noisy day; it leaves out the kernel (sockets, scheduling), the
//! database server on PostgreSQL, and what an instruction costs (cache
//! misses, waits on locks).
//!
//! A second server process is started under callgrind on the seeded
//! database; after warming up, its counters are zeroed, `GETS` reads (or
//! `PAGES` pages, walking the cursor) are sent one at a time, and the
//! counters are dumped and read. The `GETS` orders are read twice: first
//! reads (none of them read while warming up) and the same orders again,
//! which a process with its read cache answers after checking the
//! version only.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

const GETS: usize = 1_000;
const PAGES: usize = 30;

pub struct Instructions<'a> {
    pub database_url: &'a str,
    pub work: &'a Path,
    pub key: &'a str,
    pub order_ids: &'a [String],
}

impl Instructions<'_> {
    pub fn run(&self, backend: &str) -> Value {
        let out = self.work.join(format!("callgrind-{backend}"));
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        let server = Callgrind::start(self.database_url, &out);
        let client = reqwest::blocking::Client::new();
        let get = |i: usize| {
            let id = &self.order_ids[(i * 7_919) % self.order_ids.len()];
            let resp = client
                .get(format!("{}/api/orders/{id}", server.base))
                .bearer_auth(self.key)
                .send()
                .unwrap();
            assert!(resp.status().is_success());
        };
        let mut cursor: Option<String> = None;
        let mut page = || {
            let mut url = format!("{}/api/orders?limit=200", server.base);
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let resp = client.get(url).bearer_auth(self.key).send().unwrap();
            assert!(resp.status().is_success());
            let body: Value = resp.json().unwrap();
            cursor = body["nextCursor"].as_str().map(str::to_owned);
        };
        // Warm-up reads of other orders than the counted ones (7,919 is
        // prime to the 10,000 seeded, so `get` reads distinct orders).
        (GETS..GETS + 200).for_each(get);
        (0..10).for_each(|_| page());
        let per_get = server.count(GETS, || (0..GETS).for_each(get));
        let per_get_again = server.count(GETS, || (0..GETS).for_each(get));
        let per_page = server.count(PAGES, || (0..PAGES).for_each(|_| page()));
        let result = json!({
            "backend": backend,
            "scenario": "I",
            "instructionsPerGet": per_get,
            "instructionsPerGetAgain": per_get_again,
            "instructionsPerPage": per_page,
        });
        println!(
            "I    {backend}: {per_get:.0} instructions per GET (first read), \
             {per_get_again:.0} per GET of an order read before, {per_page:.0} per page of 200"
        );
        result
    }
}

/// The release server under `valgrind --tool=callgrind`.
struct Callgrind {
    child: Child,
    out: std::path::PathBuf,
    base: String,
}

impl Callgrind {
    fn start(database_url: &str, out: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!(
                "--callgrind-out-file={}/callgrind.out.%p",
                out.display()
            ))
            .arg(env!("CARGO_BIN_EXE_entrygo"))
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(["--log-format", "json"])
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("valgrind runs (Debian: apt-get install valgrind)");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while reqwest::blocking::get(format!("{base}/healthz")).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the server under callgrind did not start"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Self {
            child,
            out: out.to_owned(),
            base,
        }
    }

    /// Instructions per request of `requests`, sent by `send`.
    fn count(&self, requests: usize, send: impl FnOnce()) -> f64 {
        self.control("--zero");
        send();
        let before = self.dumps();
        self.control("--dump");
        // The dump may still be being written when the command returns.
        let started = Instant::now();
        loop {
            let total = self
                .dumps()
                .into_iter()
                .filter(|d| !before.contains(d))
                .find_map(|d| total_of(&std::fs::read_to_string(d).unwrap_or_default()));
            if let Some(total) = total {
                return total / requests as f64;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "callgrind wrote no dump"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn control(&self, what: &str) {
        let done = Command::new("callgrind_control")
            .args([what, &self.child.id().to_string()])
            .output()
            .unwrap();
        assert!(done.status.success(), "callgrind_control {what}");
    }

    fn dumps(&self) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }
}

/// The instruction total of a callgrind dump (its `totals:` line).
fn total_of(dump: &str) -> Option<f64> {
    dump.lines()
        .find_map(|l| l.strip_prefix("totals:"))
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
}

impl Drop for Callgrind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
