//! Commands under faults: replies dropped by a TCP proxy in front of PostgreSQL, and appends
//! that outlast the repository's append timeout on SQLite and PostgreSQL. Every command must be
//! applied exactly once: none twice, none lost.

mod design_domain;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use design_domain::*;
use eventcore::prelude::*;

/// Accounts the commands are spread over.
const ACCOUNTS: usize = 4;

fn account(i: usize) -> String {
    format!("faults-{}", i % ACCOUNTS)
}

/// What the caller saw while running commands.
#[derive(Debug, Default)]
struct Calls {
    /// Errors the caller retried because they were retryable.
    retried: AtomicU64,
    /// Errors whose outcome the repository could not resolve (the caller retried them too).
    ambiguous: AtomicU64,
}

/// Deposits `amount` into its account until it succeeds, as a caller that retries errors that
/// are retryable or ambiguous would.
async fn deposit<S: EventStore>(accounts: &Repository<Account, S>, amount: i64, calls: &Calls) {
    let id = account(usize::try_from(amount).unwrap());
    for _ in 0..50 {
        match accounts
            .execute_retrying(&id, 10, &CommandContext::new(), || Deposit { amount })
            .await
        {
            Ok(_) => return,
            Err(error) if error.is_ambiguous() => {
                calls.ambiguous.fetch_add(1, Ordering::SeqCst);
            }
            Err(error) if error.is_retryable() => {
                calls.retried.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("deposit {amount} failed: {error}"),
        }
    }
    panic!("deposit {amount} did not succeed in 50 calls");
}

/// How many of the deposits `1..=count` are stored twice (or more), and how many are missing.
async fn audit<S: EventStore>(store: &S, count: i64) -> (usize, usize) {
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for i in 0..ACCOUNTS {
        let stream = Repository::<Account, S>::stream_id(&account(i));
        for event in store.read_stream(&stream, 1, usize::MAX).await.unwrap() {
            let payload = event.payload_json().unwrap();
            *seen.entry(payload["amount"].as_i64().unwrap()).or_default() += 1;
        }
    }
    let twice = seen.values().filter(|&&n| n > 1).count();
    let lost = (1..=count).filter(|amount| !seen.contains_key(amount)).count();
    assert_eq!(seen.keys().filter(|a| !(1..=count).contains(*a)).count(), 0);
    (twice, lost)
}

/// Runs deposits `1..=count` on `workers` tasks at once.
async fn run_concurrently<S: EventStore>(
    accounts: &Repository<Account, S>,
    count: i64,
    workers: i64,
) -> Arc<Calls> {
    let calls = Arc::new(Calls::default());
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (accounts, calls) = (accounts.clone(), Arc::clone(&calls));
            tokio::spawn(async move {
                for amount in (1..=count).filter(|a| a % workers == worker) {
                    deposit(&accounts, amount, &calls).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    calls
}

/// Holds SQLite's write lock from another connection for `hold`, then lets go for `pause`,
/// until `stop` is set.
fn hold_sqlite_lock(path: std::path::PathBuf, hold: Duration, pause: Duration, stop: Arc<AtomicBool>) -> u64 {
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut held = 0;
    while !stop.load(Ordering::SeqCst) {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
        held += 1;
        std::thread::sleep(pause);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_appends_past_the_append_timeout_are_applied_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let accounts =
        Repository::<Account, _>::new(store.clone()).with_append_timeout(Duration::from_millis(40));
    let stop = Arc::new(AtomicBool::new(false));
    let blocker = {
        let (path, stop) = (path.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            hold_sqlite_lock(path, Duration::from_millis(150), Duration::from_millis(100), stop)
        })
    };
    let calls = run_concurrently(&accounts, 200, 4).await;
    stop.store(true, Ordering::SeqCst);
    let held = blocker.join().unwrap();
    let (twice, lost) = audit(&store, 200).await;
    println!(
        "sqlite, append timeout 40 ms, write lock held {held} times: 200 commands, \
         {twice} applied twice, {lost} lost, {} retried, {} unresolved",
        calls.retried.load(Ordering::SeqCst),
        calls.ambiguous.load(Ordering::SeqCst)
    );
    assert!(held >= 1, "the store was slowed down");
    assert_eq!((twice, lost), (0, 0));
    assert_eq!(
        calls.ambiguous.load(Ordering::SeqCst),
        0,
        "every outcome was resolved"
    );
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use eventcore::store::postgres::tokio_postgres::config::Host;
    use eventcore::store::postgres::tokio_postgres::{self, Config, NoTls};
    use eventcore::store::ExpectedVersion;
    use eventcore::PostgresStore;
    use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
    use eventcore_testing::proxy::FaultProxy;

    /// A proxy in front of the server of `url`, and the URL that goes through it.
    async fn proxied(url: &str) -> (FaultProxy, String) {
        let config: Config = url.parse().unwrap();
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            other => panic!("the test needs a TCP host, not {other:?}"),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let proxy = FaultProxy::start(format!("{host}:{port}")).await.unwrap();
        let user = config.get_user().unwrap_or("postgres");
        let password = config
            .get_password()
            .map(|p| format!(":{}", String::from_utf8_lossy(p)))
            .unwrap_or_default();
        let dbname = config.get_dbname().unwrap_or(user);
        let through = format!("postgres://{user}{password}@127.0.0.1:{}/{dbname}", proxy.port());
        (proxy, through)
    }

    /// The deposits' event type, which only the append sends (in its `Bind`): the fault waits
    /// for it, so the reply lost is the append's.
    fn append_needle() -> Vec<u8> {
        let event = MoneyDeposited {
            amount: 1,
            currency: "EUR".into(),
        };
        eventcore::NewEvent::encode(&event, "account", "x")
            .unwrap()
            .event_type
            .into_bytes()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_whose_reply_is_lost_is_ambiguous_and_a_re_send_resolves_it() {
        let Some(url) = postgres_url() else { return };
        let (proxy, through) = proxied(&url).await;
        let store = PostgresStore::builder()
            .schema(unique_schema("ec_faults_one"))
            .connect(&through)
            .await
            .unwrap();
        let event = eventcore::NewEvent::encode(
            &MoneyDeposited {
                amount: 1,
                currency: "EUR".into(),
            },
            "account",
            "x",
        )
        .unwrap();
        proxy.drop_reply_to(append_needle());
        let error = store
            .append("account-x", ExpectedVersion::NoStream, vec![event.clone()])
            .await
            .unwrap_err();
        assert!(!proxy.is_armed() && proxy.counters().dropped_replies == 1);
        assert!(
            error.is_ambiguous(),
            "a reply lost after the append was sent: {error:?}"
        );
        // The pool replaces the closed connection; the same batch comes back with its result.
        let resent = store
            .append("account-x", ExpectedVersion::NoStream, vec![event])
            .await
            .unwrap();
        assert_eq!((resent.first_version, resent.last_version), (1, 1));
        assert_eq!(store.stream_version("account-x").await.unwrap(), 1);
        drop_schema(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_replies_never_apply_a_command_twice_or_lose_it() {
        let Some(url) = postgres_url() else { return };
        let (proxy, through) = proxied(&url).await;
        let store = PostgresStore::builder()
            .schema(unique_schema("ec_faults_drop"))
            .connect(&through)
            .await
            .unwrap();
        let accounts = Repository::<Account, _>::new(store.clone());
        let calls = Calls::default();
        let mut armed = 0;
        for amount in 1..=400 {
            // Deterministically, one append in five loses its reply.
            if amount % 5 == 3 {
                proxy.drop_reply_to(append_needle());
                armed += 1;
            }
            deposit(&accounts, amount, &calls).await;
        }
        let (twice, lost) = audit(&store, 400).await;
        let counters = proxy.counters();
        println!(
            "postgres, dropped replies: 400 commands, {} replies dropped, {} connections, \
             {twice} applied twice, {lost} lost, {} retried, {} unresolved",
            counters.dropped_replies,
            counters.connections,
            calls.retried.load(Ordering::SeqCst),
            calls.ambiguous.load(Ordering::SeqCst)
        );
        assert_eq!(counters.dropped_replies, armed, "every armed fault hit an append");
        assert_eq!((twice, lost), (0, 0));
        assert_eq!(
            calls.ambiguous.load(Ordering::SeqCst),
            0,
            "every outcome was resolved"
        );
        drop_schema(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_past_the_append_timeout_are_applied_exactly_once() {
        let Some(url) = postgres_url() else { return };
        let store = PostgresStore::builder()
            .schema(unique_schema("ec_faults_timeout"))
            .connect(&url)
            .await
            .unwrap();
        let accounts =
            Repository::<Account, _>::new(store.clone()).with_append_timeout(Duration::from_millis(40));
        // A competing transaction holds one account's stream lock at a time, for 150 ms.
        let stop = Arc::new(AtomicBool::new(false));
        let blocker = {
            let (store, stop, url) = (store.clone(), Arc::clone(&stop), url.clone());
            tokio::spawn(async move {
                let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
                tokio::spawn(connection);
                let mut held = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let stream = Repository::<Account, PostgresStore>::stream_id(&account(held as usize));
                    let tx = client.transaction().await.unwrap();
                    store
                        .append_in_transaction(&tx, &stream, ExpectedVersion::Any, Vec::new())
                        .await
                        .unwrap();
                    tx.execute("SELECT pg_sleep(0.15)", &[]).await.unwrap();
                    tx.commit().await.unwrap();
                    held += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                held
            })
        };
        let calls = run_concurrently(&accounts, 200, 4).await;
        stop.store(true, Ordering::SeqCst);
        let held = blocker.await.unwrap();
        let (twice, lost) = audit(&store, 200).await;
        println!(
            "postgres, append timeout 40 ms, stream lock held {held} times: 200 commands, \
             {twice} applied twice, {lost} lost, {} retried, {} unresolved",
            calls.retried.load(Ordering::SeqCst),
            calls.ambiguous.load(Ordering::SeqCst)
        );
        assert!(held >= 1, "the store was slowed down");
        assert_eq!((twice, lost), (0, 0));
        assert_eq!(
            calls.ambiguous.load(Ordering::SeqCst),
            0,
            "every outcome was resolved"
        );
        drop_schema(&store).await;
    }
}
