//! The behaviour every `EventStore` shares, written once and run for each store.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{edge_times, event, events, full_event, Incremented};
use eventcore::event::DecodeError;
use eventcore::store::{validate_stream_id, DEFAULT_MAX_PAYLOAD_BYTES, MAX_STREAM_ID_BYTES};
use eventcore::{EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreError};
use uuid::Uuid;

/// Runs each behaviour against `MemoryStore`, a file-backed `SqliteStore` and an in-memory one.
macro_rules! for_each_store {
    ($($behaviour:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    super::$behaviour(eventcore::MemoryStore::new()).await;
                }
            )*
        }
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = eventcore::SqliteStore::open(dir.path().join("events.db")).await.unwrap();
                    super::$behaviour(store).await;
                }
            )*
        }
        mod sqlite_in_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    super::$behaviour(eventcore::SqliteStore::open_in_memory().await.unwrap()).await;
                }
            )*
        }
    };
}

for_each_store!(
    any_appends_at_every_version,
    no_stream_accepts_only_a_new_stream,
    exact_accepts_only_that_version,
    stream_exists_refuses_a_missing_stream,
    empty_batch_checks_the_expectation_and_writes_nothing,
    append_reports_versions_and_positions,
    batch_with_a_duplicate_event_id_stores_nothing,
    batch_with_an_oversized_payload_stores_nothing,
    every_field_round_trips,
    edge_times_round_trip_exactly,
    read_stream_pages_from_a_version,
    read_all_pages_in_global_order,
    similar_stream_ids_stay_apart,
    hostile_stream_ids_round_trip,
    invalid_stream_ids_are_rejected,
    clones_share_the_events,
    concurrent_writers_on_one_stream_never_lose_or_duplicate,
    concurrent_writers_on_many_streams_keep_global_order,
    unknown_event_type_is_a_decode_error,
    payload_that_does_not_fit_the_type_is_a_decode_error,
);

fn assert_conflict(
    result: Result<impl std::fmt::Debug, StoreError>,
    stream: &str,
    exp: ExpectedVersion,
    act: u64,
) {
    match result {
        Err(StoreError::VersionConflict {
            stream_id,
            expected,
            actual,
        }) => assert_eq!((stream_id.as_str(), expected, actual), (stream, exp, act)),
        other => panic!("expected a conflict (expected {exp}, actual {act}) on `{stream}`, got {other:?}"),
    }
}

async fn read_everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    store.read_all(1, usize::MAX).await.unwrap()
}

async fn any_appends_at_every_version<S: EventStore>(store: S) {
    for round in 0..3_u64 {
        let written = store.append("s", ExpectedVersion::Any, events(2)).await.unwrap();
        assert_eq!(
            (written.first_version, written.last_version),
            (round * 2 + 1, round * 2 + 2)
        );
    }
    assert_eq!(store.stream_version("s").await.unwrap(), 6);
}

