//! Saga runners killed with SIGKILL during a stream of orders: every command is dispatched at
//! least once and applied once (idempotency keys), no instance is lost, and every deadline
//! scheduled before a kill fires after it.
#![allow(missing_docs)] // test types, not API

mod crash_support;
mod design_sagas;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::time::Duration;

use design_sagas::*;
use eventcore::chrono::{DateTime, Utc};
use eventcore::prelude::*;
use eventcore::runner::{Backoff, RetryPolicy};
use eventcore::saga::{Clock, Sagas};

const DB_ENV: &str = "EVENTCORE_SAGA_CRASH_DB";
const DIR_ENV: &str = "EVENTCORE_SAGA_CRASH_DIR";
const KILLS: u32 = 30;
const ORDERS_PER_ROUND: u32 = 6;

/// A clock shared between processes: a fixed start plus the seconds written in a file.
struct FileClock {
    path: PathBuf,
}

impl FileClock {
    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600, 0).unwrap()
    }

    fn advance(&self, seconds: i64) {
        let now = self.seconds() + seconds;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, now.to_string()).unwrap();
        std::fs::rename(&tmp, &self.path).unwrap();
    }

    fn seconds(&self) -> i64 {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        Self::start() + eventcore::chrono::Duration::seconds(self.seconds())
    }
}

fn sagas(store: SqliteStore, dir: &Path) -> Sagas<SqliteStore> {
    let shop = Shop::new(store.clone());
    let log = dir.join("dispatched.log");
    Sagas::new(store)
        .clock(FileClock {
            path: dir.join("clock"),
        })
        .batch_size(8)
        .lease_ttl(Duration::from_millis(200))
        .dispatch_retry(RetryPolicy {
            max_attempts: 1000,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
        })
        .with::<Checkout, _>(move |command: ShopCommand, context: CommandContext| {
            let (shop, log) = (shop.clone(), log.clone());
            async move {
                // Logged before dispatching: a kill between the two still counts as an attempt.
                if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(&log) {
                    let _ = writeln!(file, "{}", context.idempotency_key.clone().unwrap_or_default());
                }
                shop.dispatch(command, context).await
            }
        })
}

/// The child's side: runs the sagas until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of the crash test, not a test"]
async fn crash_child_sagas() {
    let (Ok(db), Ok(dir)) = (std::env::var(DB_ENV), std::env::var(DIR_ENV)) else {
        return;
    };
    let store = SqliteStore::open(&db).await.expect("child opens the store");
    let running = sagas(store, Path::new(&dir)).start();
    tokio::time::sleep(Duration::from_secs(30)).await;
    drop(running);
}

fn spawn_child(db: &Path, dir: &Path) -> std::process::Child {
    crash_support::spawn_child("crash_child_sagas", &[(DB_ENV, db), (DIR_ENV, dir)])
}

async fn stream<S: EventStore>(store: &S, stream: &str) -> Vec<RecordedEvent> {
    store.read_stream(stream, 1, 100).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_apply_once_and_deadlines_fire_across_kills() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shop.db");
    let store = SqliteStore::open(&db).await.unwrap();
    let clock = FileClock {
        path: dir.path().join("clock"),
    };
    let orders = Repository::<Order, _>::new(store.clone());
    // Amounts: charged and shipped, refused by the card, never answered (times out).
    let amounts = [10, CARD_LIMIT + 1, 999];
    let mut placed: Vec<(String, i64)> = Vec::new();
    let mut delays = crash_support::Delays::new(0x5a6a);
    for round in 0..KILLS {
        let mut child = spawn_child(&db, dir.path());
        for n in 0..ORDERS_PER_ROUND {
            let id = format!("o-{round}-{n}");
            let amount = amounts[(n as usize) % amounts.len()];
            orders
                .execute(
                    &id,
                    PlaceOrder {
                        order_id: id.clone(),
                        amount,
                    },
                )
                .await
                .unwrap();
            placed.push((id, amount));
        }
        if round % 10 == 9 {
            clock.advance(700); // the timeouts of the orders handled so far fall due
        }
        tokio::time::sleep(delays.millis(10, 100)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    clock.advance(700);
    let sagas = sagas(store.clone(), dir.path());
    let running = sagas.start();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
        let stats = sagas.stats::<Checkout>().await.unwrap();
        if stats.active == 0 && stats.commands_pending == 0 && stats.deadlines_pending == 0 {
            let head = store.head_position().await.unwrap();
            running.wait_caught_up(Duration::from_secs(30)).await.unwrap();
            if store.head_position().await.unwrap() == head {
                break;
            }
        }
        if stats.deadlines_pending > stats.deadlines_overdue {
            // Orders first handled by this runner scheduled their timeouts from the current time.
            clock.advance(700);
        }
        assert!(tokio::time::Instant::now() < deadline, "never settled: {stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.stop().await.unwrap();

    let instances: BTreeMap<String, _> = sagas
        .instances::<Checkout>()
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    assert_eq!(instances.len(), placed.len(), "one instance per order, none lost");
    for (id, amount) in &placed {
        let instance = &instances[id];
        assert!(instance.ended, "{id} still active");
        let order = stream(&store, &format!("order-{id}")).await;
        let payment = stream(&store, &format!("payment-{id}")).await;
        let shipment = stream(&store, &format!("shipment-{id}")).await;
        let types =
            |events: &[RecordedEvent]| events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>();
        // No command applied twice: each aggregate holds each outcome at most once.
        assert!(
            order.len() <= 2 && payment.len() <= 1 && shipment.len() <= 1,
            "{id}: {:?} {:?} {:?}",
            types(&order),
            types(&payment),
            types(&shipment)
        );
        let reason = order
            .get(1)
            .map(|e| e.payload_json().unwrap()["reason"].as_str().unwrap().to_owned());
        match *amount {
            999 => {
                assert!(payment.is_empty(), "{id}");
                assert_eq!(
                    reason.as_deref(),
                    Some("payment timed out"),
                    "{id}: the deadline fired"
                );
            }
            a if a > CARD_LIMIT => {
                assert_eq!(types(&payment), ["payment.failed"], "{id}");
                // Compensated for the failure, or for a timeout that fell due first.
                assert!(reason.is_some(), "{id}: compensated");
            }
            _ => {
                assert_eq!(types(&payment), ["payment.charged"], "{id}");
                match reason.as_deref() {
                    None => assert_eq!(types(&shipment), ["shipment.order_shipped"], "{id}"),
                    // The clock moved past the timeout while the charge waited for a restart.
                    Some(reason) => assert_eq!(reason, "payment timed out", "{id}"),
                }
            }
        }
    }
    assert!(sagas.dead_letters::<Checkout>().await.unwrap().is_empty());
    assert!(sagas.deadlines::<Checkout>().await.unwrap().is_empty());
    let dispatched = std::fs::read_to_string(dir.path().join("dispatched.log")).unwrap_or_default();
    let redispatched = dispatched.lines().count()
        - dispatched
            .lines()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
    println!(
        "{} dispatches, {redispatched} of them again after a kill",
        dispatched.lines().count()
    );
}
