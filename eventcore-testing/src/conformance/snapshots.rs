//! Conformance tests of snapshot storage.

use chrono::{SubsecRound, Utc};
use eventcore::{EventStore, Snapshot};

use super::{Ctx, StoreHarness};

fn snapshot(stream_id: &str, stream_version: u64, state: &str) -> Snapshot {
    Snapshot {
        stream_id: stream_id.to_owned(),
        stream_version,
        snapshot_version: 1,
        state: state.as_bytes().to_vec().into(),
        // Microseconds: the finest precision every bundled backend keeps.
        taken_at: Utc::now().trunc_subsecs(6),
    }
}

/// A stream has no snapshot until one is saved; then exactly that one comes back.
pub async fn snapshot_round_trips<H: StoreHarness>(ctx: Ctx<H>) {
    let store = &ctx.store;
    assert_eq!(store.load_snapshot("snap-1").await.unwrap(), None);
    let saved = snapshot("snap-1", 3, r#"{"balance":30}"#);
    store.save_snapshot(saved.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("snap-1").await.unwrap(), Some(saved));
    assert_eq!(
        store.load_snapshot("snap-2").await.unwrap(),
        None,
        "snapshots are per stream"
    );
}

/// A newer (or equal) stream version replaces the snapshot; an older one never does.
pub async fn snapshot_keeps_the_newest<H: StoreHarness>(ctx: Ctx<H>) {
    let store = &ctx.store;
    let v5 = snapshot("snap-1", 5, "5");
    store.save_snapshot(v5.clone()).await.unwrap();
    store.save_snapshot(snapshot("snap-1", 4, "4")).await.unwrap();
    assert_eq!(
        store.load_snapshot("snap-1").await.unwrap(),
        Some(v5),
        "an older snapshot replaced a newer one"
    );
    let reformatted = Snapshot {
        snapshot_version: 2,
        ..snapshot("snap-1", 5, "5 again")
    };
    store.save_snapshot(reformatted.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("snap-1").await.unwrap(), Some(reformatted));
    let v9 = snapshot("snap-1", 9, "9");
    store.save_snapshot(v9.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("snap-1").await.unwrap(), Some(v9));
}
