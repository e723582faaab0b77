//! `eventcore`: the operator's tool for an eventcore store.
//!
//! It opens a store by URL (`sqlite:PATH`, `postgres://...`) and lists and shows streams and
//! events, the status and lag of runners (projections, consumers, the relay), dead letters
//! (list, show, replay, discard), resets projections for a rebuild, and checks and renders
//! registry files. Every command prints a table for people, or JSON with `--json`.

mod cli;
mod dead_letters;
mod error;
mod events;
mod open;
mod output;
mod projections;
mod runners;
mod schema;
mod streams;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use error::CliError;
use open::Store;
use output::Output;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let output = Output::new(cli.json);
    match run(cli, &output).await {
        Ok(()) | Err(CliError::OutputClosed) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error::chain(&error));
            ExitCode::from(error.exit_code())
        }
    }
}

/// Runs one command.
async fn run(cli: Cli, output: &Output) -> Result<(), CliError> {
    // Registry files need no store.
    if let Command::Schema { command } = cli.command {
        return schema::run(command, output);
    }
    let url = cli.store.ok_or(CliError::NoStore)?;
    let store = Store::open(&url, cli.schema.as_deref(), cli.command.writes()).await?;
    match store {
        Store::Sqlite(store) => dispatch(&store, cli.command, output).await,
        #[cfg(feature = "postgres")]
        Store::Postgres(store) => dispatch(&store, cli.command, output).await,
    }
}

/// Runs a store command on `store`, whatever its backend.
async fn dispatch<S: eventcore::runner::RunnerStore>(
    store: &S,
    command: Command,
    output: &Output,
) -> Result<(), CliError> {
    match command {
        Command::Streams { command } => streams::run(store, command, output).await,
        Command::Events { command } => events::run(store, command, output).await,
        Command::Head => events::head(store, output).await,
        Command::Projections { command } => projections::run(store, command, output).await,
        Command::DeadLetters { command } => dead_letters::run(store, command, output).await,
        Command::Runners { command } => runners::run(store, command, output).await,
        Command::Lag => runners::run(store, cli::RunnersCommand::Lag, output).await,
        Command::Schema { .. } => Err(CliError::Usage(
            "`schema` commands read registry files, not a store".into(),
        )),
    }
}
