//! The operator commands of the one `entrygo` binary.

use anyhow::Context;
use serde_json::json;

use crate::{
    config::{AccountsCommand, Cli, Command, KeysCommand, ServeArgs, Settings},
    domain::accounts,
    error::AppError,
    startup::{Application, connect_and_migrate},
    telemetry,
};

/// Pool size of short-lived operator commands.
const COMMAND_POOL_SIZE: u32 = 1;

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url;
    match cli
        .command
        .unwrap_or_else(|| Command::Serve(ServeArgs::default()))
    {
        Command::Serve(args) => {
            serve(Settings {
                database_url: url,
                serve: args,
            })
            .await
        }
        Command::Migrate => connect_and_migrate(&url, COMMAND_POOL_SIZE).await.map(drop),
        Command::Openapi => {
            println!("{}", crate::api::spec_json());
            Ok(())
        }
        Command::Accounts(AccountsCommand::Create { name, id }) => {
            let db = connect_and_migrate(&url, COMMAND_POOL_SIZE).await?;
            let (account_id, key) = accounts::create_account(&db, &name, id.as_deref())
                .await
                .map_err(explain)?;
            println!(
                "{}",
                json!({"accountId": account_id, "apiKey": key.api_key})
            );
            Ok(())
        }
        Command::Keys(KeysCommand::Create { account }) => {
            let db = connect_and_migrate(&url, COMMAND_POOL_SIZE).await?;
            let key = accounts::create_key(&db, &account).await.map_err(explain)?;
            println!("{}", json!({"keyId": key.key_id, "apiKey": key.api_key}));
            Ok(())
        }
        Command::Keys(KeysCommand::Revoke { key_id }) => {
            let db = connect_and_migrate(&url, COMMAND_POOL_SIZE).await?;
            accounts::revoke_key(&db, &key_id).await.map_err(explain)
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _log_guard = telemetry::init(settings.serve.log_format);
    let demo = settings.serve.demo;
    let app = Application::build(settings).await?;
    if demo {
        let key = accounts::ensure_demo(&app.state().db)
            .await
            .map_err(explain)?;
        // The key alone on the first line of stdout, so scripts can read it.
        println!("{}", key.api_key);
    }
    if let Some(port) = app.metrics_port() {
        tracing::info!(port, "metrics listening");
    }
    tracing::info!(port = app.port(), "listening");
    app.run().await.context("server failed")
}

/// One line an operator can act on.
fn explain(err: AppError) -> anyhow::Error {
    match err {
        AppError::Invalid(issues) => anyhow::anyhow!(
            "{}",
            issues
                .iter()
                .map(|i| i.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        AppError::NotFound(what) => anyhow::anyhow!("no such {what}"),
        other => anyhow::Error::new(other),
    }
}
