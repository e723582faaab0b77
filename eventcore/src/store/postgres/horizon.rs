//! Gap horizons, shared by the subscription and `read_batch`: which missing positions are final.
//!
//! A horizon is opened just after a snapshot that showed a gap: `top` is the highest position
//! the snapshot saw, `writers` the transaction ids of the writers announced at that moment (see
//! the `store::postgres` module doc). Once none of them is running, every position below `top`
//! is final: committed, or never to appear. A horizon with no writer is settled at once.
//!
//! The store keeps one set of horizons for all its readers. `settled_below` only grows; a
//! reader reads it *before* taking the snapshot it applies it to, so the snapshot is later than
//! the settlement and shows every event that committed below it.

use std::sync::{Mutex, PoisonError};

use super::{backend, sql_position};
use crate::store::StoreError;

/// Open horizons kept per store at most; the oldest goes first (a dropped horizon is only
/// opened again).
const MAX_OPEN: usize = 32;

/// The horizons of one store.
#[derive(Debug, Default)]
pub(super) struct Horizons(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// Every position below it is final.
    settled_below: u64,
    /// Horizons whose writers may still run, in the order they were opened.
    open: Vec<Open>,
}

#[derive(Debug)]
struct Open {
    top: u64,
    /// Transaction ids (as text) of the writers not yet seen to have ended.
    writers: Vec<String>,
}

impl Horizons {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every position below this is final; read it before the snapshot it is applied to.
    pub(super) fn settled_below(&self) -> u64 {
        self.state().settled_below
    }

    /// Whether an open horizon covers the missing position `missing`.
    pub(super) fn covers(&self, missing: u64) -> bool {
        self.state().open.iter().any(|open| open.top > missing)
    }

    /// The writers of every open horizon, to ask which still run.
    pub(super) fn open_writers(&self) -> Vec<String> {
        let mut writers: Vec<String> = self
            .state()
            .open
            .iter()
            .flat_map(|open| open.writers.iter().cloned())
            .collect();
        writers.sort_unstable();
        writers.dedup();
        writers
    }

    /// Records a horizon opened after a snapshot whose highest position was `top`.
    pub(super) fn open(&self, top: u64, writers: Vec<String>) {
        let mut state = self.state();
        if writers.is_empty() {
            state.settled_below = state.settled_below.max(top);
            let settled = state.settled_below;
            state.open.retain(|open| open.top > settled);
            return;
        }
        if state.open.len() >= MAX_OPEN {
            state.open.remove(0);
        }
        state.open.push(Open { top, writers });
    }

    /// Of the writers `asked` about, only `running` still run: horizons left with no writer
    /// are settled, with every horizon below them.
    pub(super) fn update(&self, asked: &[String], running: &[String]) {
        let mut state = self.state();
        let mut settled = state.settled_below;
        for open in &mut state.open {
            // A writer added after the question was sent is kept.
            open.writers
                .retain(|xid| running.contains(xid) || !asked.contains(xid));
            if open.writers.is_empty() {
                settled = settled.max(open.top);
            }
        }
        state.settled_below = settled;
        state.open.retain(|open| open.top > settled);
    }
}

/// The latest run of positions a snapshot proved final, `[from, bound)`, with that snapshot's
/// head: a reader whose position lies inside it reads its events below `bound` without a new
/// snapshot of the positions (a position once final stays final).
#[derive(Debug, Default)]
pub(super) struct SettledRun(Mutex<Option<Run>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    from: u64,
    bound: u64,
    head: u64,
}

