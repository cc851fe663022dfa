use std::process::ExitCode;

use clap::Parser;

/// jemalloc instead of glibc's allocator: glibc gives each thread that
/// allocates (sqlx-sqlite runs one per connection) an arena of its own and
/// keeps there what a large batch needed, so memory grew with the pool.
/// jemalloc also serves SQLite's own (C) allocations (`unprefixed_malloc`),
/// and is tuned below, in the binary itself (it reads this at start).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Two arenas shared by all threads; freed pages go back to the OS after
/// half a second, from jemalloc's own background thread; per-thread caches
/// only for small objects, so that a large batch's memory is not kept per
/// thread; blocks of 256 KiB and more (a bulk sync's body and its
/// statements' arguments) from jemalloc's arena for large blocks, which
/// returns them as they are freed instead of half a second later
/// (README, "Performance").
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "malloc_conf")]
pub static malloc_conf: &[u8; 111] = b"narenas:2,background_thread:true,dirty_decay_ms:500,muzzy_decay_ms:0,tcache_max:4096,oversize_threshold:262144\0";

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("entrygo: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let cli = entrygo::config::Cli::parse();
        match entrygo::cli::run(cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("entrygo: {err:#}");
                ExitCode::FAILURE
            }
        }
    })
}
