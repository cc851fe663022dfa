//! The release server under load: started as its own process on a free
//! port, its logs written to a file as in production, its peak memory read
//! from `/proc`.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts the server; with `metrics`, also on a metrics listener
    /// (`--metrics-addr`).
    pub fn start_with(database_url: &str, log: &Path, metrics: bool) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_entrygo"))
            .args(["serve", "--addr", "127.0.0.1:0", "--log-format", "json"])
            .args(if metrics {
                &["--metrics-addr", "127.0.0.1:0"][..]
            } else {
                &[]
            })
            .env("DATABASE_URL", database_url)
            .env(
                "RUST_LOG",
                std::env::var("ENTRYGO_BENCH_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("server logs until it listens").unwrap();
            if let Ok(event) = serde_json::from_str::<Value>(&line)
                && event["message"] == "listening"
            {
                break event["port"].as_u64().unwrap();
            }
        };
        // Logs go on being written (one line per request), as in production.
        let mut sink = std::fs::File::create(log).unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            for line in lines.map_while(Result::ok) {
                let _ = writeln!(sink, "{line}");
            }
        });
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    pub fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs SQL on a PostgreSQL database.
pub fn psql(url: &str, sql: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let conn = sea_orm::Database::connect(url)
            .await
            .expect("PostgreSQL reachable");
        conn.execute_unprepared(sql).await.unwrap();
    });
}

/// Creates an account with the CLI; returns its API key.
pub fn create_account(database_url: &str, id: &str) -> String {
    let created = Command::new(env!("CARGO_BIN_EXE_entrygo"))
        .args(["accounts", "create", "--name", id, "--id", id])
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    serde_json::from_slice::<Value>(&created.stdout).unwrap()["apiKey"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs a query whose rows are (text, integer) pairs, on either backend.
pub fn query_pairs(url: &str, sql: &str) -> Vec<(String, i64)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sea_orm::{ConnectionTrait, Statement};
        let conn = sea_orm::Database::connect(url)
            .await
            .expect("database reachable");
        let backend = conn.get_database_backend();
        let rows = conn
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap();
        rows.iter()
            .map(|row| {
                (
                    row.try_get_by_index::<String>(0).unwrap(),
                    row.try_get_by_index::<i64>(1).unwrap(),
                )
            })
            .collect()
    })
}
