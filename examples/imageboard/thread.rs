//! The thread aggregate: opened on a board with a subject, deleted by a moderator.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A thread was opened on a board (its opening post is a `post.created` of the same request).
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "thread")]
pub struct ThreadCreated {
    /// The thread's number (also its opening post's).
    pub thread_id: String,
    /// The board, such as `g`.
    pub board: String,
    /// The subject line.
    pub subject: String,
}

/// A moderator deleted a thread and, with it, its posts.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "thread")]
pub struct ThreadDeleted {
    /// The thread.
    pub thread_id: String,
    /// Its board.
    pub board: String,
    /// Why.
    pub reason: String,
}

/// Every event of a thread.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum ThreadEvent {
    /// See [`ThreadCreated`].
    Created(ThreadCreated),
    /// See [`ThreadDeleted`].
    Deleted(ThreadDeleted),
}

/// A thread's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Thread {
    /// Its number; empty until created.
    pub thread_id: String,
    /// Its board; empty until created.
    pub board: String,
    /// Whether a moderator deleted it.
    pub deleted: bool,
}

impl Thread {
    /// Whether replies are accepted: created and not deleted.
    pub fn is_open(&self) -> bool {
        !self.thread_id.is_empty() && !self.deleted
    }
}

/// Opens a thread.
pub struct CreateThread {
    /// Its number.
    pub thread_id: String,
    /// The board.
    pub board: String,
    /// The subject line.
    pub subject: String,
}

/// Deletes a thread.
pub struct DeleteThread {
    /// Why.
    pub reason: String,
}

/// Why a thread refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ThreadError {
    /// The thread exists already.
    #[error("thread already exists")]
    AlreadyCreated,
    /// There is no such thread.
    #[error("no such thread")]
    NotFound,
    /// The thread was deleted.
    #[error("thread was deleted")]
    Deleted,
    /// A subject is required.
    #[error("a thread needs a subject")]
    EmptySubject,
}

#[aggregate(events = ThreadEvent, error = ThreadError)]
impl Thread {
    #[command]
    fn create(&self, cmd: CreateThread) -> Result<Vec<ThreadEvent>, ThreadError> {
        if !self.thread_id.is_empty() {
            return Err(ThreadError::AlreadyCreated);
        }
        if cmd.subject.trim().is_empty() {
            return Err(ThreadError::EmptySubject);
        }
        Ok(vec![ThreadCreated {
            thread_id: cmd.thread_id,
            board: cmd.board,
            subject: cmd.subject,
        }
        .into()])
    }

    #[command]
    fn delete(&self, cmd: DeleteThread) -> Result<Vec<ThreadEvent>, ThreadError> {
        if self.thread_id.is_empty() {
            return Err(ThreadError::NotFound);
        }
        if self.deleted {
            return Err(ThreadError::Deleted);
        }
        Ok(vec![ThreadDeleted {
            thread_id: self.thread_id.clone(),
            board: self.board.clone(),
            reason: cmd.reason,
        }
        .into()])
    }

    #[apply]
    fn created(&mut self, e: &ThreadCreated) {
        self.thread_id = e.thread_id.clone();
        self.board = e.board.clone();
    }

    #[apply]
    fn deleted(&mut self, _: &ThreadDeleted) {
        self.deleted = true;
    }
}
