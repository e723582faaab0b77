//! The bank example: accounts kept in eventcore's embedded SQLite store.
//!
//! `cargo run --example bank` runs the demo on a fresh database;
//! `cargo run --example bank -- --db bank.db` keeps the database in `bank.db`.

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "eventcore's bank example")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// SQLite database file to use (default: a fresh file, removed afterwards).
    #[arg(long, global = true)]
    db: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Open accounts, move money, show a rejected command and a concurrency conflict (the default).
    Run,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Run => demo::run(cli.db).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
