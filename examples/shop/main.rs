//! The shop example: orders, payments, inventory and shipping, held together by a checkout saga,
//! on eventcore's embedded SQLite store.
//!
//! Four orders go through the checkout (reserve stock, charge the card, schedule shipping): one
//! ships, one card is declined, one address has no carrier, and one payment is never confirmed
//! before its deadline. Failures are compensated in reverse order (refund, release stock, cancel
//! the order). Then the demo prints the commands sent, the saga instances, the `order_summary`
//! table (queried with SQL) and the per-customer documents.
//!
//! `cargo run --example shop` runs it on a fresh temporary database;
//! `cargo run --example shop -- --payment-timeout-ms 300` shortens the payment window;
//! `cargo run --example shop -- --db shop.db` keeps the database (replaced on every run);
//! `cargo run --example shop -- --catalog` prints its flow diagram.

mod checkout;
mod dispatcher;
mod inventory;
mod order;
mod output;
mod payment;
mod projections;
mod scenario;
mod shipment;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use eventcore::SqliteStore;

use scenario::{Error, Time};

#[derive(Parser)]
#[command(about = "eventcore's shop example: a checkout saga across four aggregates")]
struct Cli {
    /// SQLite database file to write (replaced if it exists; default: a temporary file).
    #[arg(long)]
    db: Option<PathBuf>,
    /// How long a payment may wait for confirmation before the order is given up (at most 10 min).
    #[arg(long, default_value_t = 2000, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..=600_000))]
    payment_timeout_ms: u64,
    /// Print the shop's event catalog flow diagram (Mermaid) instead of running the demo.
    #[arg(long)]
    catalog: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
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

async fn run(cli: Cli) -> Result<(), Error> {
    if cli.catalog {
        let catalog = eventcore::schema::catalog::catalog().with_dispatch("checkout", dispatcher::TARGETS);
        println!("```mermaid\n{}```", catalog.mermaid());
        return Ok(());
    }
    let temporary = cli.db.is_none();
    let path = cli.db.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("eventcore-shop-{}.sqlite3", std::process::id()))
    });
    remove_database(&path)?;
    println!("event store: SQLite at {}", path.display());
    let window = Duration::from_millis(cli.payment_timeout_ms);
    println!("payment window: {} ms\n", cli.payment_timeout_ms);

    let store = SqliteStore::open(&path).await?;
    let outcome = scenario::run(store, Time::Real, window, output::checkout_finished).await;
    if temporary {
        remove_database(&path)?;
    }
    output::report(&outcome?);
    Ok(())
}

/// Removes the SQLite file at `path` and its journal files, if they exist.
fn remove_database(path: &Path) -> Result<(), Error> {
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::remove_file(&file) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("cannot replace {}: {error}", file.display()).into())
            }
            _ => {}
        }
    }
    Ok(())
}
