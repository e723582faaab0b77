//! A conformance suite for event stores: every backend passes the same tests.
//!
//! A backend provides a [`StoreHarness`] (how to make a fresh, empty store and clean it up) and
//! runs the whole suite with one macro call in an integration test:
//!
//! ```ignore
//! // tests/conformance.rs of a backend crate
//! eventcore_testing::store_conformance_tests!(my_backend::TestHarness::default());
//! ```
//!
//! The suite covers appends and the expected-version rules, multi-stream appends, atomic batches (duplicate event
//! ids, oversized payloads), ordering, paged reads, hostile stream ids and metadata, live
//! subscriptions (catch-up, live, no gaps under concurrent writers with transactions held
//! open) and, where the harness can inject it, corrupt stored data. Each test runs on its own
//! multi-threaded tokio runtime, so the calling crate needs no tokio attribute.

// This module is a test suite: failing a check by panicking is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{SubsecRound, Utc};
use eventcore::envelope::Metadata;
use eventcore::store::DEFAULT_MAX_PAYLOAD_BYTES;
#[cfg(feature = "sqlite")]
use eventcore::SqliteStore;
use eventcore::{
    AppendResult, EventStore, ExpectedVersion, MemoryStore, NewEvent, RecordedEvent, StoreError, SubscribeAll,
};
use futures_util::StreamExt;
use uuid::Uuid;

mod idempotency;
mod log_batches;
mod multi_stream;
#[cfg(feature = "postgres")]
pub mod postgres;
mod snapshots;

pub use idempotency::{
    invalid_events_are_refused, resent_batch_returns_the_original_result,
    resent_batch_under_every_expectation,
};
pub use log_batches::{
    find_event_by_id, read_batch_filters_by_type, read_batch_misses_nothing_under_concurrent_writers,
    read_batch_pages_and_reports_the_head, reads_are_bounded_by_bytes,
};
pub use multi_stream::{
    append_all_checks_unchanged_streams, append_all_concurrent_writers_stay_whole,
    append_all_is_all_or_nothing, append_all_refuses_a_stream_twice,
    append_all_resent_returns_the_original_results, append_all_writes_every_stream,
};
pub use snapshots::{snapshot_keeps_the_newest, snapshot_round_trips};

/// How the suite gets stores of one backend.
pub trait StoreHarness: Send + Sync + Sized + 'static {
    /// The store under test.
    type Store: SubscribeAll;

    /// A fresh, empty store; `None` skips the test (print one line saying why).
    fn create(&self) -> impl Future<Output = Option<Self::Store>> + Send;

    /// Removes what [`create`](Self::create) made (a schema, a file); runs even when the test failed.
    fn destroy(&self, store: Self::Store) -> impl Future<Output = ()> + Send {
        drop(store);
        async {}
    }

    /// The payload limit of the stores from [`create`](Self::create).
    fn max_payload_bytes(&self) -> usize {
        DEFAULT_MAX_PAYLOAD_BYTES
    }

    /// Damages the stored event at `stream_version` of `stream_id` so that reading it must fail
    /// with [`StoreError::Corrupt`]; returns `false` if the backend cannot (the test is skipped).
    fn corrupt_event(
        &self,
        store: &Self::Store,
        stream_id: &str,
        stream_version: u64,
    ) -> impl Future<Output = bool> + Send {
        let _ = (store, stream_id, stream_version);
        async { false }
    }

    /// Appends with [`ExpectedVersion::Any`] inside a transaction held open for `hold` before it
    /// commits (or rolls back when `commit` is false: returns `None`). The default, for stores
    /// without transactions, waits `hold` and appends (or does nothing).
    fn append_held_open(
        &self,
        store: &Self::Store,
        stream_id: &str,
        events: Vec<NewEvent>,
        hold: Duration,
        commit: bool,
    ) -> impl Future<Output = Result<Option<AppendResult>, StoreError>> + Send {
        let store = store.clone();
        let stream_id = stream_id.to_owned();
        async move {
            tokio::time::sleep(hold).await;
            if !commit {
                return Ok(None);
            }
            store
                .append(&stream_id, ExpectedVersion::Any, events)
                .await
                .map(Some)
        }
    }
}

/// The harness of [`MemoryStore`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryHarness;

/// Payload limit the bundled harnesses configure (small, to keep the oversized test quick).
pub const HARNESS_PAYLOAD_LIMIT: usize = 64 * 1024;

