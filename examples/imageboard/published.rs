//! The published language: `imageboard.post_published`, translated from `post.created` by the
//! relay for other services, and one such service, a board feed, consuming it.

use eventcore::bus::HandleError;
use eventcore::integration::{IntegrationHandler, IntegrationMessage, Translate};
use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::journal::Journal;
use crate::post::PostCreated;
use crate::views::excerpt;

/// A post was published on the board: what other services may rely on (no author tripcode, no
/// client data, a bounded excerpt).
#[derive(IntegrationEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[integration(name = "imageboard.post_published", version = 1)]
pub struct PostPublished {
    /// The board.
    pub board: String,
    /// The thread.
    pub thread_id: String,
    /// The post.
    pub post_id: String,
    /// Whether the post opened the thread.
    pub opens_thread: bool,
    /// The name shown.
    pub author: String,
    /// The first 60 characters of the body.
    pub excerpt: String,
}

impl From<&Envelope<PostCreated>> for PostPublished {
    fn from(e: &Envelope<PostCreated>) -> Self {
        let post = &e.payload;
        Self {
            board: post.board.clone(),
            thread_id: post.thread_id.clone(),
            post_id: post.post_id.clone(),
            opens_thread: post.post_id == post.thread_id,
            author: post.author.clone(),
            excerpt: excerpt(&post.body, 60),
        }
    }
}

/// The metadata published with a message: none, so the client's address hash and user agent
/// stay inside the service.
const PUBLISHED_METADATA: [&str; 0] = [];

/// The relay's translation: every `post.created` (upcast from version 1 if stored so) leaves
/// as `imageboard.post_published`; nothing else leaves.
pub fn translation() -> Translate {
    Translate::new()
        .event::<PostCreated, PostPublished>()
        .metadata_keys(PUBLISHED_METADATA)
}

/// Another service, subscribed to the published language: a feed of new posts.
#[derive(Clone)]
pub struct BoardFeed {
    journal: Journal,
}

impl BoardFeed {
    /// A feed that tells `journal` what it receives.
    pub fn new(journal: Journal) -> Self {
        Self { journal }
    }
}

impl IntegrationHandler for BoardFeed {
    const NAME: &'static str = "board_feed";
    const HANDLED_NAMES: &'static [&'static str] = &[PostPublished::NAME];

    async fn handle(&self, message: &IntegrationMessage) -> Result<(), HandleError> {
        let post = message.decode::<PostPublished>()?;
        let kind = if post.opens_thread { "new thread" } else { "reply" };
        self.journal.record(
            "board_feed",
            format!(
                "{} v{}: {kind} /{}/ No.{} by {} (correlation {}, metadata {:?})",
                message.name,
                message.version,
                post.board,
                post.post_id,
                post.author,
                message.correlation_id.as_deref().unwrap_or("-"),
                message.metadata.keys().collect::<Vec<_>>()
            ),
        );
        Ok(())
    }
}
