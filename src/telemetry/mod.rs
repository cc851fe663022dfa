//! Logging (`tracing` to stderr, human-readable or JSON lines) and
//! Prometheus metrics ([`metrics`]).

pub mod metrics;

use std::io::IsTerminal;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::LogFormat;

/// Installs the global subscriber once; later calls are no-ops. The level
/// comes from `RUST_LOG` (default `info`).
///
/// Lines are written by a thread of their own, through a buffer flushed
/// whenever no line is waiting: a request formats its line and goes on,
/// instead of making a system call on stderr of its own (README,
/// "Operations", for what that costs). Never lossy: when
/// [`LOG_QUEUE_LINES`] lines wait, the next one waits for room. Keep the
/// guard until the process ends; dropping it writes out what is queued.
#[must_use = "dropping the guard stops the log thread: keep it until the process ends"]
pub fn init(format: LogFormat) -> Option<WorkerGuard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("entrygo-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let installed = match format {
        LogFormat::Text => fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // json-subscriber writes the line tracing-subscriber's JSON format
        // writes, but keeps each span's fields as JSON values instead of
        // as text that every line parses back (and every `record` parses
        // and writes again). The request's span once, as `span`: it is the
        // only span, so the list of enclosing spans would repeat it.
        LogFormat::Json => json_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.is_ok().then_some(guard)
}

/// Most log lines waiting for the log thread (the queue's slots are
/// allocated up front).
const LOG_QUEUE_LINES: usize = 8_192;
