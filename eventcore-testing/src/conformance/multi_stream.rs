//! Conformance tests of multi-stream appends ([`EventStore::append_all`]).

use eventcore::store::StreamAppend;
use eventcore::{EventStore, ExpectedVersion, StoreError};

use super::{append, assert_conflict, events, read_everything, Ctx, StoreHarness};

/// Every part is written, in order, with the results in the order of the parts.
pub async fn append_all_writes_every_stream<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "member-1", ExpectedVersion::NoStream, events(0..2)).await;
    let results = s
        .append_all(vec![
            StreamAppend::new("member-1", ExpectedVersion::Exact(2), events(2..3)),
            StreamAppend::new("book-1", ExpectedVersion::NoStream, events(3..5)),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!((results[0].first_version, results[0].last_version), (3, 3));
    assert_eq!((results[1].first_version, results[1].last_version), (1, 2));
    let positions: Vec<u64> = results.iter().flat_map(|r| r.positions.clone()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_eq!(s.stream_version("member-1").await.unwrap(), 3);
    assert_eq!(s.stream_version("book-1").await.unwrap(), 2);
    let all = read_everything(s).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[2].stream_id, "member-1");
    assert_eq!(all[3].stream_id, "book-1");
}

/// One part's stream not as expected: nothing of any part is written, and the error names it.
pub async fn append_all_is_all_or_nothing<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "member-1", ExpectedVersion::NoStream, events(0..2)).await;
    let before = read_everything(s).await;
    let result = s
        .append_all(vec![
            StreamAppend::new("book-1", ExpectedVersion::NoStream, events(2..4)),
            StreamAppend::new("member-1", ExpectedVersion::Exact(1), events(4..5)),
        ])
        .await;
    match &result {
        Err(StoreError::VersionConflict { stream_id, .. }) => assert_eq!(stream_id, "member-1"),
        other => panic!("expected a version conflict on `member-1`, got {other:?}"),
    }
    assert_eq!(read_everything(s).await, before);
    assert_eq!(s.stream_version("book-1").await.unwrap(), 0);
    // A part that is invalid fails the whole append before anything is written.
    let mut bad = events(5..6);
    bad[0].event_type.clear();
    let result = s
        .append_all(vec![
            StreamAppend::new("book-1", ExpectedVersion::NoStream, events(6..7)),
            StreamAppend::new("member-1", ExpectedVersion::Exact(2), bad),
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::InvalidEvent { .. })),
        "{result:?}"
    );
    assert_eq!(read_everything(s).await, before);
}

/// A part without events writes nothing but holds the append to its stream's version.
pub async fn append_all_checks_unchanged_streams<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "member-1", ExpectedVersion::NoStream, events(0..1)).await;
    let results = s
        .append_all(vec![
            StreamAppend::new("book-1", ExpectedVersion::NoStream, events(1..2)),
            StreamAppend::unchanged("member-1", 1),
        ])
        .await
        .unwrap();
    assert!(results[1].positions.is_empty());
    assert_eq!(s.stream_version("member-1").await.unwrap(), 1);
    append(s, "member-1", ExpectedVersion::Exact(1), events(2..3)).await;
    let moved = s
        .append_all(vec![
            StreamAppend::new("book-2", ExpectedVersion::NoStream, events(3..4)),
            StreamAppend::unchanged("member-1", 1),
        ])
        .await;
    assert_conflict(moved.map(|mut r| r.remove(0)), ExpectedVersion::Exact(1), 2);
    assert_eq!(s.stream_version("book-2").await.unwrap(), 0);
}

/// A stream may appear once in one append.
pub async fn append_all_refuses_a_stream_twice<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let result = s
        .append_all(vec![
            StreamAppend::new("book-1", ExpectedVersion::Any, events(0..1)),
            StreamAppend::new("book-1", ExpectedVersion::Any, events(1..2)),
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::InvalidStreamId { .. })),
        "{result:?}"
    );
    assert_eq!(s.stream_version("book-1").await.unwrap(), 0);
}

/// Re-sending a multi-stream append that was stored returns the original results.
pub async fn append_all_resent_returns_the_original_results<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let parts = vec![
        StreamAppend::new("book-1", ExpectedVersion::NoStream, events(0..1)),
        StreamAppend::new("member-1", ExpectedVersion::NoStream, events(1..3)),
    ];
    let first = s.append_all(parts.clone()).await.unwrap();
    let again = s.append_all(parts).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(read_everything(s).await.len(), 3);
}

/// Writers of the same two streams, in both orders, at once: none deadlocks, and every append
/// is whole (each adds one event to both streams, so both end at the same version).
pub async fn append_all_concurrent_writers_stay_whole<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let writers = 4;
    let rounds = 10;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut attempts = 0;
            while done < rounds && attempts < 500 {
                attempts += 1;
                let a = store.stream_version("pair-a").await.unwrap();
                let b = store.stream_version("pair-b").await.unwrap();
                let mut parts = vec![
                    StreamAppend::new("pair-a", ExpectedVersion::Exact(a), events(0..1)),
                    StreamAppend::new("pair-b", ExpectedVersion::Exact(b), events(1..2)),
                ];
                if writer % 2 == 1 {
                    parts.reverse();
                }
                match store.append_all(parts).await {
                    Ok(_) => done += 1,
                    Err(StoreError::VersionConflict { .. }) => tokio::task::yield_now().await,
                    Err(other) => panic!("writer {writer}: {other}"),
                }
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(
        total,
        writers * rounds,
        "some writers gave up after 500 conflicts"
    );
    let a = s.stream_version("pair-a").await.unwrap();
    let b = s.stream_version("pair-b").await.unwrap();
    assert_eq!((a, b), (total as u64, total as u64));
}
