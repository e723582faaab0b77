//! `dead-letters` and `lag` on the broker buses (`--redis`, `--nats`), fed by a relay from an
//! SQLite store (each skipped when its URL variable is unset).

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::brokers::{Broker, PARTITIONS};
use common::{eventcore_async, eventually, Notifier, Open, Ticket};
use eventcore::bus::{Backoff, Relay};
use eventcore::{Repository, SqliteStore};
use futures_util::FutureExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_lag_of_a_redis_bus() {
    dead_letters_and_lag(Broker::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_lag_of_a_nats_bus() {
    dead_letters_and_lag(Broker::Nats).await;
}

/// The scenario on `broker` under a fresh prefix, removed afterwards whatever the outcome.
async fn dead_letters_and_lag(broker: Broker) {
    let Some(url) = broker.url() else {
        return;
    };
    let prefix = format!("ec-cli-{}", uuid::Uuid::now_v7().simple());
    let outcome = AssertUnwindSafe(scenario(broker, &url, &prefix))
        .catch_unwind()
        .await;
    broker.cleanup(&url, &prefix).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(broker: Broker, url: &str, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let bus_args = broker.cli_args(url, prefix);
    let store_url = format!("sqlite:{}", path.display());
    // Dead letters need no store with a bus; lag reads both.
    let bus_cli = |rest: &[&str]| eventcore_async(common::with_store(&bus_args, rest));
    let both_cli = |rest: &[&str]| {
        let mut args = vec!["--store".to_owned(), store_url.clone()];
        args.extend(bus_args.iter().cloned());
        eventcore_async(common::with_store(&args, rest))
    };

    let bus = broker.bus(url, prefix).await;
    let tickets = Repository::<Ticket, _>::new(store.clone());
    for (id, title) in [("t-1", "printer jam"), ("t-2", "poison")] {
        tickets.execute(id, Open { title: title.into() }).await.unwrap();
    }
    let relay = Relay::new(store.clone(), bus.clone()).start();
    relay.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let notifier = Notifier::default();
    notifier.broken.store(true, Ordering::SeqCst);
    let subscribe = || {
        bus.subscribe(notifier.clone())
            .max_attempts(2)
            .backoff(Backoff::exponential(
                Duration::from_millis(1),
                Duration::from_millis(5),
            ))
            .start()
    };
    let consumer = subscribe();
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();

    // The bus's dead letters, not the store's (which has none).
    let letters = bus_cli(&["--json", "dlq", "list", "notifier"])
        .await
        .expect(0)
        .json();
    let letters = letters.as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["event"]["payload"]["title"], "poison");
    assert_eq!(letters[0]["attempts"], 2);
    let id = letters[0]["id"].as_str().unwrap().to_owned();
    let human = bus_cli(&["dead-letters", "show", "notifier", &id])
        .await
        .expect(0)
        .stdout;
    assert!(human.contains("mail server rejected `poison`"), "{human}");
    let human = bus_cli(&["dead-letters", "list", "notifier"])
        .await
        .expect(0)
        .stdout;
    assert!(
        human.starts_with("ID") && human.contains("ticket.opened"),
        "{human}"
    );
    let unknown = bus_cli(&["dead-letters", "list", "nobody"]).await.expect(3);
    assert!(
        unknown.stderr.contains(&format!(
            "the {} bus knows no consumer named `nobody`",
            broker.name()
        )),
        "{}",
        unknown.stderr
    );
    bus_cli(&[
        "dead-letters",
        "show",
        "notifier",
        "0190a5b0-0000-7000-8000-000000000000",
    ])
    .await
    .expect(3);
    // The store knows no consumer of that name: only the bus reaches it.
    common::eventcore_async(vec![
        "--store".into(),
        store_url.clone(),
        "dlq".into(),
        "list".into(),
        "notifier".into(),
    ])
    .await
    .expect(3);

    // Lag: the relay and the projection-free store, and the broker's consumer group.
    let lag = both_cli(&["--json", "lag"]).await.expect(0).json();
    let rows = lag.as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {lag}"))
            .clone()
    };
    assert_eq!(row("relay")["kind"], "relay");
    assert_eq!(row("relay")["lag"], 0);
    let group = row("notifier");
    assert_eq!(group["kind"], format!("{}_consumer", broker.name()));
    assert_eq!(
        (group["pending"].as_u64(), group["lag"].as_u64()),
        (Some(0), Some(0)),
        "{group}"
    );
    assert_eq!(
        group["partitions"].as_u64(),
        Some(u64::from(PARTITIONS)),
        "{group}"
    );

    // A consumer that is down falls behind: its lag counts what it has not been handed.
    consumer.stop().await.unwrap();
    tickets
        .execute(
            "t-3",
            Open {
                title: "vpn down".into(),
            },
        )
        .await
        .unwrap();
    relay.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    // The broker counts it once it has stored it (NATS reports consumer state a moment later).
    eventually("the broker to count the new message", async || {
        let lag = both_cli(&["--json", "runners", "lag"]).await.expect(0).json();
        lag.as_array().unwrap().iter().any(|r| {
            r["name"] == "notifier" && (r["undelivered"].as_u64(), r["lag"].as_u64()) == (Some(1), Some(1))
        })
    })
    .await;
    let human = both_cli(&["lag"]).await.expect(0).stdout;
    let line = human
        .lines()
        .find(|l| l.starts_with("notifier"))
        .unwrap_or_default();
    assert!(
        line.contains(&format!("{} consumer", broker.name())) && line.contains("0 unacked, 1 undelivered"),
        "{human}"
    );

    // Replay after the fix: the running consumer handles it and removes the letter.
    notifier.broken.store(false, Ordering::SeqCst);
    let consumer = subscribe();
    let replayed = bus_cli(&["--json", "dlq", "replay", "notifier", "--all"])
        .await
        .expect(0)
        .json();
    assert_eq!(replayed["replay_requested"], 1);
    let letters = bus.dead_letters("notifier");
    eventually("the replayed letter to be handled", async || {
        letters.count().await.unwrap() == 0
    })
    .await;
    assert!(notifier.sent.lock().unwrap().contains(&"poison".to_owned()));
    let empty = bus_cli(&["dead-letters", "list", "notifier"])
        .await
        .expect(0)
        .stdout;
    assert_eq!(empty, "consumer `notifier` has no dead letters\n");

    // Discard: a second poison ticket is dead-lettered, then dropped for good.
    notifier.broken.store(true, Ordering::SeqCst);
    tickets
        .execute(
            "t-4",
            Open {
                title: "poison".into(),
            },
        )
        .await
        .unwrap();
    relay.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    eventually("the second poison to be dead-lettered", async || {
        letters.count().await.unwrap() == 1
    })
    .await;
    let second = letters.list().await.unwrap()[0].id.to_string();
    bus_cli(&["dead-letters", "discard", "notifier", &second])
        .await
        .expect(0);
    assert_eq!(letters.count().await.unwrap(), 0);
    bus_cli(&["dead-letters", "discard", "notifier", &second])
        .await
        .expect(3);
    consumer.stop().await.unwrap();
    relay.stop().await.unwrap();
}