async fn no_stream_accepts_only_a_new_stream<S: EventStore>(store: S) {
    store
        .append("s", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    assert_conflict(
        store.append("s", ExpectedVersion::NoStream, events(1)).await,
        "s",
        ExpectedVersion::NoStream,
        1,
    );
    assert_eq!(store.stream_version("s").await.unwrap(), 1);
}

async fn exact_accepts_only_that_version<S: EventStore>(store: S) {
    assert_conflict(
        store.append("s", ExpectedVersion::Exact(3), events(1)).await,
        "s",
        ExpectedVersion::Exact(3),
        0,
    );
    store
        .append("s", ExpectedVersion::Exact(0), events(2))
        .await
        .unwrap();
    store
        .append("s", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    for stale in [0, 1, 2, 4] {
        assert_conflict(
            store.append("s", ExpectedVersion::Exact(stale), events(1)).await,
            "s",
            ExpectedVersion::Exact(stale),
            3,
        );
    }
    let stored = store.read_stream("s", 1, 100).await.unwrap();
    assert_eq!(stored.len(), 3, "a conflicting append must write nothing");
}

async fn stream_exists_refuses_a_missing_stream<S: EventStore>(store: S) {
    assert_conflict(
        store.append("s", ExpectedVersion::StreamExists, events(1)).await,
        "s",
        ExpectedVersion::StreamExists,
        0,
    );
    assert!(read_everything(&store).await.is_empty());
    store
        .append("s", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let written = store
        .append("s", ExpectedVersion::StreamExists, events(1))
        .await
        .unwrap();
    assert_eq!(written.last_version, 2);
}

async fn empty_batch_checks_the_expectation_and_writes_nothing<S: EventStore>(store: S) {
    let written = store
        .append("s", ExpectedVersion::NoStream, vec![])
        .await
        .unwrap();
    assert_eq!((written.first_version, written.last_version), (1, 0));
    assert!(written.positions.is_empty());
    assert_eq!(store.stream_version("s").await.unwrap(), 0);
    assert_conflict(
        store.append("s", ExpectedVersion::StreamExists, vec![]).await,
        "s",
        ExpectedVersion::StreamExists,
        0,
    );
    store.append("s", ExpectedVersion::Any, events(2)).await.unwrap();
    assert_conflict(
        store.append("s", ExpectedVersion::Exact(1), vec![]).await,
        "s",
        ExpectedVersion::Exact(1),
        2,
    );
    let written = store
        .append("s", ExpectedVersion::Exact(2), vec![])
        .await
        .unwrap();
    assert_eq!((written.first_version, written.last_version), (3, 2));
    assert_eq!(read_everything(&store).await.len(), 2);
}

async fn append_reports_versions_and_positions<S: EventStore>(store: S) {
    let a = store
        .append("a", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    let b = store
        .append("b", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    let a2 = store
        .append("a", ExpectedVersion::Exact(3), events(1))
        .await
        .unwrap();
    assert_eq!((a.first_version, a.last_version, a.positions.len()), (1, 3, 3));
    assert_eq!((b.first_version, b.last_version, b.positions.len()), (1, 2, 2));
    assert_eq!((a2.first_version, a2.last_version), (4, 4));
    let reported: Vec<u64> = [a.positions, b.positions, a2.positions].concat();
    assert!(reported.windows(2).all(|w| w[0] < w[1]), "positions {reported:?}");
    let stored: Vec<u64> = read_everything(&store)
        .await
        .iter()
        .map(|e| e.global_position)
        .collect();
    assert_eq!(stored, reported);
}

async fn batch_with_a_duplicate_event_id_stores_nothing<S: EventStore>(store: S) {
    let first = events(2);
    store
        .append("s", ExpectedVersion::Any, first.clone())
        .await
        .unwrap();
    let before = read_everything(&store).await;

    // The same id twice within one batch: the first copy must not stay behind either.
    let mut batch = events(3);
    batch[2].event_id = batch[0].event_id;
    match store.append("s", ExpectedVersion::Exact(2), batch.clone()).await {
        Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, batch[0].event_id),
        other => panic!("expected a duplicate id, got {other:?}"),
    }

    // An id already stored, in another stream, after a fresh event.
    let mut batch = events(2);
    batch[1].event_id = first[1].event_id;
    match store.append("other", ExpectedVersion::NoStream, batch).await {
        Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, first[1].event_id),
        other => panic!("expected a duplicate id, got {other:?}"),
    }

    assert_eq!(read_everything(&store).await, before);
    assert_eq!(store.stream_version("s").await.unwrap(), 2);
    assert_eq!(store.stream_version("other").await.unwrap(), 0);
    // The store still accepts the next good batch at the old version.
    let written = store
        .append("s", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(written.last_version, 3);
}

async fn batch_with_an_oversized_payload_stores_nothing<S: EventStore>(store: S) {
    let mut batch = events(3);
    batch[1].payload = vec![b' '; DEFAULT_MAX_PAYLOAD_BYTES + 1].into();
    match store.append("s", ExpectedVersion::Any, batch).await {
        Err(StoreError::PayloadTooLarge {
            stream_id,
            index,
            size,
            limit,
            ..
        }) => assert_eq!(
            (stream_id.as_str(), index, size, limit),
            ("s", 1, DEFAULT_MAX_PAYLOAD_BYTES + 1, DEFAULT_MAX_PAYLOAD_BYTES)
        ),
        other => panic!("expected PayloadTooLarge, got {other:?}"),
    }
    assert!(read_everything(&store).await.is_empty());
    let mut at_limit = events(1);
    at_limit[0].payload = vec![b' '; DEFAULT_MAX_PAYLOAD_BYTES].into();
    store
        .append("s", ExpectedVersion::NoStream, at_limit)
        .await
        .unwrap();
}

fn expected_record(new: &NewEvent, stream_id: &str, version: u64, position: u64) -> RecordedEvent {
    new.clone().into_recorded(stream_id, version, position)
}

async fn every_field_round_trips<S: EventStore>(store: S) {
    let batch: Vec<NewEvent> = (0..3).map(full_event).collect();
    let written = store
        .append("acc-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    let expected: Vec<RecordedEvent> = batch
        .iter()
        .zip(&written.positions)
        .zip(1..)
        .map(|((new, &position), version)| expected_record(new, "acc-1", version, position))
        .collect();
    assert_eq!(store.read_stream("acc-1", 1, 10).await.unwrap(), expected);
    assert_eq!(read_everything(&store).await, expected);
    // Bytes pass through untouched, whatever they are: decoding is the codec's job.
    let mut raw = event(serde_json::Value::Null);
    raw.payload = vec![0, 159, 146, 150, b'{'].into();
    store
        .append("raw", ExpectedVersion::Any, vec![raw.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.read_stream("raw", 1, 1).await.unwrap()[0].payload,
        raw.payload
    );
}

async fn edge_times_round_trip_exactly<S: EventStore>(store: S) {
    let batch: Vec<NewEvent> = edge_times()
        .into_iter()
        .map(|at| NewEvent {
            occurred_at: at,
            ..event(serde_json::json!({}))
        })
        .collect();
    store
        .append("times", ExpectedVersion::Any, batch.clone())
        .await
        .unwrap();
    let stored: Vec<_> = store
        .read_stream("times", 1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.occurred_at)
        .collect();
    let sent: Vec<_> = batch.iter().map(|e| e.occurred_at).collect();
    assert_eq!(stored, sent);
}

async fn read_stream_pages_from_a_version<S: EventStore>(store: S) {
    store.append("s", ExpectedVersion::Any, events(10)).await.unwrap();
    store
        .append("noise", ExpectedVersion::Any, events(5))
        .await
        .unwrap();
    let versions = |page: Vec<RecordedEvent>| page.iter().map(|e| e.stream_version).collect::<Vec<_>>();
    assert_eq!(versions(store.read_stream("s", 4, 3).await.unwrap()), [4, 5, 6]);
    assert_eq!(versions(store.read_stream("s", 9, 100).await.unwrap()), [9, 10]);
    assert_eq!(versions(store.read_stream("s", 0, 2).await.unwrap()), [1, 2]);
    assert!(store.read_stream("s", 11, 100).await.unwrap().is_empty());
    assert!(store.read_stream("s", u64::MAX, 100).await.unwrap().is_empty());
    assert!(store.read_stream("s", 1, 0).await.unwrap().is_empty());
    assert!(store.read_stream("missing", 1, 100).await.unwrap().is_empty());
    let page = store.read_stream("s", 1, usize::MAX).await.unwrap();
    assert_eq!(versions(page.clone()), (1..=10).collect::<Vec<_>>());
    let numbers: Vec<_> = page
        .iter()
        .map(|e| e.payload_json().unwrap()["n"].clone())
        .collect();
    assert_eq!(numbers, (0..10).map(serde_json::Value::from).collect::<Vec<_>>());
}

async fn read_all_pages_in_global_order<S: EventStore>(store: S) {
    let mut appended = Vec::new();
    for round in 0..5 {
        for stream in ["a", "b", "c"] {
            let batch = events(1 + round % 2);
            appended.extend(batch.iter().map(|e| e.event_id));
            store.append(stream, ExpectedVersion::Any, batch).await.unwrap();
        }
    }
    let mut paged = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        from = last.global_position + 1;
        paged.extend(page);
    }
    assert_eq!(paged.iter().map(|e| e.event_id).collect::<Vec<_>>(), appended);
    assert!(paged
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    assert!(store.read_all(from, 10).await.unwrap().is_empty());
    assert!(store.read_all(u64::MAX, 10).await.unwrap().is_empty());
    assert!(store.read_all(1, 0).await.unwrap().is_empty());
    for stream in ["a", "b", "c"] {
        let versions: Vec<u64> = paged
            .iter()
            .filter(|e| e.stream_id == stream)
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    }
    // Reading from the middle starts at that position.
    let middle = paged[6].global_position;
    assert_eq!(
        store.read_all(middle, 1).await.unwrap()[0].event_id,
        paged[6].event_id
    );
}

async fn similar_stream_ids_stay_apart<S: EventStore>(store: S) {
    // SQL wildcards and case must be compared literally.
    let ids = ["a%", "ab", "a_", "a", "A", "a\\", "a\\%"];
    for (i, id) in ids.iter().enumerate() {
        store
            .append(id, ExpectedVersion::NoStream, events(i + 1))
            .await
            .unwrap();
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(store.stream_version(id).await.unwrap(), i as u64 + 1, "{id}");
        let stored = store.read_stream(id, 1, 100).await.unwrap();
        assert_eq!(stored.len(), i + 1, "{id}");
        assert!(stored.iter().all(|e| e.stream_id == *id));
    }
}

async fn hostile_stream_ids_round_trip<S: EventStore>(store: S) {
    let max_len_multibyte = "🌍".repeat(MAX_STREAM_ID_BYTES / 4);
    let ids = [
        "it's",
        "say \"hi\"",
        "'; DROP TABLE events; --",
        "\"; DELETE FROM events WHERE 1=1; --",
        "Robert'); DROP TABLE students;--",
        "emoji 🦀🔥👩👧",
        "rtl txet עברית العربية",
        "combining e\u{301}\u{302}\u{303} Z\u{351}\u{35b}",
        "100%",
        "under_score",
        "back\\slash\\\\",
        "?1 :name @p $x",
        " leading and trailing ",
        max_len_multibyte.as_str(),
    ];
    for id in ids {
        assert!(validate_stream_id(id).is_ok(), "{id}");
        let batch = vec![full_event(1)];
        store
            .append(id, ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        let stored = store.read_stream(id, 1, 10).await.unwrap();
        assert_eq!(stored.len(), 1, "{id}");
        assert_eq!(stored[0].stream_id, id);
        assert_eq!(stored[0].payload, batch[0].payload);
        assert_eq!(store.stream_version(id).await.unwrap(), 1);
    }
    let all = read_everything(&store).await;
    assert_eq!(all.iter().map(|e| e.stream_id.as_str()).collect::<Vec<_>>(), ids);
}

async fn invalid_stream_ids_are_rejected<S: EventStore>(store: S) {
    let too_long = "x".repeat(MAX_STREAM_ID_BYTES + 1);
    let too_long_multibyte = "🌍".repeat(MAX_STREAM_ID_BYTES / 4 + 1);
    let ids = [
        "",
        too_long.as_str(),
        too_long_multibyte.as_str(),
        "new\nline",
        "nul\0byte",
        "tab\there",
        "escape\u{1b}[31m",
        "delete\u{7f}",
        "c1 control \u{85}",
    ];
    for id in ids {
        match store.append(id, ExpectedVersion::Any, events(1)).await {
            Err(StoreError::InvalidStreamId { stream_id, .. }) => {
                assert_eq!(stream_id, id.chars().take(64).collect::<String>());
            }
            other => panic!("expected {id:?} to be rejected, got {other:?}"),
        }
    }
    assert!(read_everything(&store).await.is_empty());
}

async fn clones_share_the_events<S: EventStore>(store: S) {
    let other = store.clone();
    store
        .append("s", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    assert_eq!(other.stream_version("s").await.unwrap(), 2);
    other
        .append("s", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(store.read_stream("s", 1, 10).await.unwrap().len(), 3);
}

/// What one writer task got accepted: each append's result and the events it sent.
type Accepted = Vec<(eventcore::AppendResult, Vec<NewEvent>)>;

async fn write_with_retries<S: EventStore>(
    store: S,
    stream: &str,
    appends: usize,
    writer: usize,
) -> Accepted {
    let mut accepted = Vec::new();
    let mut conflicts = 0_u32;
    while accepted.len() < appends {
        let version = store.stream_version(stream).await.unwrap();
        let batch = events(1 + (writer + accepted.len()) % 3);
        match store
            .append(stream, ExpectedVersion::Exact(version), batch.clone())
            .await
        {
            Ok(written) => accepted.push((written, batch)),
            Err(StoreError::VersionConflict { actual, expected, .. }) => {
                assert_eq!(expected, ExpectedVersion::Exact(version));
                assert!(actual > version, "a conflict must report a newer version");
                conflicts += 1;
                tokio::task::yield_now().await;
            }
            Err(other) => panic!("writer {writer}: {other}"),
        }
        assert!(conflicts < 100_000, "writer {writer} starved");
    }
    accepted
}

async fn concurrent_writers_on_one_stream_never_lose_or_duplicate<S: EventStore>(store: S) {
    const WRITERS: usize = 8;
    const APPENDS: usize = 15;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write_with_retries(store.clone(), "hot", APPENDS, writer)))
        .collect();
    let mut accepted = Vec::new();
    for task in tasks {
        accepted.extend(task.await.unwrap());
    }
    let stored = store.read_stream("hot", 1, usize::MAX).await.unwrap();
    let expected_count: usize = accepted.iter().map(|(_, batch)| batch.len()).sum();
    assert_eq!(stored.len(), expected_count);
    assert_eq!(store.stream_version("hot").await.unwrap(), expected_count as u64);
    assert_eq!(
        stored.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (1..=expected_count as u64).collect::<Vec<_>>(),
        "versions must be gap-free"
    );
    assert!(stored
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    // Every accepted batch sits, contiguous and in order, where its append said it went.
    for (written, batch) in &accepted {
        assert_eq!(
            written.last_version - written.first_version + 1,
            batch.len() as u64
        );
        let start = usize::try_from(written.first_version - 1).unwrap();
        let slot = &stored[start..start + batch.len()];
        for ((record, new), position) in slot.iter().zip(batch).zip(&written.positions) {
            assert_eq!(record.event_id, new.event_id);
            assert_eq!(record.global_position, *position);
        }
    }
    let ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), stored.len(), "no event stored twice");
    assert_eq!(
        read_everything(&store).await,
        stored,
        "nothing stored but the accepted appends"
    );
}

async fn concurrent_writers_on_many_streams_keep_global_order<S: EventStore>(store: S) {
    const WRITERS: usize = 6;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("stream-{writer}");
                write_with_retries(store, &stream, 20, writer).await
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap().iter().map(|(_, b)| b.len()).sum::<usize>();
    }
    let all = read_everything(&store).await;
    assert_eq!(all.len(), total);
    assert!(all
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    for writer in 0..WRITERS {
        let stream = format!("stream-{writer}");
        let versions: Vec<u64> = all
            .iter()
            .filter(|e| e.stream_id == stream)
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(
            versions,
            (1..=versions.len() as u64).collect::<Vec<_>>(),
            "{stream}"
        );
    }
}

async fn unknown_event_type_is_a_decode_error<S: EventStore>(store: S) {
    let good = NewEvent::encode(&Incremented { by: 2 }, "counter", "c-1").unwrap();
    let unknown = NewEvent {
        event_type: "counter.exploded".to_owned(),
        ..NewEvent::encode(&Incremented { by: 3 }, "counter", "c-1").unwrap()
    };
    store
        .append("counter-c-1", ExpectedVersion::NoStream, vec![good, unknown])
        .await
        .unwrap();
    let stored = store.read_stream("counter-c-1", 1, 10).await.unwrap();
    assert_eq!(
        stored[0].decode::<Incremented>().unwrap().payload,
        Incremented { by: 2 }
    );
    let error = stored[1].decode::<Incremented>().unwrap_err();
    assert_eq!(
        (error.stream_id.as_str(), error.stream_version),
        ("counter-c-1", 2)
    );
    assert_eq!(error.event_id, stored[1].event_id);
    assert!(
        matches!(&error.source, DecodeError::UnknownEventType { event_type, .. } if event_type == "counter.exploded"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("counter-c-1") && message.contains("version 2"),
        "{message}"
    );
}

async fn payload_that_does_not_fit_the_type_is_a_decode_error<S: EventStore>(store: S) {
    let mut wrong_shape = NewEvent::encode(&Incremented { by: 1 }, "counter", "c-1").unwrap();
    wrong_shape.payload = br#"{"by":"lots"}"#.to_vec().into();
    let mut not_json = NewEvent::encode(&Incremented { by: 1 }, "counter", "c-1").unwrap();
    not_json.payload = b"\xff not json".to_vec().into();
    store
        .append(
            "counter-c-1",
            ExpectedVersion::NoStream,
            vec![wrong_shape, not_json],
        )
        .await
        .unwrap();
    let stored = store.read_stream("counter-c-1", 1, 10).await.unwrap();
    for (record, version) in stored.iter().zip(1..) {
        let error = record.decode::<Incremented>().unwrap_err();
        assert_eq!(
            (error.stream_id.as_str(), error.stream_version),
            ("counter-c-1", version)
        );
        assert!(matches!(error.source, DecodeError::Payload { .. }), "{error:?}");
    }
}
