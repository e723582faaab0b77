//! `dead-letters` and `lag` on a NATS JetStream bus (`--nats`), fed by a relay from an SQLite
//! store (skipped when `EVENTCORE_NATS_URL` is unset).

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{eventcore_async, eventually, Notifier, Open, Ticket};
use eventcore::bus::{Backoff, EventBus, NatsOptions, Relay};
use eventcore::{Repository, SqliteStore};
use futures_util::FutureExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_lag_of_a_nats_bus() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_NATS_URL") else {
        return;
    };
    let prefix = format!("ec-cli-{}", uuid::Uuid::now_v7().simple());
    let outcome = AssertUnwindSafe(scenario(&url, &prefix)).catch_unwind().await;
    let jetstream = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
    let name = prefix.to_uppercase();
    let _ = jetstream.delete_stream(&name).await;
    let _ = jetstream.delete_key_value(format!("{name}_letters")).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn scenario(url: &str, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let bus_args: Vec<String> = ["--nats", url, "--bus-prefix", prefix]
        .map(str::to_owned)
        .to_vec();
    let mut both_args = vec!["--store".to_owned(), format!("sqlite:{}", path.display())];
    both_args.extend(bus_args.iter().cloned());
    let bus_cli = |rest: &[&str]| eventcore_async(common::with_store(&bus_args, rest));
    let both_cli = |rest: &[&str]| eventcore_async(common::with_store(&both_args, rest));

    let options = NatsOptions::default()
        .prefix(prefix)
        .partitions(2)
        .fetch_wait(Duration::from_millis(100));
    let bus = EventBus::nats_with(url, options).await.unwrap();
    let tickets = Repository::<Ticket, _>::new(store.clone());
    for (id, title) in [("t-1", "printer jam"), ("t-2", "poison")] {
        tickets.execute(id, Open { title: title.into() }).await.unwrap();
    }
    let relay = Relay::new(store.clone(), bus.clone()).start();
    relay.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let notifier = Notifier::default();
    notifier.broken.store(true, Ordering::SeqCst);
    let consumer = bus
        .subscribe(notifier.clone())
        .max_attempts(2)
        .backoff(Backoff::exponential(
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
        .start();
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();

    let letters = bus_cli(&["--json", "dlq", "list", "notifier"])
        .await
        .expect(0)
        .json();
    assert_eq!(letters.as_array().map(Vec::len), Some(1), "{letters}");
    assert_eq!(letters[0]["event"]["payload"]["title"], "poison");
    bus_cli(&["dlq", "list", "nobody"]).await.expect(3);

    let lag = both_cli(&["--json", "lag"]).await.expect(0).json();
    let group = lag
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "notifier")
        .unwrap()
        .clone();
    assert_eq!(group["kind"], "nats_consumer");
    assert_eq!(
        (group["partitions"].as_u64(), group["lag"].as_u64()),
        (Some(2), Some(0)),
        "{group}"
    );

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
    eventually("the broker to count the new message", async || {
        let lag = both_cli(&["--json", "lag"]).await.expect(0).json();
        lag.as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "notifier" && r["undelivered"] == 1)
    })
    .await;
    let discarded = letters[0]["id"].as_str().unwrap().to_owned();
    bus_cli(&["dlq", "discard", "notifier", &discarded])
        .await
        .expect(0);
    assert_eq!(bus.dead_letters("notifier").count().await.unwrap(), 0);
    relay.stop().await.unwrap();
}
