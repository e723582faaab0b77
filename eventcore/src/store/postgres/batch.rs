//! Settled batches for checkpointed readers ([`EventStore::read_batch`](crate::EventStore::read_batch)).
//!
//! One statement reads the head and the positions from the reader's position (every position,
//! whatever the filter: an index-only scan of the primary key, no payloads). The positions up
//! to the first gap are settled. A gap is settled by a horizon (the `horizon` module and the
//! `store::postgres` module doc): after the snapshot that showed it, the store asks which
//! writers are announced; once none of them runs, every position missing below the highest
//! position of that snapshot is final. One horizon settles every gap below that position, and
//! the store shares its horizons among its readers, so a reader that comes back (or reads the
//! next gap of the same page) finds it settled without a new wait. A gap that does not settle
//! within a short wait ([`SETTLE_PROBES`]) ends the batch: `next_position` is the gap, and the
//! next call looks again. A gap is never skipped on a timer.
//!
//! A run of positions once settled stays settled: the store remembers the last one
//! ([`SettledRun`](super::horizon::SettledRun)), and a reader whose position lies inside it (the
//! next batch of a catch-up, a filtered reader scanning ahead) skips the positions snapshot; its
//! batch reads the head beside its events, in the same round trip.
//!
//! The events themselves are then read below the settled bound, of the filter's types only,
//! bounded by count and by [`MAX_PAGE_BYTES`](crate::store::MAX_PAGE_BYTES). A filter of rare
//! types reads through an index of `(event_type, global_position)`; one whose types make up much
//! of the log ([`TypeDensity`]) walks the primary key and stops at the batch's limit, where the
//! type index would fetch and sort the whole scanned window (the planner's pick whenever its
//! statistics lag behind the log, as they do for what was just written).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use super::{backend, horizon, row, sql_limit, sql_position, PostgresStore};
use crate::store::{page_is_last, EventFilter, LogBatch, StoreError};

/// Waits for a fresh gap to settle within one call: an idle database settles it at once.
const SETTLE_PROBES: [Duration; 4] = [
    Duration::from_millis(1),
    Duration::from_millis(3),
    Duration::from_millis(8),
    Duration::from_millis(20),
];

/// Positions scanned at least per filtered batch, so a reader of rare types moves on quickly.
const FILTERED_SCAN: usize = 4096;
/// Positions scanned at most per batch.
const MAX_SCAN: usize = 16384;
/// Snapshots read per call at most (each after a gap settled).
const MAX_ROUNDS: usize = 8;
/// Filters whose types matched at least one in this many scanned positions last time are dense.
const DENSE_ONE_IN: u64 = 4;
/// Filters remembered at most (a store has a reader or two per projection, saga and consumer).
const MAX_FILTERS: usize = 256;

/// Which type filters matched much of what their last batch scanned: those read along the
/// primary key. A filter not seen yet reads through the type index.
#[derive(Debug, Default)]
pub(super) struct TypeDensity(Mutex<HashMap<Vec<String>, bool>>);

impl TypeDensity {
    fn is_dense(&self, types: &[String]) -> bool {
        let known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        known.get(types).copied().unwrap_or(false)
    }

    /// Records that a batch of `types` found `matched` events in `scanned` positions.
    fn record(&self, types: &[String], matched: usize, scanned: u64) {
        let dense = scanned > 0 && matched as u64 * DENSE_ONE_IN >= scanned;
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if known.get(types) == Some(&dense) {
            return;
        }
        if known.len() >= MAX_FILTERS {
            known.clear();
        }
        known.insert(types.to_vec(), dense);
    }
}

/// One snapshot's view of the positions from a reader's position.
struct Positions {
    head: u64,
    positions: Vec<u64>,
}

/// Where the settled run from `from` ends, given which gaps are settled: the first unsettled
/// missing position, or one past the last position seen. `Err` holds an unsettled gap's last
/// missing position and the bound so far.
fn settled_bound(from: u64, positions: &[u64], settled: impl Fn(u64) -> bool) -> Result<u64, (u64, u64)> {
    let mut expected = from;
    for &position in positions {
        if position > expected && !settled(position - 1) {
            return Err((position - 1, expected));
        }
        expected = position + 1;
    }
    Ok(expected)
}

