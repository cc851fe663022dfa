//! Running `wrk` on a scenario's Lua script and reading its report.

use std::{path::Path, process::Command};

use serde_json::{Value, json};

use crate::server::Server;

/// One wrk run of a scenario's script.
pub struct Wrk<'a> {
    pub work: &'a Path,
    pub backend: &'a str,
    pub name: &'a str,
    pub script: &'a str,
    pub connections: u32,
    pub orders_per_request: u64,
    pub seconds: u64,
}

impl Wrk<'_> {
    pub fn against(&self, server: &Server) -> Value {
        let path = self
            .work
            .join(format!("{}-{}.lua", self.backend, self.name));
        std::fs::write(&path, self.script).unwrap();
        let out = Command::new("wrk")
            .args([
                "-t",
                &self.connections.min(2).to_string(),
                "-c",
                &self.connections.to_string(),
                "-d",
                &format!("{}s", self.seconds),
            ])
            .args(["--latency", "--timeout", "30s", "-s"])
            .arg(&path)
            .arg(&server.base)
            .output()
            .expect("wrk runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        parse_wrk(
            &text,
            self.backend,
            self.name,
            self.orders_per_request,
            server.peak_rss_mb(),
        )
    }
}

pub fn print_row(result: &Value) {
    println!(
        "{:<4} {:>9.0} req/s {:>10.0} orders/s  p50 {:>7.2} ms  p99 {:>7.2} ms  non-2xx {:>4}  RSS {:>5.1} MB",
        result["scenario"].as_str().unwrap(),
        result["requestsPerSecond"].as_f64().unwrap(),
        result["ordersPerSecond"].as_f64().unwrap(),
        result["p50Ms"].as_f64().unwrap(),
        result["p99Ms"].as_f64().unwrap(),
        result["non2xx"],
        result["peakRssMb"].as_f64().unwrap()
    );
}

pub fn parse_wrk(
    text: &str,
    backend: &str,
    scenario: &str,
    orders_per_request: u64,
    rss: f64,
) -> Value {
    let number_after = |label: &str| -> Option<f64> {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let latency_ms = |pct: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(pct))
            .map(|v| {
                let v = v.trim();
                let (num, unit) =
                    v.split_at(v.find(|c: char| c.is_alphabetic()).unwrap_or(v.len()));
                let n: f64 = num.parse().unwrap_or(f64::NAN);
                match unit {
                    "us" => n / 1000.0,
                    "ms" => n,
                    "s" => n * 1000.0,
                    "m" => n * 60_000.0,
                    _ => f64::NAN,
                }
            })
            .unwrap_or(f64::NAN)
    };
    let rps = number_after("Requests/sec:").unwrap_or(0.0);
    let non_2xx = number_after("Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    let socket_errors = text.lines().any(|l| l.contains("Socket errors"));
    if non_2xx > 0 || socket_errors {
        eprintln!("{backend} {scenario}: wrk reported errors:\n{text}");
    }
    json!({
        "backend": backend,
        "scenario": scenario,
        "requestsPerSecond": rps,
        "ordersPerSecond": rps * orders_per_request as f64,
        "p50Ms": latency_ms("50%"),
        "p99Ms": latency_ms("99%"),
        "non2xx": non_2xx,
        "socketErrors": socket_errors,
        "peakRssMb": rss,
    })
}