impl StoreHarness for MemoryHarness {
    type Store = MemoryStore;

    async fn create(&self) -> Option<MemoryStore> {
        Some(MemoryStore::new().with_max_payload_bytes(HARNESS_PAYLOAD_LIMIT))
    }

    fn max_payload_bytes(&self) -> usize {
        HARNESS_PAYLOAD_LIMIT
    }
}

/// The harness of [`SqliteStore`]: a database file in a fresh directory under the system's
/// temporary directory, removed afterwards.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteHarness;

#[cfg(feature = "sqlite")]
impl StoreHarness for SqliteHarness {
    type Store = SqliteStore;

    async fn create(&self) -> Option<SqliteStore> {
        let dir = std::env::temp_dir().join(format!("eventcore-conformance-{}", Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(dir.join("events.db")).await.unwrap();
        Some(store.with_max_payload_bytes(HARNESS_PAYLOAD_LIMIT))
    }

    async fn destroy(&self, store: SqliteStore) {
        let dir = store.path().and_then(|p| p.parent()).map(ToOwned::to_owned);
        drop(store);
        if let Some(dir) = dir {
            // The connections close on a blocking thread; the files may linger briefly.
            for _ in 0..20 {
                if std::fs::remove_dir_all(&dir).is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    fn max_payload_bytes(&self) -> usize {
        HARNESS_PAYLOAD_LIMIT
    }

    async fn corrupt_event(&self, store: &SqliteStore, stream_id: &str, stream_version: u64) -> bool {
        let Some(path) = store.path().map(ToOwned::to_owned) else {
            return false;
        };
        let stream_id = stream_id.to_owned();
        tokio::task::spawn_blocking(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            let version = i64::try_from(stream_version).unwrap();
            conn.execute(
                "UPDATE events SET metadata = '[\"not\", \"a\", \"map\"]' \
                 WHERE stream_key = (SELECT stream_key FROM streams WHERE stream_id = ?1) AND stream_version = ?2",
                rusqlite::params![stream_id, version],
            )
            .unwrap()
                == 1
        })
        .await
        .unwrap()
    }
}

/// What a conformance test receives: the harness and a fresh store.
pub struct Ctx<H: StoreHarness> {
    /// The harness.
    pub harness: Arc<H>,
    /// A fresh, empty store.
    pub store: H::Store,
}

/// Runs one conformance test on a fresh store and cleans up after it, even when it panics.
///
/// # Panics
///
/// When the test fails (the panic of the test is resumed) or no tokio runtime can be built.
pub fn run<H, F, Fut>(harness: H, test: F)
where
    H: StoreHarness,
    F: FnOnce(Ctx<H>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for the conformance test");
    runtime.block_on(async move {
        let harness = Arc::new(harness);
        let Some(store) = harness.create().await else {
            return;
        };
        let outcome = tokio::spawn(test(Ctx {
            harness: Arc::clone(&harness),
            store: store.clone(),
        }))
        .await;
        harness.destroy(store).await;
        if let Err(error) = outcome {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("conformance test task failed: {error}"),
            }
        }
    });
}

/// Defines one `#[test]` per conformance test, each running on a fresh store of `$harness`.
///
/// `$harness` is an expression evaluated once per test, giving a [`StoreHarness`].
#[macro_export]
macro_rules! store_conformance_tests {
    ($harness:expr) => {
        $crate::store_conformance_tests!(@each $harness;
            append_assigns_versions_and_positions,
            expected_version_rules,
            version_conflict_writes_nothing,
            empty_batch_checks_the_version_only,
            duplicate_id_in_batch_rejects_whole_batch,
            resent_batch_returns_the_original_result,
            resent_batch_under_every_expectation,
            invalid_events_are_refused,
            read_batch_pages_and_reports_the_head,
            read_batch_filters_by_type,
            read_batch_misses_nothing_under_concurrent_writers,
            reads_are_bounded_by_bytes,
            find_event_by_id,
            oversized_payload_is_refused,
            invalid_stream_ids_are_refused,
            oversized_metadata_and_batches_are_refused,
            global_order_interleaves_streams,
            read_stream_pages,
            read_all_pages,
            hostile_ids_and_metadata_round_trip,
            concurrent_writers_of_one_stream_never_overwrite,
            concurrent_any_writers_of_one_stream_all_succeed,
            corrupt_event_names_stream_and_version,
            subscription_catches_up_then_goes_live,
            subscription_starts_at_a_position,
            subscription_misses_nothing_under_concurrent_writers,
            snapshot_round_trips,
            snapshot_keeps_the_newest,
            append_all_writes_every_stream,
            append_all_is_all_or_nothing,
            append_all_checks_unchanged_streams,
            append_all_refuses_a_stream_twice,
            append_all_resent_returns_the_original_results,
            append_all_concurrent_writers_stay_whole,
        );
    };
    (@each $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::run($harness, $crate::conformance::$name);
            }
        )*
    };
}

/// A new event of a test type whose payload is `{"n": n}`.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "conformance.happened".to_owned(),
        event_version: 1,
        aggregate_type: "conformance".to_owned(),
        aggregate_id: "subject".to_owned(),
        occurred_at: Utc::now().trunc_subsecs(6),
        correlation_id: None,
        causation_id: None,
        metadata: Metadata::new(),
        payload: Bytes::from(format!("{{\"n\":{n}}}")),
    }
}

