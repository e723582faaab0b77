//! The last failure of each runner that gave up, kept in the store so tools see it after the
//! process that failed is gone.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::store::RunnerStore;
use crate::store::StoreError;

/// The collection of runner failures, keyed by runner name.
const FAILURES: &str = "eventcore.runner_failures";

/// Why a runner stopped: it gave up on the event at `position` after its retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunnerFailure {
    /// The runner (projection, consumer, relay, saga).
    pub name: String,
    /// The position of the event it stopped at (its checkpoint).
    pub position: u64,
    /// The error and its causes, on one line.
    pub error: String,
    /// When it gave up.
    pub failed_at: DateTime<Utc>,
}

/// Records that runner `name` gave up at `position` with `error`.
pub(crate) async fn record_failure<S: RunnerStore>(
    store: &S,
    name: &str,
    position: u64,
    error: &str,
) -> Result<(), StoreError> {
    let failure = RunnerFailure {
        name: name.to_owned(),
        position,
        error: error.to_owned(),
        failed_at: Utc::now(),
    };
    let body = serde_json::to_vec(&failure).map_err(StoreError::backend)?;
    store.put_document(FAILURES, name, Some(Bytes::from(body))).await
}

/// Forgets the failure of runner `name` (it runs again), if one was recorded.
pub(crate) async fn clear_failure<S: RunnerStore>(store: &S, name: &str) -> Result<(), StoreError> {
    let found = store.load_documents(FAILURES, vec![name.to_owned()]).await?;
    if found.is_empty() {
        return Ok(());
    }
    store.put_document(FAILURES, name, None).await
}

/// The recorded failure of every runner that gave up on an event and has not run since, by
/// name: what an operator sees of a runner stopped in another process.
pub async fn recorded_failures<S: RunnerStore>(store: &S) -> Result<Vec<RunnerFailure>, StoreError> {
    store
        .list_documents(FAILURES)
        .await?
        .into_iter()
        .map(|(key, body)| {
            serde_json::from_slice(&body).map_err(|e| StoreError::Corrupt {
                stream_id: String::new(),
                stream_version: 0,
                reason: format!("recorded failure of runner `{key}`: {e}"),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[tokio::test]
    async fn a_failure_is_recorded_listed_and_cleared() {
        let store = MemoryStore::new();
        assert!(recorded_failures(&store).await.unwrap().is_empty());
        clear_failure(&store, "summary").await.unwrap();
        record_failure(&store, "summary", 7, "boom: root").await.unwrap();
        let failures = recorded_failures(&store).await.unwrap();
        assert_eq!(failures.len(), 1);
        assert_eq!((failures[0].name.as_str(), failures[0].position), ("summary", 7));
        assert_eq!(failures[0].error, "boom: root");
        clear_failure(&store, "summary").await.unwrap();
        assert!(recorded_failures(&store).await.unwrap().is_empty());
    }
}
