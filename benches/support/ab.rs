//! A/B runs: a scenario without and with a switch (metrics, a feed
//! consumer), alternating on one database, so that the machine's drift
//! falls on both sides alike.

use std::path::Path;

use serde_json::{Value, json};

use crate::{
    CONNECTIONS, feed,
    scripts::{S1, S5},
    server::Server,
    wrk::{Wrk, print_row},
};

/// What an A/B run switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ab {
    /// `--metrics-addr`: S1 and S5, a fresh server for each run.
    Metrics,
    /// A change-feed consumer beside S1, on one server.
    Feed,
}

/// Runs without (`off`) and with (`on`) the switch, alternating, for
/// `rounds` rounds, on the same database; prints both medians.
pub fn ab(
    database_url: &str,
    work: &Path,
    backend: &str,
    seconds: u64,
    rounds: usize,
    (common, key): (&str, &str),
    what: Ab,
) -> Vec<Value> {
    let (label, scenarios): (&str, &[(&str, &str)]) = match what {
        Ab::Metrics => ("metrics", &[("S1", S1), ("S5", S5)]),
        Ab::Feed => ("feed", &[("S1", S1)]),
    };
    let log = |on: bool, round: usize| work.join(format!("{backend}-{label}-{round}-{on}.log"));
    let shared =
        (what == Ab::Feed).then(|| Server::start_with(database_url, &log(false, 0), false));
    let mut runs: Vec<Value> = Vec::new();
    for round in 0..rounds {
        for on in [false, true] {
            let own;
            let server = match &shared {
                Some(server) => server,
                None => {
                    own = Server::start_with(database_url, &log(on, round), on);
                    &own
                }
            };
            let state = if on { "on" } else { "off" };
            for (name, script) in scenarios {
                let consumer =
                    (what == Ab::Feed && on).then(|| feed::Consumer::start(&server.base, key));
                let run = Wrk {
                    work,
                    backend,
                    name,
                    script: &format!("{common}\n{script}"),
                    connections: CONNECTIONS,
                    orders_per_request: 1,
                    seconds,
                };
                let mut result = run.against(server);
                if let Some(consumer) = consumer {
                    consumer.finish();
                }
                result["ab"] = json!(label);
                result["scenario"] = json!(format!("{name}-{label}-{state}"));
                print_row(&result);
                runs.push(result);
            }
        }
    }
    for (scenario, _) in scenarios {
        let median = |state: &str| {
            let mut rates: Vec<f64> = runs
                .iter()
                .filter(|r| r["scenario"] == format!("{scenario}-{label}-{state}").as_str())
                .map(|r| r["requestsPerSecond"].as_f64().unwrap())
                .collect();
            rates.sort_by(f64::total_cmp);
            (rates[rates.len() / 2], rates)
        };
        let ((off, all_off), (on, all_on)) = (median("off"), median("on"));
        println!(
            "{backend} {scenario}: {label} off median {off:.0} req/s {all_off:.0?}, on median {on:.0} req/s {all_on:.0?} ({:+.1} %)",
            (on / off - 1.0) * 100.0
        );
    }
    runs
}