fn events(range: std::ops::Range<u64>) -> Vec<NewEvent> {
    range.map(event).collect()
}

/// Every event of the store, read in pages of 100.
async fn read_everything<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    loop {
        let next = all.last().map_or(1, |e: &RecordedEvent| e.global_position + 1);
        let page = store.read_all(next, 100).await.unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

async fn append<S: EventStore>(
    store: &S,
    stream: &str,
    expected: ExpectedVersion,
    batch: Vec<NewEvent>,
) -> AppendResult {
    store
        .append(stream, expected, batch)
        .await
        .unwrap_or_else(|e| panic!("append to `{stream}` with {expected} failed: {e}"))
}

fn assert_conflict(result: Result<AppendResult, StoreError>, expected: ExpectedVersion, actual: u64) {
    match result {
        Err(StoreError::VersionConflict {
            expected: e,
            actual: a,
            ..
        }) => assert_eq!((e, a), (expected, actual), "conflict reports both versions"),
        other => panic!("expected a version conflict ({expected} vs {actual}), got {other:?}"),
    }
}

/// Appends give 1-based stream versions and increasing global positions, and read back exactly.
pub async fn append_assigns_versions_and_positions<H: StoreHarness>(ctx: Ctx<H>) {
    let store = &ctx.store;
    let first = events(0..3);
    let r1 = append(store, "order-1", ExpectedVersion::NoStream, first.clone()).await;
    assert_eq!((r1.first_version, r1.last_version), (1, 3));
    assert_eq!(r1.positions.len(), 3);
    assert!(r1.positions.windows(2).all(|w| w[0] < w[1]), "{:?}", r1.positions);
    let second = events(3..5);
    let r2 = append(store, "order-1", ExpectedVersion::Exact(3), second.clone()).await;
    assert_eq!((r2.first_version, r2.last_version), (4, 5));
    assert!(r2.positions[0] > r1.positions[2]);
    assert_eq!(store.stream_version("order-1").await.unwrap(), 5);
    assert_eq!(store.stream_version("order-2").await.unwrap(), 0);

    let read = store.read_stream("order-1", 1, 100).await.unwrap();
    let positions: Vec<u64> = r1.positions.iter().chain(&r2.positions).copied().collect();
    let expected: Vec<RecordedEvent> = first
        .into_iter()
        .chain(second)
        .zip(1..)
        .zip(positions)
        .map(|((e, v), p)| e.into_recorded("order-1", v, p))
        .collect();
    assert_eq!(read, expected);
    assert_eq!(read_everything(store).await, expected);
}

/// Any, NoStream, Exact and StreamExists accept and refuse as documented.
pub async fn expected_version_rules<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    assert_conflict(
        s.append("a", ExpectedVersion::StreamExists, events(0..1)).await,
        ExpectedVersion::StreamExists,
        0,
    );
    assert_conflict(
        s.append("a", ExpectedVersion::Exact(1), events(0..1)).await,
        ExpectedVersion::Exact(1),
        0,
    );
    append(s, "a", ExpectedVersion::Exact(0), events(0..1)).await;
    assert_conflict(
        s.append("a", ExpectedVersion::NoStream, events(1..2)).await,
        ExpectedVersion::NoStream,
        1,
    );
    assert_conflict(
        s.append("a", ExpectedVersion::Exact(0), events(1..2)).await,
        ExpectedVersion::Exact(0),
        1,
    );
    assert_conflict(
        s.append("a", ExpectedVersion::Exact(2), events(1..2)).await,
        ExpectedVersion::Exact(2),
        1,
    );
    append(s, "a", ExpectedVersion::StreamExists, events(1..2)).await;
    append(s, "a", ExpectedVersion::Any, events(2..3)).await;
    append(s, "a", ExpectedVersion::Exact(3), events(3..4)).await;
    append(s, "b", ExpectedVersion::Any, events(0..1)).await;
    append(s, "c", ExpectedVersion::NoStream, events(0..1)).await;
    assert_eq!(s.stream_version("a").await.unwrap(), 4);
    assert_eq!(read_everything(s).await.len(), 6);
}