impl PostgresStore {
    /// [`EventStore::read_batch`](crate::EventStore::read_batch) for PostgreSQL.
    pub(super) async fn read_log_batch(
        &self,
        from_position: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<LogBatch, StoreError> {
        let from = from_position.max(1);
        let scan = if filter.types().is_some() {
            limit.max(FILTERED_SCAN)
        } else {
            limit
        }
        .clamp(1, MAX_SCAN);
        let client = self.client().await?;
        let sql = &self.inner.sql;
        let known = if limit == 0 {
            None
        } else {
            self.inner.settled_run.covering(from)
        };
        let (bound, head) = match known {
            // No wider than a snapshot would show: the typed read sorts what lies below the bound.
            Some((bound, head)) => (bound.min(from.saturating_add(scan as u64)), head),
            None => {
                let (bound, head) = self.settle(&client, from, scan).await?;
                self.inner.settled_run.record(from, bound, head);
                (bound, head)
            }
        };
        if limit == 0 || bound <= from {
            return Ok(LogBatch {
                events: Vec::new(),
                next_position: from,
                head,
            });
        }
        let (from_sql, bound_sql, limit_sql) = (sql_position(from), sql_position(bound), sql_limit(limit));
        let types = filter.types();
        let statement = client
            .prepare_cached(match types {
                Some(types) if self.inner.type_density.is_dense(types) => &sql.batch_events_typed_dense,
                Some(_) => &sql.batch_events_typed,
                None => &sql.batch_events,
            })
            .await
            .map_err(backend)?;
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&from_sql, &bound_sql, &limit_sql];
        if let Some(types) = &types {
            params.push(types);
        }
        let (rows, head) = if known.is_some() {
            // No snapshot of the positions: the head is read in the same round trip as the events.
            let head_statement = client.prepare_cached(&sql.head).await.map_err(backend)?;
            let (rows, head_row) = futures_util::future::join(
                client.query(&statement, &params),
                client.query_one(&head_statement, &[]),
            )
            .await;
            let current: i64 = head_row.map_err(backend)?.try_get(0).map_err(backend)?;
            (rows, head.max(current.unsigned_abs()))
        } else {
            (client.query(&statement, &params).await, head)
        };
        let rows = rows.map_err(backend)?;
        let events = row::decode_events(&rows)?;
        let next_position = match events.last() {
            Some(last) if !page_is_last(&events, limit) => last.global_position + 1,
            _ => bound,
        };
        if let Some(types) = types {
            let scanned = next_position.saturating_sub(from);
            self.inner.type_density.record(types, events.len(), scanned);
        }
        Ok(LogBatch {
            events,
            next_position,
            head,
        })
    }

    /// Reads the positions from `from` (at most `scan`), waiting briefly for a gap to settle:
    /// where the settled run from `from` ends, and the head of the last snapshot.
    async fn settle(
        &self,
        client: &deadpool_postgres::Client,
        from: u64,
        scan: usize,
    ) -> Result<(u64, u64), StoreError> {
        let (sql, horizons) = (&self.inner.sql, &self.inner.horizons);
        let mut probes = SETTLE_PROBES.iter();
        let mut rounds = 0;
        loop {
            rounds += 1;
            // Read before the snapshot: a settlement applies to later snapshots only.
            let settled = horizons.settled_below();
            let snapshot = self.positions(client, from, scan).await?;
            match settled_bound(from, &snapshot.positions, |missing| missing < settled) {
                Ok(bound) => return Ok((bound, snapshot.head)),
                Err((last_missing, bound)) => {
                    if !horizons.covers(last_missing) {
                        // After the snapshot: its writers include every owner of a missing position.
                        horizon::open(client, sql, horizons, snapshot.head).await?;
                    }
                    if rounds >= MAX_ROUNDS
                        || !self.wait_for_horizon(client, last_missing, &mut probes).await?
                    {
                        return Ok((bound, snapshot.head));
                    }
                }
            }
        }
    }

    /// The positions from `from` (at most `scan`) with the snapshot's head.
    async fn positions(
        &self,
        client: &deadpool_postgres::Client,
        from: u64,
        scan: usize,
    ) -> Result<Positions, StoreError> {
        let statement = client
            .prepare_cached(&self.inner.sql.batch_positions)
            .await
            .map_err(backend)?;
        let row = client
            .query_one(&statement, &[&sql_position(from), &sql_limit(scan)])
            .await
            .map_err(backend)?;
        let head: i64 = row.try_get(0).map_err(backend)?;
        let positions: Vec<i64> = row.try_get(1).map_err(backend)?;
        Ok(Positions {
            head: head.unsigned_abs(),
            positions: positions.into_iter().map(i64::unsigned_abs).collect(),
        })
    }

    /// Waits (a few short probes at most) until the position `missing` is settled.
    async fn wait_for_horizon(
        &self,
        client: &deadpool_postgres::Client,
        missing: u64,
        probes: &mut std::slice::Iter<'_, Duration>,
    ) -> Result<bool, StoreError> {
        let horizons = &self.inner.horizons;
        loop {
            if horizons.settled_below() > missing {
                return Ok(true);
            }
            if !horizons.covers(missing) {
                // Its horizon was dropped: the next round opens another.
                return Ok(true);
            }
            horizon::probe(client, &self.inner.sql, horizons, missing).await?;
            if horizons.settled_below() > missing {
                return Ok(true);
            }
            match probes.next() {
                Some(delay) => tokio::time::sleep(*delay).await,
                None => return Ok(false),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{settled_bound, TypeDensity};

    #[test]
    fn the_settled_run_stops_at_the_first_unsettled_gap() {
        assert_eq!(settled_bound(1, &[], |_| false), Ok(1));
        assert_eq!(settled_bound(3, &[3, 4, 5], |_| false), Ok(6));
        assert_eq!(settled_bound(1, &[1, 2, 4, 5], |_| false), Err((3, 3)));
        assert_eq!(settled_bound(1, &[1, 2, 4, 7], |m| m < 4), Err((6, 5)));
        assert_eq!(settled_bound(1, &[3, 4], |_| true), Ok(5));
    }

    #[test]
    fn a_filter_is_dense_once_its_types_fill_a_quarter_of_what_it_scanned() {
        let density = TypeDensity::default();
        let (common, rare) = (vec!["a.x".to_owned()], vec!["a.y".to_owned()]);
        assert!(!density.is_dense(&common), "unknown filters use the type index");
        density.record(&common, 500, 510);
        density.record(&rare, 3, 4096);
        assert!(density.is_dense(&common));
        assert!(!density.is_dense(&rare));
        density.record(&common, 10, 4096);
        assert!(
            !density.is_dense(&common),
            "a filter that thins out goes back to the index"
        );
        density.record(&rare, 0, 0);
        assert!(!density.is_dense(&rare));
    }
}
