use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = entrygo::config::Cli::parse();
    match entrygo::cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("entrygo: {err:#}");
            ExitCode::FAILURE
        }
    }
}