/// A refused append leaves the store as it was.
pub async fn version_conflict_writes_nothing<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "a", ExpectedVersion::NoStream, events(0..2)).await;
    let before = read_everything(s).await;
    assert_conflict(
        s.append("a", ExpectedVersion::Exact(1), events(2..10)).await,
        ExpectedVersion::Exact(1),
        2,
    );
    assert_conflict(
        s.append("new", ExpectedVersion::Exact(5), events(2..4)).await,
        ExpectedVersion::Exact(5),
        0,
    );
    assert_eq!(read_everything(s).await, before);
    assert_eq!(s.stream_version("a").await.unwrap(), 2);
    assert_eq!(s.stream_version("new").await.unwrap(), 0);
}

/// An empty batch writes nothing but still checks the expected version.
pub async fn empty_batch_checks_the_version_only<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    assert_conflict(
        s.append("a", ExpectedVersion::Exact(3), Vec::new()).await,
        ExpectedVersion::Exact(3),
        0,
    );
    let result = append(s, "a", ExpectedVersion::NoStream, Vec::new()).await;
    assert!(result.positions.is_empty());
    assert_eq!(s.stream_version("a").await.unwrap(), 0);
    append(s, "a", ExpectedVersion::NoStream, events(0..1)).await;
    assert!(append(s, "a", ExpectedVersion::Exact(1), Vec::new())
        .await
        .positions
        .is_empty());
    assert_eq!(read_everything(s).await.len(), 1);
}

/// A batch repeating an event id, or reusing a stored one, is refused whole.
pub async fn duplicate_id_in_batch_rejects_whole_batch<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let stored = event(0);
    append(s, "a", ExpectedVersion::NoStream, vec![stored.clone()]).await;

    let repeated = event(1);
    let batch = vec![event(2), repeated.clone(), repeated.clone()];
    match s.append("b", ExpectedVersion::Any, batch).await {
        Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, repeated.event_id),
        other => panic!("expected a duplicate event id, got {other:?}"),
    }
    let mut reused = event(3);
    reused.event_id = stored.event_id;
    match s.append("b", ExpectedVersion::Any, vec![event(4), reused]).await {
        Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, stored.event_id),
        other => panic!("expected a duplicate event id, got {other:?}"),
    }
    assert_eq!(s.stream_version("b").await.unwrap(), 0);
    assert_eq!(read_everything(s).await.len(), 1);
}

/// A payload over the limit is refused with the sizes; one at the limit is stored.
pub async fn oversized_payload_is_refused<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let limit = ctx.harness.max_payload_bytes();
    let json_of_size = |size: usize| Bytes::from(format!("\"{}\"", "x".repeat(size - 2)));
    let mut big = event(1);
    big.payload = json_of_size(limit + 1);
    match s.append("a", ExpectedVersion::Any, vec![event(0), big]).await {
        Err(StoreError::PayloadTooLarge {
            index,
            size,
            limit: l,
            ..
        }) => assert_eq!((index, size, l), (1, limit + 1, limit)),
        other => panic!("expected a payload over the limit to be refused, got {other:?}"),
    }
    assert!(read_everything(s).await.is_empty());
    let mut at_limit = event(2);
    at_limit.payload = json_of_size(limit);
    append(s, "a", ExpectedVersion::NoStream, vec![at_limit.clone()]).await;
    let read = s.read_stream("a", 1, 1).await.unwrap();
    assert_eq!(read[0].payload, at_limit.payload);
}

