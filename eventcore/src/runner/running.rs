//! A set of started runners: wait for them, watch their status, stop them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{wait_reached, Lease, RunnerError, RunnerStatus, RunnerStore, StatusBoard};

/// Started runners (projections, consumers); dropping this stops them.
pub struct Running<S> {
    store: S,
    runners: Vec<Runner>,
    cancel: tokio_util::sync::DropGuard,
}

impl<S> std::fmt::Debug for Running<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// One started runner: its status and its task (which returns the lease it still holds).
pub(crate) struct Runner {
    board: Arc<StatusBoard>,
    task: JoinHandle<Option<Lease>>,
}

impl Runner {
    pub(crate) fn new(board: Arc<StatusBoard>, task: JoinHandle<Option<Lease>>) -> Self {
        Self { board, task }
    }
}

impl<S> Running<S> {
    pub(crate) fn new(store: S, runners: Vec<Runner>, cancel: CancellationToken) -> Self {
        Self {
            store,
            runners,
            cancel: cancel.drop_guard(),
        }
    }

    /// The status of each runner, in the order they were added.
    pub fn status(&self) -> Vec<RunnerStatus> {
        self.runners.iter().map(|r| r.board.current()).collect()
    }

    /// What the runners report to: the store (or the broker) and each runner's status board.
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))] // broker buses only
    pub(crate) fn parts(&self) -> (&S, Vec<Arc<StatusBoard>>) {
        (
            &self.store,
            self.runners.iter().map(|r| Arc::clone(&r.board)).collect(),
        )
    }

    /// Stops every runner and waits for their tasks, dropping the leases they return (runners
    /// that hold none: broker consumers).
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))] // broker buses only
    pub(crate) async fn stop_tasks(self) -> Result<(), RunnerError> {
        drop(self.cancel);
        let mut first_error = None;
        for runner in self.runners {
            if let Err(error) = runner.task.await {
                first_error.get_or_insert(RunnerError::Task(error));
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A receiver of one runner's status, to watch it change.
    pub fn watch(&self, name: &str) -> Option<watch::Receiver<RunnerStatus>> {
        self.runners
            .iter()
            .find(|r| r.board.current().name == name)
            .map(|r| r.board.subscribe())
    }
}

impl<S: RunnerStore> Running<S> {
    /// Waits until every runner has handled every event committed before this call; an
    /// error when one fails or stops first, or when `timeout` passes.
    pub async fn wait_caught_up(&self, timeout: Duration) -> Result<(), RunnerError> {
        let head = self.store.head_position().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        for runner in &self.runners {
            let reached = wait_reached(runner.board.subscribe(), head);
            match tokio::time::timeout_at(deadline, reached).await {
                Ok(Ok(())) => {}
                Ok(Err(message)) => return Err(RunnerError::NotRunning(message)),
                Err(_) => {
                    let status = runner.board.current();
                    return Err(RunnerError::Timeout {
                        name: status.name,
                        waited: timeout,
                        position: status.position,
                        head,
                    });
                }
            }
        }
        Ok(())
    }

    /// Stops every runner after its current batch and gives up their leases.
    pub async fn stop(self) -> Result<(), RunnerError> {
        let Self {
            store,
            runners,
            cancel,
        } = self;
        drop(cancel);
        let mut first_error = None;
        for runner in runners {
            match runner.task.await {
                Ok(Some(lease)) => {
                    if let Err(error) = store.release_lease(&lease).await {
                        first_error.get_or_insert(RunnerError::Store(error));
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    first_error.get_or_insert(RunnerError::Task(error));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
