//! The post aggregate: a post in a thread, deleted by a moderator. `post.created` is at version 2;
//! version 1 (the previous release) kept the author and the tripcode in one `name` field.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The author shown when a poster gives no name.
pub const ANONYMOUS: &str = "Anonymous";

/// Version 1 of `post.created`, as the previous release stored it: `name` is `author!tripcode`.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(name = "post.created", version = 1)]
pub struct PostCreatedV1 {
    /// The post's number.
    pub post_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The thread's board.
    pub board: String,
    /// `author`, `author!tripcode`, or empty for anonymous.
    pub name: String,
    /// The text.
    pub body: String,
}

/// A post was made in a thread (version 2: author and tripcode apart).
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "post", version = 2, upcast_from = PostCreatedV1)]
pub struct PostCreated {
    /// The post's number.
    pub post_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The thread's board.
    pub board: String,
    /// The name shown, `Anonymous` when none was given.
    pub author: String,
    /// The tripcode that proves who the author is, if any.
    pub tripcode: Option<String>,
    /// The text.
    pub body: String,
}

impl From<PostCreatedV1> for PostCreated {
    fn from(old: PostCreatedV1) -> Self {
        let (author, tripcode) = match old.name.split_once('!') {
            Some((author, trip)) => (author, Some(trip.to_owned()).filter(|t| !t.is_empty())),
            None => (old.name.as_str(), None),
        };
        let author = if author.trim().is_empty() {
            ANONYMOUS
        } else {
            author.trim()
        };
        Self {
            post_id: old.post_id,
            thread_id: old.thread_id,
            board: old.board,
            author: author.to_owned(),
            tripcode,
            body: old.body,
        }
    }
}

/// A moderator deleted a post.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "post")]
pub struct PostDeleted {
    /// The post.
    pub post_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The thread's board.
    pub board: String,
    /// Why.
    pub reason: String,
}

/// Every event of a post.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum PostEvent {
    /// See [`PostCreated`].
    Created(PostCreated),
    /// See [`PostDeleted`].
    Deleted(PostDeleted),
}

/// A post's state.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Post {
    /// Its number; empty until created.
    pub post_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The thread's board.
    pub board: String,
    /// Whether a moderator deleted it.
    pub deleted: bool,
}

/// Makes a post (the fields of [`PostCreated`]).
pub struct CreatePost(pub PostCreated);

/// Deletes a post.
pub struct DeletePost {
    /// Why.
    pub reason: String,
}

/// The longest body accepted, in characters.
pub const MAX_BODY: usize = 2_000;

/// Why a post refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PostError {
    /// The post exists already.
    #[error("post already exists")]
    AlreadyCreated,
    /// There is no such post.
    #[error("no such post")]
    NotFound,
    /// The post was deleted already.
    #[error("post already deleted")]
    AlreadyDeleted,
    /// The body is empty or longer than [`MAX_BODY`].
    #[error("a post needs a body of 1 to {MAX_BODY} characters")]
    BadBody,
}

#[aggregate(events = PostEvent, error = PostError)]
impl Post {
    #[command]
    fn create(&self, cmd: CreatePost) -> Result<Vec<PostEvent>, PostError> {
        if !self.post_id.is_empty() {
            return Err(PostError::AlreadyCreated);
        }
        let length = cmd.0.body.trim().chars().count();
        if length == 0 || length > MAX_BODY {
            return Err(PostError::BadBody);
        }
        Ok(vec![cmd.0.into()])
    }

    #[command]
    fn delete(&self, cmd: DeletePost) -> Result<Vec<PostEvent>, PostError> {
        if self.post_id.is_empty() {
            return Err(PostError::NotFound);
        }
        if self.deleted {
            return Err(PostError::AlreadyDeleted);
        }
        Ok(vec![PostDeleted {
            post_id: self.post_id.clone(),
            thread_id: self.thread_id.clone(),
            board: self.board.clone(),
            reason: cmd.reason,
        }
        .into()])
    }

    #[apply]
    fn created(&mut self, e: &PostCreated) {
        self.post_id = e.post_id.clone();
        self.thread_id = e.thread_id.clone();
        self.board = e.board.clone();
    }

    #[apply]
    fn deleted(&mut self, _: &PostDeleted) {
        self.deleted = true;
    }
}