/// Empty ids, ids with control characters, over-long ids, ids of only whitespace and ids with
/// characters that spoof a display (bidirectional overrides and isolates, zero-width
/// characters, a byte-order mark, line and paragraph separators) are refused.
pub async fn invalid_stream_ids_are_refused<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let too_long = "x".repeat(eventcore::store::MAX_STREAM_ID_BYTES + 1);
    let spoofing = [
        "order-\u{202E}txet",
        "order-\u{202A}x",
        "order-\u{202B}x",
        "order-\u{202C}x",
        "order-\u{202D}x",
        "iso-\u{2066}x",
        "iso-\u{2067}x",
        "iso-\u{2068}x",
        "iso-\u{2069}x",
        "zero\u{200B}width",
        "zw\u{200C}nj",
        "zw\u{200D}j",
        "word\u{2060}joiner",
        "\u{FEFF}bom",
        "line\u{2028}sep",
        "para\u{2029}sep",
        " ",
        "\u{3000}\u{00A0} \u{2003}",
    ];
    for id in ["", "tab\there", "nul\0byte", "line\nbreak", too_long.as_str()]
        .into_iter()
        .chain(spoofing)
    {
        match s.append(id, ExpectedVersion::Any, events(0..1)).await {
            Err(StoreError::InvalidStreamId { .. }) => {}
            other => panic!("stream id {id:?} must be refused, got {other:?}"),
        }
    }
    assert!(read_everything(s).await.is_empty());
}

/// Metadata over [`MAX_METADATA_BYTES`](eventcore::store::MAX_METADATA_BYTES) is an invalid
/// event, and a batch over [`DEFAULT_MAX_BATCH_BYTES`](eventcore::store::DEFAULT_MAX_BATCH_BYTES)
/// is refused whole before anything is sent.
pub async fn oversized_metadata_and_batches_are_refused<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let limit = eventcore::store::MAX_METADATA_BYTES;
    let mut batch = events(0..2);
    batch[1].metadata.insert("k".to_owned(), "v".repeat(limit));
    match s.append("meta", ExpectedVersion::Any, batch).await {
        Err(StoreError::InvalidEvent { index: 1, reason, .. }) => {
            assert!(reason.contains("metadata"), "{reason}");
        }
        other => panic!("oversized metadata must be refused, got {other:?}"),
    }
    let mut at_limit = events(0..1);
    at_limit[0].metadata.insert("k".to_owned(), "v".repeat(limit - 1));
    s.append("meta", ExpectedVersion::Any, at_limit).await.unwrap();

    // Each event's metadata is under its limit; together they pass the batch's.
    let filler = "m".repeat(limit - 1);
    let count = eventcore::store::DEFAULT_MAX_BATCH_BYTES / limit + 1;
    let big: Vec<_> = events(0..count as u64)
        .into_iter()
        .map(|mut e| {
            e.metadata.insert("k".to_owned(), filler.clone());
            e
        })
        .collect();
    match s.append("big", ExpectedVersion::Any, big).await {
        Err(StoreError::BatchTooLarge { events, .. }) => assert_eq!(events, count),
        other => panic!(
            "an oversized batch must be refused, got {:?}",
            other.map(|r| r.positions.len())
        ),
    }
    assert_eq!(s.stream_version("big").await.unwrap(), 0);
    assert_eq!(read_everything(s).await.len(), 1);
}

/// The global order is the order of the appends, across streams; each stream keeps its own order.
pub async fn global_order_interleaves_streams<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let mut appended = Vec::new();
    for round in 0..5u64 {
        for stream in ["x", "y", "z"] {
            let batch = events(round * 2..round * 2 + 2);
            appended.extend(batch.iter().map(|e| e.event_id));
            append(s, stream, ExpectedVersion::Any, batch).await;
        }
    }
    let all = read_everything(s).await;
    assert_eq!(all.iter().map(|e| e.event_id).collect::<Vec<_>>(), appended);
    assert!(all
        .windows(2)
        .all(|w| w[0].global_position < w[1].global_position));
    for stream in ["x", "y", "z"] {
        let read = s.read_stream(stream, 1, 100).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        assert!(read
            .windows(2)
            .all(|w| w[0].global_position < w[1].global_position));
    }
}

