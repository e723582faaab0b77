//! `eventcore`: the operator's tool for an eventcore store.
//!
//! It opens a store by URL (`sqlite:PATH`, `postgres://...`) and lists and shows streams and
//! events, the status and lag of runners (projections, consumers, relays, sagas, and a broker
//! bus's consumers), dead letters (list, show, replay, discard; the store's or a broker bus's),
//! saga instances and deadlines, resets projections for a rebuild, and exports, checks and
//! renders registry files. Every command prints a table for people, or JSON with `--json`.

mod cli;
mod dead_letters;
mod error;
mod events;
mod open;
mod output;
mod projections;
mod runners;
mod sagas;
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
    let uses_bus = matches!(
        cli.command,
        Command::DeadLetters { .. } | Command::Lag | Command::Runners { .. }
    );
    if cli.bus.given() && !uses_bus {
        return Err(CliError::Usage(
            "--redis and --nats apply to `dead-letters` and `lag` only".into(),
        ));
    }
    // A broker bus keeps its own dead letters: no store needed.
    if let Command::DeadLetters { command } = cli.command {
        if let Some(bus) = open::open_bus(&cli.bus).await? {
            let letters = dead_letters::broker_letters(&bus, dead_letters::consumer_of(&command)).await?;
            return dead_letters::run(&letters, command, output).await;
        }
        return with_store(
            cli.store.as_deref(),
            cli.schema.as_deref(),
            Command::DeadLetters { command },
            None,
            output,
        )
        .await;
    }
    let bus = open::open_bus(&cli.bus).await?;
    with_store(
        cli.store.as_deref(),
        cli.schema.as_deref(),
        cli.command,
        bus.as_ref(),
        output,
    )
    .await
}

/// Opens the store and runs `command` on it.
async fn with_store(
    url: Option<&str>,
    schema: Option<&str>,
    command: Command,
    bus: Option<&runners::Bus>,
    output: &Output,
) -> Result<(), CliError> {
    let url = url.ok_or(CliError::NoStore)?;
    let store = Store::open(url, schema, command.writes()).await?;
    match store {
        Store::Sqlite(store) => dispatch(&store, command, bus, output).await,
        #[cfg(feature = "postgres")]
        Store::Postgres(store) => dispatch(&store, command, bus, output).await,
    }
}

/// Runs a store command on `store`, whatever its backend.
async fn dispatch<S: eventcore::runner::RunnerStore>(
    store: &S,
    command: Command,
    bus: Option<&runners::Bus>,
    output: &Output,
) -> Result<(), CliError>
where
    eventcore::bus::DeadLetters<S>: dead_letters::Letters,
{
    match command {
        Command::Streams { command } => streams::run(store, command, output).await,
        Command::Events { command } => events::run(store, command, output).await,
        Command::Head => events::head(store, output).await,
        Command::Projections { command } => projections::run(store, command, output).await,
        Command::DeadLetters { command } => {
            let letters = dead_letters::store_letters(store, dead_letters::consumer_of(&command)).await?;
            dead_letters::run(&letters, command, output).await
        }
        Command::Runners { command } => runners::run(store, command, bus, output).await,
        Command::Lag => runners::run(store, cli::RunnersCommand::Lag, bus, output).await,
        Command::Sagas { command } => sagas::run(store, command, output).await,
        Command::Deadlines { command } => sagas::deadlines(store, command, output).await,
        Command::Schema { .. } => Err(CliError::Usage(
            "`schema` commands read registry files, not a store".into(),
        )),
    }
}
