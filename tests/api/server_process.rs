//! A real `entrygo serve` process, for what only a process shows (several
//! instances on one database, signals).

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use serde_json::Value;

/// A real `entrygo serve` process on the given database.
pub struct ServerProcess {
    pub address: String,
    /// With `--metrics-addr`: the metrics listener's base URL.
    pub metrics_address: Option<String>,
    child: std::process::Child,
    /// Syncs the process has claimed (its `sync claimed` log lines).
    claims: Arc<AtomicUsize>,
    /// Every log line read so far; the reader ends when the process has
    /// closed its stderr.
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl ServerProcess {
    pub fn start(database_url: &str) -> Self {
        Self::start_with(database_url, &[])
    }

    /// As [`Self::start`], with more `serve` arguments.
    pub fn start_with(database_url: &str, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_entrygo"))
            .args(["serve", "--addr", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "info,entrygo::domain::sync=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("server starts");
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut lines = stderr.lines();
        let mut metrics_address = None;
        let port = loop {
            let line = lines.next().expect("server logs until it listens").unwrap();
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "metrics listening" {
                metrics_address = Some(format!("http://127.0.0.1:{}", event["port"]));
            }
            if event["message"] == "listening" {
                break event["port"].as_u64().expect("port logged");
            }
        };
        // Keep draining the log so the server never blocks on a full pipe,
        // counting the syncs it claims.
        let claims = Arc::new(AtomicUsize::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (counted, kept) = (claims.clone(), log.clone());
        let reader = std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if line.contains("\"sync claimed\"") {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                kept.lock().unwrap().push(line);
            }
        });
        Self {
            address: format!("http://127.0.0.1:{port}"),
            metrics_address,
            child,
            claims,
            log,
            reader: Some(reader),
        }
    }

    /// Syncs claimed so far: each has passed every check and is on its way
    /// to the writer.
    pub fn claims(&self) -> usize {
        self.claims.load(Ordering::SeqCst)
    }

    /// Waits until the process has claimed more than `seen` syncs.
    pub async fn wait_for_claim_after(&self, seen: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.claims() <= seen {
            assert!(std::time::Instant::now() < deadline, "no sync was claimed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Sends a signal (`TERM`, `INT`) to the process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status and every line it
    /// logged after it started listening, to the last.
    pub fn wait_exit(
        mut self,
        limit: std::time::Duration,
    ) -> (std::process::ExitStatus, Vec<String>) {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                if let Some(reader) = self.reader.take() {
                    reader.join().unwrap();
                }
                let log = std::mem::take(&mut *self.log.lock().unwrap());
                return (status, log);
            }
            assert!(std::time::Instant::now() < deadline, "server did not exit");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}