/// `read_stream` honours `from_version` and `limit`.
pub async fn read_stream_pages<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "a", ExpectedVersion::NoStream, events(0..25)).await;
    append(s, "b", ExpectedVersion::NoStream, events(0..5)).await;
    let versions = |page: &[RecordedEvent]| page.iter().map(|e| e.stream_version).collect::<Vec<_>>();
    assert_eq!(
        versions(&s.read_stream("a", 1, 10).await.unwrap()),
        (1..=10).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&s.read_stream("a", 11, 10).await.unwrap()),
        (11..=20).collect::<Vec<_>>()
    );
    assert_eq!(
        versions(&s.read_stream("a", 21, 10).await.unwrap()),
        (21..=25).collect::<Vec<_>>()
    );
    assert_eq!(versions(&s.read_stream("a", 0, 3).await.unwrap()), vec![1, 2, 3]);
    assert!(s.read_stream("a", 26, 10).await.unwrap().is_empty());
    assert!(s.read_stream("a", 1, 0).await.unwrap().is_empty());
    assert!(s.read_stream("missing", 1, 10).await.unwrap().is_empty());
    assert!(s
        .read_stream("a", 1, 100)
        .await
        .unwrap()
        .iter()
        .all(|e| e.stream_id == "a"));
}

/// `read_all` honours `from_position` and `limit`.
pub async fn read_all_pages<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "a", ExpectedVersion::NoStream, events(0..7)).await;
    append(s, "b", ExpectedVersion::NoStream, events(0..6)).await;
    let all = s.read_all(0, 1000).await.unwrap();
    assert_eq!(all.len(), 13);
    let page = s.read_all(all[4].global_position, 5).await.unwrap();
    assert_eq!(page, all[4..9].to_vec());
    let tail = s.read_all(all[12].global_position, 5).await.unwrap();
    assert_eq!(tail, all[12..].to_vec());
    assert!(s
        .read_all(all[12].global_position + 1, 5)
        .await
        .unwrap()
        .is_empty());
    assert!(s.read_all(1, 0).await.unwrap().is_empty());
    assert_eq!(read_everything(s).await, all);
}

/// Quotes, unicode and SQL metacharacters in stream ids, metadata and context round-trip unchanged.
pub async fn hostile_ids_and_metadata_round_trip<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let hostile = [
        "robert'); DROP TABLE events;--",
        "quote\"double\" and 'single'",
        "ünïcödé-流-🦀",
        "percent%_wild*card\\back/slash",
        "$1 $$dollar$$ ? :name",
        " padded ",
    ];
    for (i, stream) in hostile.iter().enumerate() {
        let mut e = event(i as u64);
        e.aggregate_id = (*stream).to_owned();
        e.aggregate_type = "agg'\"; --".to_owned();
        e.event_type = "weird.type'\"".to_owned();
        e.correlation_id = Some(format!("corr-{stream}"));
        e.causation_id = Some("cause\\'\"".to_owned());
        e.metadata
            .insert((*stream).to_owned(), "value 'x' \"y\" 🦀".to_owned());
        e.metadata.insert("empty".to_owned(), String::new());
        e.metadata
            .insert("json".to_owned(), "{\"not\": \"parsed\"}".to_owned());
        e.payload = Bytes::from(format!("{{\"text\":{}}}", serde_json::Value::from(*stream)));
        let result = append(s, stream, ExpectedVersion::NoStream, vec![e.clone()]).await;
        let read = s.read_stream(stream, 1, 10).await.unwrap();
        assert_eq!(
            read,
            vec![e.into_recorded(stream, 1, result.positions[0])],
            "stream {stream:?}"
        );
        assert_eq!(s.stream_version(stream).await.unwrap(), 1);
    }
    assert_eq!(read_everything(s).await.len(), hostile.len());
}

