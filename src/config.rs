//! Command line and environment: the operator's whole interface.

use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The default SQLite database: a file in the working directory, created on
/// first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://entrygo.db";

#[derive(Debug, Parser)]
#[command(
    name = "entrygo",
    version,
    about = "EntryGo intake API: order and product sync"
)]
pub struct Cli {
    /// Database to use: `sqlite://PATH` (created if missing) or
    /// `postgres://USER@HOST:PORT/DB`.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true)]
    pub database_url: String,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the API (the default command).
    Serve(ServeArgs),
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Apply pending migrations.
    Migrate,
    /// Print the OpenAPI document the server serves.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account and its first API key; prints `{"accountId","apiKey"}`.
    Create {
        #[arg(long)]
        name: String,
        /// Account ID to use (`acc_…`); a new one is made when absent.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a further API key; prints `{"keyId","apiKey"}`.
    Create {
        #[arg(long)]
        account: String,
    },
    /// Revoke a key: refused by every running instance within
    /// `--key-cache-ms` (one second by default).
    Revoke {
        #[arg(value_name = "KEY_ID")]
        key_id: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "ENTRYGO_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Ensure a demo account `acc_123` with products `prod_hoodie_001` and
    /// `prod_cap_002`, print a fresh demo API key, then serve.
    #[arg(long)]
    pub demo: bool,

    /// Log format.
    #[arg(long, env = "ENTRYGO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ENTRYGO_BODY_LIMIT", default_value_t = 16 * 1024 * 1024)]
    pub body_limit: usize,

    /// How long idempotency records are kept, in seconds; an expired key
    /// behaves as new.
    #[arg(long, env = "ENTRYGO_IDEMPOTENCY_TTL", default_value_t = 86_400)]
    pub idempotency_ttl: u64,

    /// Longest time a request may take, in seconds; over it the client gets
    /// 503 REQUEST_TIMEOUT (a sync that had started still completes).
    #[arg(long, env = "ENTRYGO_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout: u64,

    /// On SIGTERM or Ctrl-C, how long in-flight requests may take to
    /// finish before the process exits anyway, in seconds.
    #[arg(long, env = "ENTRYGO_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    /// Database connections in the pool (default: twice the CPU cores).
    /// On SQLite these serve reads; writes have one connection of their own.
    #[arg(long, env = "ENTRYGO_DB_POOL_SIZE", default_value_t = default_pool_size())]
    pub db_pool_size: u32,

    /// How long a process trusts an API key it has checked, in
    /// milliseconds: a revoked key stops working within this time on every
    /// instance. 0 checks the database on every request.
    #[arg(long, env = "ENTRYGO_KEY_CACHE_MS", default_value_t = 1_000)]
    pub key_cache_ms: u64,

    /// Mebibytes of rendered orders a process keeps for `GET
    /// /api/orders/{id}`; each is answered from memory only after the
    /// database confirms the order is unchanged. 0 turns it off.
    #[arg(long, env = "ENTRYGO_ORDER_CACHE_MB", default_value_t = 16)]
    pub order_cache_mb: u64,

    /// Bytes of request bodies the process holds at once, from reading them
    /// until their write has ended (each request counts at least 4 KiB);
    /// over it, writes are refused with 503 and `Retry-After`.
    #[arg(long, env = "ENTRYGO_MAX_INFLIGHT_BYTES", default_value_t = DEFAULT_MAX_INFLIGHT_BYTES)]
    pub max_inflight_bytes: u64,

    /// One account's share of those bytes; over it, its writes are refused
    /// with 429 `RATE_LIMITED` and `Retry-After`.
    #[arg(long, env = "ENTRYGO_ACCOUNT_INFLIGHT_BYTES", default_value_t = DEFAULT_ACCOUNT_INFLIGHT_BYTES)]
    pub account_inflight_bytes: u64,

    /// How long a write waits for room in those budgets before it is
    /// refused, in milliseconds.
    #[arg(long, env = "ENTRYGO_ADMISSION_WAIT_MS", default_value_t = 250)]
    pub admission_wait_ms: u64,

    /// Serve Prometheus metrics at `GET /metrics` on this address (its own
    /// listener, never the API's); off when absent.
    #[arg(long, env = "ENTRYGO_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
}

/// Sized for a 2-core machine: a sync in flight takes up to about twenty
/// times its body in memory (parsed, validated, rows and statements), and
/// two cores gain nothing from more than a few 1,000-order syncs at once.
pub const DEFAULT_MAX_INFLIGHT_BYTES: u64 = 8 << 20;
pub const DEFAULT_ACCOUNT_INFLIGHT_BYTES: u64 = 2 << 20;

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:3000".parse().expect("valid address"),
            demo: false,
            log_format: LogFormat::Text,
            body_limit: 16 * 1024 * 1024,
            idempotency_ttl: 86_400,
            request_timeout: 30,
            shutdown_timeout: 30,
            db_pool_size: default_pool_size(),
            key_cache_ms: 1_000,
            order_cache_mb: 16,
            max_inflight_bytes: DEFAULT_MAX_INFLIGHT_BYTES,
            account_inflight_bytes: DEFAULT_ACCOUNT_INFLIGHT_BYTES,
            admission_wait_ms: 250,
            metrics_addr: None,
        }
    }
}

/// Twice the CPU cores: the cores, not the connections, bound the
/// throughput, and fewer connections hold less memory.
pub fn default_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).max(2)
}

/// Everything `Application::build` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: String,
    pub serve: ServeArgs,
}
