//! The demo: commands against accounts, a business error, a conflict, then the stored events.

use std::error::Error;
use std::path::PathBuf;

use eventcore::prelude::*;
use eventcore::NewEvent;
use eventcore_examples::bank::{Account, AccountEvent, Deposit, MoneyWithdrawn, OpenAccount, Withdraw};

type Accounts = Repository<Account, SqliteStore>;

/// Runs the demo against the SQLite file `db`, or a fresh temporary one.
pub async fn run(db: Option<PathBuf>) -> Result<(), Box<dyn Error>> {
    let temporary = db.is_none();
    let path = db.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("eventcore-bank-{}.sqlite3", uuid_like_suffix()))
    });
    println!("event store: SQLite at {}\n", path.display());
    let store = SqliteStore::open(&path).await?;
    let outcome = run_on(store).await;
    if temporary {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
    outcome
}

async fn run_on(store: SqliteStore) -> Result<(), Box<dyn Error>> {
    let accounts = Accounts::new(store.clone());

    println!("== commands");
    for (id, owner) in [("ada", "Ada Lovelace"), ("bob", "Bob Babbage")] {
        match accounts.execute(id, OpenAccount { owner: owner.into() }).await {
            Ok(done) => println!("open {id}: ok, stream version {}", done.version),
            Err(RepositoryError::Rejected(e)) => println!("open {id}: rejected: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    accounts.execute("ada", Deposit { amount: 100 }).await?;
    println!("ada deposits 100: ok");
    accounts.execute("ada", Withdraw { amount: 30 }).await?;
    println!("ada withdraws 30: ok");
    accounts.execute("bob", Deposit { amount: 20 }).await?;
    println!("bob deposits 20: ok");

    println!("\n== a business error appends nothing");
    let before = accounts.load("bob").await?.version();
    match accounts.execute("bob", Withdraw { amount: 500 }).await {
        Err(RepositoryError::Rejected(e)) => println!("bob withdraws 500: rejected: {e}"),
        Ok(_) => return Err("an overdraft was accepted".into()),
        Err(e) => return Err(e.into()),
    }
    let after = accounts.load("bob").await?.version();
    println!("bob's stream was at version {before} and still is: version {after}");

    println!("\n== a concurrency conflict");
    // Two clerks look at ada's account; the first commits, the second wrote on stale state.
    let seen_by_second_clerk = accounts.load("ada").await?;
    accounts.execute("ada", Deposit { amount: 5 }).await?;
    println!("clerk 1 deposits 5: ok");
    let stale = NewEvent::encode(
        &AccountEvent::from(MoneyWithdrawn { amount: 70 }),
        "account",
        "ada",
    )?;
    let stream = Accounts::stream_id("ada");
    let expected = ExpectedVersion::Exact(seen_by_second_clerk.version());
    match store.append(&stream, expected, vec![stale]).await {
        Err(e @ StoreError::VersionConflict { .. }) => println!("clerk 2 withdraws 70: refused: {e}"),
        Ok(_) => return Err("a stale write was accepted".into()),
        Err(e) => return Err(e.into()),
    }

    println!("\n== eight concurrent deposits, retried on conflict");
    let tasks: Vec<_> = (1..=8)
        .map(|n| {
            let accounts = accounts.clone();
            tokio::spawn(async move {
                accounts
                    .execute_retrying(
                        "bob",
                        20,
                        &CommandContext::new().correlation_id(format!("teller-{n}")),
                        || Deposit { amount: 1 },
                    )
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    println!("all 8 deposits stored");

    println!("\n== the stored events");
    println!(
        "{:>4}  {:<26} {:>3}  {:<12} {:>3}  payload",
        "pos", "type", "ver", "stream", "#"
    );
    let mut from = 1;
    loop {
        let page = store.read_all(from, 256).await?;
        for e in &page {
            println!(
                "{:>4}  {:<26} v{:<2}  {:<12} {:>3}  {}",
                e.global_position,
                e.event_type,
                e.event_version,
                e.stream_id,
                e.stream_version,
                String::from_utf8_lossy(&e.payload)
            );
        }
        match page.last() {
            Some(last) => from = last.global_position + 1,
            None => break,
        }
    }

    println!("\n== balances");
    for id in ["ada", "bob"] {
        let account = accounts.load(id).await?;
        println!(
            "{id}: {} EUR (stream version {})",
            account.state().balance,
            account.version()
        );
    }
    Ok(())
}

/// A suffix unique enough for a temporary file name.
fn uuid_like_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}
