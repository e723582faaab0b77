//! Wakes subscriptions after appends: in this process through a watch channel, in every process
//! through `NOTIFY`, sent by a background task so that no append waits for it.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::watch;

use super::backend;
use crate::store::StoreError;

/// The shortest time between two notifications: under a stream of commits, subscriptions of
/// other processes are woken at most this often (each wake reads a page of events), and the
/// notifications cost the database little.
const MIN_INTERVAL: Duration = Duration::from_millis(2);

/// Starts the task that runs `sql` ([`notify_sql`]) after commits announced on `commits`; it
/// ends when the store (the sender) is dropped.
///
/// The first commit after a quiet spell is notified at once; commits made while a notification
/// is on its way or within [`MIN_INTERVAL`] of it share the next one. A failed notification is
/// logged: the subscriptions of other processes then find the events at their next poll.
pub(super) fn spawn(pool: Pool, sql: String, mut commits: watch::Receiver<u64>) {
    tokio::spawn(async move {
        while commits.changed().await.is_ok() {
            commits.mark_unchanged();
            if let Err(error) = notify(&pool, &sql).await {
                tracing::warn!(%error, "eventcore could not notify subscriptions; they will poll");
            }
            tokio::time::sleep(MIN_INTERVAL).await;
        }
    });
}

/// Sends one notification on a pooled connection.
pub(super) async fn notify(pool: &Pool, sql: &str) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(backend)?;
    let statement = client.prepare_cached(sql).await.map_err(backend)?;
    client.execute(&statement, &[]).await.map_err(backend)?;
    Ok(())
}

/// A `NOTIFY` that does not wait for its commit to reach the disk (`NOTIFY` assigns a transaction
/// id, and a lost notification costs only a poll): one prepared statement in a transaction of its
/// own, whose local `synchronous_commit` lasts until that transaction has committed. It costs the
/// server a quarter of `BEGIN; SET LOCAL ...; SELECT pg_notify(...); COMMIT`, parsed each time.
pub(super) fn notify_sql(channel: &str) -> String {
    let literal = channel.replace('\'', "''");
    format!("SELECT set_config('synchronous_commit', 'off', true), pg_notify('{literal}', '')")
}
