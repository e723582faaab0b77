//! Conformance cases of idempotent appends and event validation.

use eventcore::{EventStore, ExpectedVersion, StoreError};

use super::{append, event, events, read_everything, Ctx, StoreHarness};

/// A batch re-sent after it committed (a lost reply) stores nothing and returns the original result.
pub async fn resent_batch_returns_the_original_result<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    append(s, "a", ExpectedVersion::Any, events(0..2)).await;
    let batch = events(2..5);
    let original = append(s, "a", ExpectedVersion::Exact(2), batch.clone()).await;
    append(s, "other", ExpectedVersion::Any, events(5..6)).await;
    let again = s
        .append("a", ExpectedVersion::Exact(2), batch.clone())
        .await
        .unwrap();
    assert_eq!(again, original, "a re-sent batch returns its original result");
    assert_eq!(s.stream_version("a").await.unwrap(), 5);
    assert_eq!(read_everything(s).await.len(), 6, "nothing is stored twice");

    // Part of a stored batch with a new event, or a stored batch sent to another stream, is a duplicate.
    let mut partial = vec![batch[0].clone(), event(9)];
    match s.append("a", ExpectedVersion::Any, partial.clone()).await {
        Err(StoreError::DuplicateEventId { event_id }) => assert_eq!(event_id, batch[0].event_id),
        other => panic!("expected a duplicate event id, got {other:?}"),
    }
    partial.truncate(1);
    match s.append("elsewhere", ExpectedVersion::Any, batch.clone()).await {
        Err(StoreError::DuplicateEventId { .. }) => {}
        other => panic!("expected a duplicate event id for another stream, got {other:?}"),
    }
    // The batch's events in another order are not the same batch.
    let reordered = vec![batch[1].clone(), batch[0].clone()];
    match s.append("a", ExpectedVersion::Any, reordered).await {
        Err(StoreError::DuplicateEventId { .. }) => {}
        other => panic!("expected a duplicate event id for a reordered batch, got {other:?}"),
    }
    assert_eq!(read_everything(s).await.len(), 6);
}

/// The re-send is recognised whatever version it expects.
pub async fn resent_batch_under_every_expectation<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let first = events(0..2);
    let original = append(s, "a", ExpectedVersion::NoStream, first.clone()).await;
    append(s, "a", ExpectedVersion::Exact(2), events(2..3)).await;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(7),
        ExpectedVersion::StreamExists,
    ] {
        let again = s.append("a", expected, first.clone()).await;
        assert_eq!(again.ok(), Some(original.clone()), "re-sent with {expected}");
    }
    assert_eq!(s.stream_version("a").await.unwrap(), 3);
}

/// Event versions outside 1..=i32::MAX, empty types and NUL characters are refused; nothing is written.
pub async fn invalid_events_are_refused<H: StoreHarness>(ctx: Ctx<H>) {
    let s = &ctx.store;
    let mut zero = event(1);
    zero.event_version = 0;
    let mut huge = event(1);
    huge.event_version = u32::MAX;
    let mut untyped = event(1);
    untyped.event_type.clear();
    let mut nul_id = event(1);
    nul_id.aggregate_id = "a\0b".to_owned();
    let mut nul_metadata = event(1);
    nul_metadata.metadata.insert("k".to_owned(), "v\0".to_owned());
    let mut nul_correlation = event(1);
    nul_correlation.correlation_id = Some("\0".to_owned());
    for bad in [zero, huge, untyped, nul_id, nul_metadata, nul_correlation] {
        let described = format!("{bad:?}");
        match s.append("a", ExpectedVersion::Any, vec![event(0), bad]).await {
            Err(StoreError::InvalidEvent { index, stream_id, .. }) => {
                assert_eq!((index, stream_id.as_str()), (1, "a"), "{described}");
            }
            other => panic!("expected an invalid event error for {described}, got {other:?}"),
        }
    }
    let mut highest = event(2);
    highest.event_version = eventcore::store::MAX_EVENT_VERSION;
    append(s, "a", ExpectedVersion::Any, vec![highest]).await;
    let stored = read_everything(s).await;
    assert_eq!(stored.len(), 1, "only the valid batch is stored");
    assert_eq!(stored[0].event_version, eventcore::store::MAX_EVENT_VERSION);
}