impl SettledRun {
    fn run(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bound and head of the known run when `from` lies inside it.
    pub(super) fn covering(&self, from: u64) -> Option<(u64, u64)> {
        self.run()
            .filter(|run| run.from <= from && from < run.bound)
            .map(|run| (run.bound, run.head))
    }

    /// Records that every position in `[from, bound)` is final, as a snapshot with head `head`
    /// showed; joins the known run when the two touch.
    pub(super) fn record(&self, from: u64, bound: u64, head: u64) {
        if bound <= from {
            return;
        }
        let mut run = self.run();
        *run = Some(match *run {
            Some(known) if known.from <= from && from <= known.bound && bound >= known.bound => Run {
                from: known.from,
                bound,
                head: head.max(known.head),
            },
            Some(known) if known.from <= from && bound <= known.bound => known,
            _ => Run { from, bound, head },
        });
    }
}

/// Opens a horizon after a snapshot whose highest position was `top`: asks which writers are
/// announced now (in a statement after the snapshot's).
pub(super) async fn open(
    client: &deadpool_postgres::Client,
    sql: &super::schema::Statements,
    horizons: &Horizons,
    top: u64,
) -> Result<(), StoreError> {
    let statement = client
        .prepare_cached(&sql.announced_writers)
        .await
        .map_err(backend)?;
    let row = client.query_one(&statement, &[]).await.map_err(backend)?;
    let writers: Vec<String> = row.try_get(0).map_err(backend)?;
    let standby: bool = row.try_get(1).map_err(backend)?;
    if standby {
        return Err(StoreError::backend(StandbyRead));
    }
    horizons.open(top, writers);
    Ok(())
}

/// A gap cannot be settled on a standby: its `pg_locks` shows none of the primary's writers.
#[derive(Debug, thiserror::Error)]
#[error(
    "the store reads from a hot standby, where an open gap in the positions cannot be settled; \
     follow the log (subscriptions, read_batch) on the primary"
)]
struct StandbyRead;

/// Asks which writers of the open horizons still run, and the lowest position from `from`;
/// settles the horizons whose writers have all ended.
pub(super) async fn probe(
    client: &deadpool_postgres::Client,
    sql: &super::schema::Statements,
    horizons: &Horizons,
    from: u64,
) -> Result<Option<u64>, StoreError> {
    let asked = horizons.open_writers();
    let statement = client.prepare_cached(&sql.gap_probe).await.map_err(backend)?;
    let row = client
        .query_one(&statement, &[&sql_position(from), &asked])
        .await
        .map_err(backend)?;
    let lowest: Option<i64> = row.try_get(0).map_err(backend)?;
    let running: Vec<String> = row.try_get(1).map_err(backend)?;
    horizons.update(&asked, &running);
    Ok(lowest.map(i64::unsigned_abs))
}

#[cfg(test)]
mod tests {
    use super::{Horizons, SettledRun};

    #[test]
    fn a_settled_run_covers_only_what_a_snapshot_proved() {
        let run = SettledRun::default();
        assert_eq!(run.covering(1), None);
        run.record(1, 1, 0);
        assert_eq!(run.covering(1), None);
        run.record(1, 100, 120);
        assert_eq!(run.covering(1), Some((100, 120)));
        assert_eq!(run.covering(99), Some((100, 120)));
        assert_eq!(run.covering(100), None);
        // A run that starts inside the known one extends it.
        run.record(50, 200, 250);
        assert_eq!(run.covering(10), Some((200, 250)));
        // One inside it changes nothing.
        run.record(60, 70, 80);
        assert_eq!(run.covering(150), Some((200, 250)));
        // A disjoint run replaces it.
        run.record(300, 400, 400);
        assert_eq!(run.covering(150), None);
        assert_eq!(run.covering(300), Some((400, 400)));
    }

    fn ids(xids: &[&str]) -> Vec<String> {
        xids.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn a_horizon_settles_once_its_writers_have_ended() {
        let horizons = Horizons::default();
        horizons.open(10, ids(&["1", "2"]));
        assert!(horizons.covers(9) && !horizons.covers(10));
        horizons.update(&ids(&["1", "2"]), &ids(&["2"]));
        assert_eq!(horizons.settled_below(), 0);
        horizons.open(20, ids(&["2", "3"]));
        // "3" was not asked about: it stays.
        horizons.update(&ids(&["2"]), &[]);
        assert_eq!(horizons.settled_below(), 10);
        assert!(horizons.covers(15));
        horizons.update(&ids(&["3"]), &[]);
        assert_eq!(horizons.settled_below(), 20);
        assert!(horizons.open_writers().is_empty());
        horizons.open(30, Vec::new());
        assert_eq!(horizons.settled_below(), 30);
    }
}
