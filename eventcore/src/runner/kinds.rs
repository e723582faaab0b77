//! The kind of runner behind a checkpoint, for the runners whose checkpoints look alike: a
//! relay and a table projection record what they are when they start, so tools (the `eventcore`
//! CLI) can tell them from document projections, whose documents they could reset.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::store::RunnerStore;
use crate::store::StoreError;

/// The collection of recorded runner kinds, keyed by runner name.
const KINDS: &str = "eventcore.runner_kinds";

/// A kind of runner that records itself in the store when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunnerKind {
    /// A projection into its own tables (`Projections::with_tables`, `with_pg_tables`): its
    /// effects live outside the store's documents.
    TableProjection,
    /// A relay from the store's log to a broker bus.
    Relay,
}

impl RunnerKind {
    /// Its name, as recorded: `table_projection`, `relay`.
    pub fn name(self) -> &'static str {
        match self {
            Self::TableProjection => "table_projection",
            Self::Relay => "relay",
        }
    }
}

/// Records that runner `name` is a `kind` (idempotent; written each time it starts).
pub(crate) async fn record_kind<S: RunnerStore>(
    store: &S,
    name: &str,
    kind: RunnerKind,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec(&kind).map_err(StoreError::backend)?;
    store.put_document(KINDS, name, Some(Bytes::from(body))).await
}

/// Records `kind` for runner `name`, logging rather than failing: the runner itself does not
/// depend on it, and its first batch reports a store that is down anyway.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "postgres", feature = "redis", feature = "nats")),
    allow(dead_code)
)]
pub(crate) async fn note_kind<S: RunnerStore>(store: &S, name: &str, kind: RunnerKind) {
    if let Err(error) = record_kind(store, name, kind).await {
        tracing::warn!(runner = name, kind = kind.name(), %error, "cannot record the runner's kind");
    }
}

/// The recorded kind of every runner that recorded one, by name (kinds this version does not
/// know, written by a newer one, are left out). Runners that last ran before kinds were
/// recorded are not listed.
pub async fn recorded_kinds<S: RunnerStore>(store: &S) -> Result<Vec<(String, RunnerKind)>, StoreError> {
    Ok(store
        .list_documents(KINDS)
        .await?
        .into_iter()
        .filter_map(|(name, body)| {
            serde_json::from_slice::<RunnerKind>(&body)
                .ok()
                .map(|kind| (name, kind))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn kinds_are_recorded_once_per_runner_and_listed() {
        let store = MemoryStore::new();
        assert!(recorded_kinds(&store).await.unwrap().is_empty());
        record_kind(&store, "type_counts", RunnerKind::TableProjection)
            .await
            .unwrap();
        record_kind(&store, "relay", RunnerKind::Relay).await.unwrap();
        record_kind(&store, "relay", RunnerKind::Relay).await.unwrap();
        store
            .put_document(KINDS, "future", Some(Bytes::from_static(b"\"warp_drive\"")))
            .await
            .unwrap();
        assert_eq!(
            recorded_kinds(&store).await.unwrap(),
            [
                ("relay".to_owned(), RunnerKind::Relay),
                ("type_counts".to_owned(), RunnerKind::TableProjection)
            ]
        );
    }
}
