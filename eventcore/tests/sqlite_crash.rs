//! A process appending to SQLite is killed with SIGKILL at random moments; every time, the store
//! reopens with every batch whole or absent and every stream's versions gap-free.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use eventcore::{EventStore, ExpectedVersion, NewEvent, SqliteStore};

const CHILD_ENV: &str = "EVENTCORE_CRASH_CHILD_DB";
const KILLS: u32 = 50;
const STREAMS: u64 = 4;

/// The child's side: appends batches of 1..=16 events forever, until it is killed.
///
/// A helper, not a test: `batches_survive_sigkill` runs it with `--ignored --exact`.
#[tokio::test]
#[ignore = "helper process of `batches_survive_sigkill`, not a test"]
async fn crash_child_appender() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return; // Only does something as the child of `batches_survive_sigkill`.
    };
    let store = SqliteStore::open(&path).await.expect("child opens the store");
    let mut seed = u64::from(std::process::id());
    for batch in 0u64.. {
        let stream = format!("crash-{}", batch % STREAMS);
        let size = 1 + next(&mut seed) % 16;
        let batch_id = format!("{}-{batch}", std::process::id());
        let events = (0..size)
            .map(|i| {
                let mut event = NewEvent::encode(&Marker, "crash", &stream).expect("encode");
                event.payload = format!("{{\"i\":{i}}}").into_bytes().into();
                event.metadata.insert("batch".into(), batch_id.clone());
                event.metadata.insert("size".into(), size.to_string());
                event
            })
            .collect();
        let version = store.stream_version(&stream).await.expect("version");
        store
            .append(&stream, ExpectedVersion::Exact(version), events)
            .await
            .expect("append");
    }
}

#[tokio::test]
async fn batches_survive_sigkill() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("crash.db");
    let exe = std::env::current_exe()?;
    let mut seed = 0x5eed_u64;
    let mut total_events = 0;
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child_appender",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Kill it at a random moment, from a few ms (maybe before it opened the store) to ~120 ms in.
        tokio::time::sleep(Duration::from_millis(5 + next(&mut seed) % 120)).await;
        child.kill()?; // SIGKILL on Unix
        child.wait()?;
        total_events = check_store(&db)
            .await
            .map_err(|e| format!("after kill {round}: {e}"))?;
    }
    assert!(total_events > 0, "the child never committed anything");
    Ok(())
}

/// Reopens the store and checks batch atomicity and gap-free versions; returns the event count.
async fn check_store(db: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let store = SqliteStore::open(db).await?;
    let mut batches: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut position = 0;
    let mut count = 0;
    loop {
        let page = store.read_all(position + 1, 500).await?;
        let Some(last) = page.last() else { break };
        position = last.global_position;
        for event in &page {
            count += 1;
            let expected = versions.entry(event.stream_id.clone()).or_insert(0);
            *expected += 1;
            if event.stream_version != *expected {
                return Err(format!("{} jumps to version {}", event.stream_id, event.stream_version).into());
            }
            let size: usize = event.metadata.get("size").ok_or("no size")?.parse()?;
            let batch = event.metadata.get("batch").ok_or("no batch")?.clone();
            batches.entry(batch).or_insert((0, size)).0 += 1;
        }
    }
    for (stream, version) in &versions {
        assert_eq!(store.stream_version(stream).await?, *version);
    }
    if let Some((batch, (seen, size))) = batches.iter().find(|(_, (seen, size))| seen != size) {
        return Err(format!("batch {batch} is torn: {seen} of {size} events stored").into());
    }
    Ok(count)
}

/// A payload-less event type to build envelopes with.
struct Marker;

impl eventcore::DomainEvent for Marker {
    const EVENT_TYPES: &'static [eventcore::EventDescriptor] = &[eventcore::EventDescriptor {
        event_type: "crash.marker",
        version: 1,
    }];
    fn event_type(&self) -> &'static str {
        "crash.marker"
    }
    fn event_version(&self) -> u32 {
        1
    }
    fn encode_payload(&self) -> Result<Vec<u8>, eventcore::EncodeError> {
        Ok(b"{}".to_vec())
    }
    fn decode_payload(_: &str, _: u32, _: &[u8]) -> Result<Self, eventcore::DecodeError> {
        Ok(Marker)
    }
}

fn next(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}