/// Writers racing on one stream with exact expected versions: one wins each version.
pub async fn concurrent_writers_of_one_stream_never_overwrite<H: StoreHarness>(ctx: Ctx<H>) {
    let mut tasks = Vec::new();
    for writer in 0..8u64 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = 0u64;
            for attempt in 0..20 {
                let version = store.stream_version("contended").await.unwrap();
                match store
                    .append(
                        "contended",
                        ExpectedVersion::Exact(version),
                        events(writer * 100 + attempt..writer * 100 + attempt + 1),
                    )
                    .await
                {
                    Ok(result) => {
                        assert_eq!(result.first_version, version + 1);
                        won += 1;
                    }
                    Err(StoreError::VersionConflict { actual, .. }) => assert!(actual > version),
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            won
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let read = ctx.store.read_stream("contended", 1, 1000).await.unwrap();
    assert_eq!(read.len() as u64, total);
    assert_eq!(
        read.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    assert_eq!(ctx.store.stream_version("contended").await.unwrap(), total);
}

/// Writers racing on one stream with [`ExpectedVersion::Any`]: every append succeeds, each
/// batch gets consecutive versions, and positions grow with the versions.
pub async fn concurrent_any_writers_of_one_stream_all_succeed<H: StoreHarness>(ctx: Ctx<H>) {
    const WRITERS: u64 = 8;
    const APPENDS: u64 = 25;
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut batches = Vec::new();
            for append in 0..APPENDS {
                let first = (writer * APPENDS + append) * 10;
                let batch = events(first..first + 1 + append % 3);
                let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
                let result = store
                    .append("hot", ExpectedVersion::Any, batch)
                    .await
                    .unwrap_or_else(|error| panic!("an append with Any failed: {error}"));
                assert_eq!(result.last_version - result.first_version + 1, ids.len() as u64);
                batches.push((result.first_version, ids));
            }
            batches
        }));
    }
    let mut expected = BTreeMap::new();
    for task in tasks {
        for (first_version, ids) in task.await.unwrap() {
            for (version, id) in (first_version..).zip(ids) {
                assert!(
                    expected.insert(version, id).is_none(),
                    "version {version} given twice"
                );
            }
        }
    }
    let read = ctx.store.read_stream("hot", 1, 10_000).await.unwrap();
    let stored: BTreeMap<u64, Uuid> = read.iter().map(|e| (e.stream_version, e.event_id)).collect();
    assert_eq!(stored, expected);
    assert_eq!(
        read.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        (1..=expected.len() as u64).collect::<Vec<_>>()
    );
    assert!(
        read.windows(2)
            .all(|w| w[0].global_position < w[1].global_position),
        "positions must grow with stream versions"
    );
}

/// A damaged row is an error naming its stream and version, from every read path.
pub async fn corrupt_event_names_stream_and_version<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "fine", ExpectedVersion::NoStream, events(0..2)).await;
    append(s, "dam'aged", ExpectedVersion::NoStream, events(0..3)).await;
    if !ctx.harness.corrupt_event(s, "dam'aged", 2).await {
        println!("skipped: this store cannot inject corrupt data");
        return;
    }
    let is_named = |result: Result<Vec<RecordedEvent>, StoreError>| match result {
        Err(StoreError::Corrupt {
            stream_id,
            stream_version,
            ..
        }) => stream_id == "dam'aged" && stream_version == 2,
        _ => false,
    };
    assert!(is_named(s.read_stream("dam'aged", 1, 10).await));
    assert!(is_named(s.read_all(1, 100).await));
    assert_eq!(s.read_stream("dam'aged", 1, 1).await.unwrap().len(), 1);
    assert_eq!(s.read_stream("fine", 1, 10).await.unwrap().len(), 2);
    let mut subscription = s.subscribe_all(1);
    for _ in 0..3 {
        assert!(next_event(&mut subscription).await.is_ok());
    }
    match next_event(&mut subscription).await {
        Err(StoreError::Corrupt {
            stream_id,
            stream_version,
            ..
        }) => assert_eq!((stream_id.as_str(), stream_version), ("dam'aged", 2)),
        other => panic!("the subscription must report the corrupt row, got {other:?}"),
    }
}

/// The next item of a subscription, failing the test if none comes within 30 seconds.
async fn next_event(subscription: &mut eventcore::EventStream) -> Result<RecordedEvent, StoreError> {
    match tokio::time::timeout(Duration::from_secs(30), subscription.next()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the subscription ended"),
        Err(_) => panic!("no event from the subscription within 30 s"),
    }
}

/// A subscription first delivers stored events, then new ones as they commit.
pub async fn subscription_catches_up_then_goes_live<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "a", ExpectedVersion::NoStream, events(0..3)).await;
    append(s, "b", ExpectedVersion::NoStream, events(0..2)).await;
    let stored = read_everything(s).await;
    let mut subscription = s.subscribe_all(0);
    for expected in &stored {
        assert_eq!(&next_event(&mut subscription).await.unwrap(), expected);
    }
    let writer = {
        let store = s.clone();
        tokio::spawn(async move {
            for i in 0..5 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                store
                    .append("live", ExpectedVersion::Any, events(i..i + 1))
                    .await
                    .unwrap();
            }
        })
    };
    let mut live = Vec::new();
    for _ in 0..5 {
        live.push(next_event(&mut subscription).await.unwrap());
    }
    writer.await.unwrap();
    assert_eq!(live, read_everything(s).await[stored.len()..].to_vec());
}

