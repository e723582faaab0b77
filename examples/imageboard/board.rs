//! The board's write side: what a visitor's request does, with the rules that span aggregates
//! (no post from a banned poster, no reply to a missing or deleted thread) decided atomically.

use std::sync::atomic::{AtomicU64, Ordering};

use eventcore::prelude::*;
use eventcore::Decision;
use sha2::{Digest, Sha256};

use crate::moderation::Moderation;
use crate::post::{CreatePost, DeletePost, Post, PostCreated, PostError, ANONYMOUS};
use crate::request::{AddressHasher, Request};
use crate::thread::{CreateThread, DeleteThread, Thread, ThreadError};

/// Why the board refuses a request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoardError {
    /// The poster is banned.
    #[error("banned: {0}")]
    Banned(String),
    /// The thread refuses it.
    #[error(transparent)]
    Thread(#[from] ThreadError),
    /// The post refuses it.
    #[error(transparent)]
    Post(#[from] PostError),
}

/// What a request's outcome is: the refusal, or a store failure.
pub type Outcome<T> = Result<T, RepositoryError<BoardError>>;

/// The author and tripcode of a name field: `name#secret` shows `name` with a tripcode derived
/// from the secret (SHA-256), proving who posted without an account.
pub fn author_of(name: &str) -> (String, Option<String>) {
    let (author, secret) = match name.split_once('#') {
        Some((author, secret)) => (author.trim(), Some(secret)),
        None => (name.trim(), None),
    };
    let author = if author.is_empty() { ANONYMOUS } else { author };
    let tripcode = secret.filter(|s| !s.is_empty()).map(|secret| {
        let digest = Sha256::digest(secret.as_bytes());
        digest[..5].iter().map(|b| format!("{b:02x}")).collect()
    });
    (author.to_owned(), tripcode)
}

/// The board service.
pub struct Board {
    store: SqliteStore,
    hasher: AddressHasher,
    next_number: AtomicU64,
}

impl Board {
    /// A board over `store`, hashing addresses with `hasher`; new posts are numbered from
    /// `first_number`.
    pub fn new(store: SqliteStore, hasher: AddressHasher, first_number: u64) -> Self {
        Self {
            store,
            hasher,
            next_number: AtomicU64::new(first_number),
        }
    }

    fn number(&self) -> String {
        self.next_number.fetch_add(1, Ordering::SeqCst).to_string()
    }

    /// Opens a thread on `board` with its opening post; the thread's number.
    pub async fn create_thread(
        &self,
        request: &Request,
        board: &str,
        subject: &str,
        name: &str,
        body: &str,
    ) -> Outcome<String> {
        let number = self.number();
        let mut decision = self.decision(request).await?;
        let thread = decision.load::<Thread, _>(&number).await?;
        let created = thread
            .state()
            .handle(CreateThread {
                thread_id: number.clone(),
                board: board.to_owned(),
                subject: subject.to_owned(),
            })
            .map_err(|e| RepositoryError::Rejected(e.into()))?;
        decision.append::<Thread, _>(&number, &created)?;
        self.post(&mut decision, &number, &number, board, name, body)?;
        decision.commit().await?;
        Ok(number)
    }

    /// Replies in thread `thread_id`; the post's number.
    pub async fn reply(&self, request: &Request, thread_id: &str, name: &str, body: &str) -> Outcome<String> {
        let number = self.number();
        let mut decision = self.decision(request).await?;
        let thread = decision.load::<Thread, _>(thread_id).await?;
        if !thread.state().is_open() {
            let why = if thread.state().deleted {
                ThreadError::Deleted
            } else {
                ThreadError::NotFound
            };
            return Err(RepositoryError::Rejected(why.into()));
        }
        let board = thread.state().board.clone();
        self.post(&mut decision, &number, thread_id, &board, name, body)?;
        decision.commit().await?;
        Ok(number)
    }

    /// A moderator deletes post `post_id`.
    pub async fn delete_post(&self, request: &Request, post_id: &str, reason: &str) -> Outcome<()> {
        let mut decision = Decision::new(self.store.clone()).with_context(request.context(&self.hasher));
        let post = decision.load::<Post, _>(post_id).await?;
        let deleted = post
            .state()
            .handle(DeletePost {
                reason: reason.to_owned(),
            })
            .map_err(|e| RepositoryError::Rejected(e.into()))?;
        decision.append::<Post, _>(post_id, &deleted)?;
        decision.commit().await?;
        Ok(())
    }

    /// A moderator deletes thread `thread_id`.
    pub async fn delete_thread(&self, request: &Request, thread_id: &str, reason: &str) -> Outcome<()> {
        let mut decision = Decision::new(self.store.clone()).with_context(request.context(&self.hasher));
        let thread = decision.load::<Thread, _>(thread_id).await?;
        let deleted = thread
            .state()
            .handle(DeleteThread {
                reason: reason.to_owned(),
            })
            .map_err(|e| RepositoryError::Rejected(e.into()))?;
        decision.append::<Thread, _>(thread_id, &deleted)?;
        decision.commit().await?;
        Ok(())
    }

    /// A decision in `request`'s context that requires the poster not to be banned, now and at
    /// the commit.
    async fn decision(&self, request: &Request) -> Outcome<Decision<SqliteStore>> {
        let context = request.context(&self.hasher);
        let address_hash = self.hasher.hash(request.address);
        let mut decision = Decision::new(self.store.clone()).with_context(context);
        let poster = decision.load::<Moderation, _>(&address_hash).await?;
        if let Some(reason) = &poster.state().banned {
            return Err(RepositoryError::Rejected(BoardError::Banned(reason.clone())));
        }
        Ok(decision)
    }

    /// Stages post `post_id` in `thread_id`.
    fn post(
        &self,
        decision: &mut Decision<SqliteStore>,
        post_id: &str,
        thread_id: &str,
        board: &str,
        name: &str,
        body: &str,
    ) -> Outcome<()> {
        let (author, tripcode) = author_of(name);
        let created = Post::default()
            .handle(CreatePost(PostCreated {
                post_id: post_id.to_owned(),
                thread_id: thread_id.to_owned(),
                board: board.to_owned(),
                author,
                tripcode,
                body: body.to_owned(),
            }))
            .map_err(|e| RepositoryError::Rejected(e.into()))?;
        decision.append::<Post, _>(post_id, &created)
    }
}
