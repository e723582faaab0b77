//! Conformance cases of the settled, filtered batch read and lookups by event id.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use bytes::Bytes;
use eventcore::store::{EventFilter, MAX_PAGE_BYTES};
use eventcore::{EventStore, ExpectedVersion};
use uuid::Uuid;

use super::{append, event, events, stress_writers, Ctx, StoreHarness, STRESS_EVENTS};

/// Batches page through the log by `next_position`, and report the head and whether they caught up.
pub async fn read_batch_pages_and_reports_the_head<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let empty = s.read_batch(1, &EventFilter::all(), 10).await.unwrap();
    assert_eq!((empty.events.len(), empty.head, empty.next_position), (0, 0, 1));
    assert!(empty.caught_up());
    assert_eq!(s.head_position().await.unwrap(), 0);

    append(s, "a", ExpectedVersion::Any, events(0..5)).await;
    append(s, "b", ExpectedVersion::Any, events(5..7)).await;
    assert_eq!(s.head_position().await.unwrap(), 7);
    let first = s.read_batch(1, &EventFilter::all(), 4).await.unwrap();
    let positions: Vec<u64> = first.events.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, [1, 2, 3, 4]);
    assert_eq!((first.next_position, first.head, first.lag()), (5, 7, 3));
    assert!(!first.caught_up());
    let second = s
        .read_batch(first.next_position, &EventFilter::all(), 4)
        .await
        .unwrap();
    let positions: Vec<u64> = second.events.iter().map(|e| e.global_position).collect();
    assert_eq!(positions, [5, 6, 7]);
    assert_eq!(second.next_position, 8);
    assert!(second.caught_up());
    let after = s.read_batch(8, &EventFilter::all(), 4).await.unwrap();
    assert!(after.events.is_empty());
    assert_eq!(after.next_position, 8);
}

/// A filter keeps only its types, and the position still moves past what it skips.
pub async fn read_batch_filters_by_type<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let typed = |n: u64, event_type: &str| {
        let mut e = event(n);
        e.event_type = event_type.to_owned();
        e
    };
    let batch = vec![
        typed(1, "shop.ordered"),
        typed(2, "shop.viewed"),
        typed(3, "shop.paid"),
        typed(4, "shop.viewed"),
        typed(5, "shop.viewed"),
    ];
    append(s, "s", ExpectedVersion::Any, batch).await;
    let filter = EventFilter::event_types(["shop.paid", "shop.ordered", "shop.paid"]);
    assert_eq!(filter.types().unwrap(), ["shop.ordered", "shop.paid"]);
    let read = s.read_batch(1, &filter, 1).await.unwrap();
    assert_eq!(
        read.events.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(read.next_position, 2);
    let read = s.read_batch(read.next_position, &filter, 10).await.unwrap();
    assert_eq!(
        read.events.iter().map(|e| e.global_position).collect::<Vec<_>>(),
        [3]
    );
    assert_eq!(
        (read.next_position, read.head),
        (6, 5),
        "the skipped tail is passed"
    );
    assert!(read.caught_up());
    let none = s
        .read_batch(1, &EventFilter::event_types(["shop.refunded"]), 10)
        .await
        .unwrap();
    assert!(none.events.is_empty());
    assert_eq!(
        none.next_position, 6,
        "a batch with nothing handled still moves on"
    );
    let nothing = s
        .read_batch(1, &EventFilter::event_types(Vec::<String>::new()), 10)
        .await
        .unwrap();
    assert!(nothing.events.is_empty());
    assert_eq!(nothing.next_position, 6);
}

/// A reader that resumes at `next_position` under concurrent writers (transactions held open,
/// some rolled back) gets every committed event once, in order.
pub async fn read_batch_misses_nothing_under_concurrent_writers<H: StoreHarness>(ctx: Ctx<H>) {
    let reader = {
        let store = ctx.store.clone();
        tokio::spawn(async move {
            let mut received: Vec<(u64, Uuid)> = Vec::with_capacity(STRESS_EVENTS);
            let mut next = 1;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while received.len() < STRESS_EVENTS {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the reader stalled after {} events at position {next}",
                    received.len()
                );
                let batch = store.read_batch(next, &EventFilter::all(), 300).await.unwrap();
                assert!(batch.next_position >= next, "next_position went back");
                if let Some(first) = batch.events.first() {
                    assert!(first.global_position >= next);
                }
                received.extend(batch.events.iter().map(|e| (e.global_position, e.event_id)));
                next = batch.next_position;
                if batch.events.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            // Once the writers are done, the reader is at the head with nothing more to read.
            let last = store.read_batch(next, &EventFilter::all(), 300).await.unwrap();
            assert!(last.events.is_empty(), "more events than were committed");
            received
        })
    };
    let committed = stress_writers(&ctx).await;
    let received = reader.await.unwrap();
    assert!(
        received.windows(2).all(|w| w[0].0 < w[1].0),
        "positions strictly increase"
    );
    let ids: BTreeSet<Uuid> = received.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), STRESS_EVENTS, "an event was read twice");
    let committed: HashSet<Uuid> = committed;
    assert!(
        ids.iter().all(|id| committed.contains(id)),
        "an uncommitted event was read"
    );
}

/// A page stops early once its payloads reach [`MAX_PAGE_BYTES`], and says it may go on.
pub async fn reads_are_bounded_by_bytes<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let limit = ctx.harness.max_payload_bytes();
    let size = limit.min(MAX_PAGE_BYTES / 4);
    let count = MAX_PAGE_BYTES / size + 3;
    let big = Bytes::from(format!("\"{}\"", "x".repeat(size - 2)));
    for chunk in 0..count.div_ceil(4) {
        let batch: Vec<_> = (0..4.min(count - chunk * 4))
            .map(|n| {
                let mut e = event(n as u64);
                e.payload = big.clone();
                e
            })
            .collect();
        append(s, "big", ExpectedVersion::Any, batch).await;
    }
    let page = s.read_stream("big", 1, 1000).await.unwrap();
    assert!(page.len() < count, "a page of {} bytes was not cut", count * size);
    assert!(
        !eventcore::store::page_is_last(&page, 1000),
        "a cut page is not the last"
    );
    let all = s.read_all(1, 1000).await.unwrap();
    assert_eq!(all.len(), page.len());
    let batch = s.read_batch(1, &EventFilter::all(), 1000).await.unwrap();
    assert_eq!(batch.events.len(), page.len());
    assert_eq!(
        batch.next_position,
        batch.events.len() as u64 + 1,
        "a cut batch resumes after it"
    );
    let mut total = 0;
    let mut next = 1;
    loop {
        let page = s.read_stream("big", next, 1000).await.unwrap();
        total += page.len();
        next += page.len() as u64;
        if eventcore::store::page_is_last(&page, 1000) {
            break;
        }
    }
    assert_eq!(total, count);
}

/// A stored event is found by its id; an unknown id finds nothing.
pub async fn find_event_by_id<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let batch = events(0..3);
    append(s, "a", ExpectedVersion::Any, batch.clone()).await;
    let found = s.find_event(batch[1].event_id).await.unwrap().expect("stored");
    assert_eq!(
        (found.stream_id.as_str(), found.stream_version, found.event_id),
        ("a", 2, batch[1].event_id)
    );
    assert_eq!(found.payload, batch[1].payload);
    assert!(s.find_event(Uuid::now_v7()).await.unwrap().is_none());
}