/// A subscription from a position skips what lies before it.
pub async fn subscription_starts_at_a_position<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "a", ExpectedVersion::NoStream, events(0..6)).await;
    let all = read_everything(s).await;
    let mut subscription = s.subscribe_all(all[3].global_position);
    for expected in &all[3..] {
        assert_eq!(&next_event(&mut subscription).await.unwrap(), expected);
    }
    append(s, "a", ExpectedVersion::Exact(6), events(6..7)).await;
    assert_eq!(next_event(&mut subscription).await.unwrap().stream_version, 7);
}

/// Events the stress test appends.
pub const STRESS_EVENTS: usize = 20_000;

/// 8 writers append 20,000 events with transactions held open for random times (some rolled
/// back) while a live subscriber runs: it receives every committed event exactly once, in
/// global-position order.
pub async fn subscription_misses_nothing_under_concurrent_writers<H: StoreHarness>(ctx: Ctx<H>) {
    let subscriber = {
        let mut subscription = ctx.store.subscribe_all(1);
        tokio::spawn(async move {
            let mut received = Vec::with_capacity(STRESS_EVENTS);
            while received.len() < STRESS_EVENTS {
                let event = match tokio::time::timeout(Duration::from_secs(30), subscription.next()).await {
                    Ok(Some(item)) => item.unwrap(),
                    Ok(None) => panic!("the subscription ended after {} events", received.len()),
                    Err(_) => panic!(
                        "the subscription stalled after {} events (last position {:?})",
                        received.len(),
                        received.last().map(|(p, _): &(u64, Uuid)| *p)
                    ),
                };
                received.push((event.global_position, event.event_id));
            }
            // Nothing more may follow: the writers are done by now, so extra events would be duplicates.
            let extra = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
            assert!(
                extra.is_err(),
                "the subscription delivered more events than were committed"
            );
            received
        })
    };
    let committed = stress_writers(&ctx).await;
    let received = subscriber.await.unwrap();
    assert!(
        received.windows(2).all(|w| w[0].0 < w[1].0),
        "positions must strictly increase (in order, none twice)"
    );
    let received_ids: BTreeSet<Uuid> = received.iter().map(|(_, id)| *id).collect();
    assert_eq!(received_ids.len(), STRESS_EVENTS, "an event was delivered twice");
    assert!(
        received_ids.iter().all(|id| committed.contains(id)),
        "an uncommitted event was delivered"
    );
}

/// Eight writers append [`STRESS_EVENTS`] events in batches of 1 to 10, some in transactions held
/// open, some rolled back; the ids of the committed events.
async fn stress_writers<H: StoreHarness>(ctx: &Ctx<H>) -> HashSet<Uuid> {
    const WRITERS: usize = 8;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = ctx.store.clone();
        let harness = Arc::clone(&ctx.harness);
        writers.push(tokio::spawn(async move {
            let mut rng =
                Rng(0x9E37_79B9_7F4A_7C15 ^ (writer as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
            let mut committed = Vec::new();
            let quota = STRESS_EVENTS / WRITERS;
            let stream = format!("stress-{writer}");
            while committed.len() < quota {
                let size = (1 + rng.below(10) as usize).min(quota - committed.len());
                let batch = events(0..size as u64);
                let ids: Vec<Uuid> = batch.iter().map(|e| e.event_id).collect();
                let hold = Duration::from_micros(rng.below(3000));
                let commit = rng.below(20) != 0;
                let stream = if rng.below(4) == 0 {
                    format!("stress-shared-{}", rng.below(3))
                } else {
                    stream.clone()
                };
                if harness
                    .append_held_open(&store, &stream, batch, hold, commit)
                    .await
                    .unwrap()
                    .is_some()
                {
                    committed.extend(ids);
                }
            }
            committed
        }));
    }
    let mut committed = HashSet::with_capacity(STRESS_EVENTS);
    for writer in writers {
        committed.extend(writer.await.unwrap());
    }
    committed
}

/// A small deterministic generator (splitmix64) for delays and batch sizes.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % bound
    }
}
