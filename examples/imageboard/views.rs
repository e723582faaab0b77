//! The read side in the store's SQLite file: a page per thread and a page per board, document
//! projections run by the store's projection runner.

use eventcore::prelude::*;
use eventcore::projection::Projections;
use serde::{Deserialize, Serialize};

use crate::post::{PostCreated, PostDeleted};
use crate::thread::{ThreadCreated, ThreadDeleted};

/// A post as a thread page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostLine {
    /// Its number.
    pub post_id: String,
    /// The name shown.
    pub author: String,
    /// The tripcode, if any.
    pub tripcode: Option<String>,
    /// The text.
    pub body: String,
}

/// One document per thread: its subject and its posts, in order.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadPage {
    /// The board.
    pub board: String,
    /// The subject line.
    pub subject: String,
    /// The posts not deleted, opening post first.
    pub posts: Vec<PostLine>,
    /// Whether a moderator deleted the thread.
    pub deleted: bool,
}

#[projection] // name "thread_page"; keyed by thread id
impl ThreadPage {
    #[on]
    fn created(&mut self, e: &ThreadCreated) {
        self.board = e.board.clone();
        self.subject = e.subject.clone();
    }

    #[on(key = thread_id)]
    fn posted(&mut self, e: &PostCreated) {
        if self.posts.iter().all(|p| p.post_id != e.post_id) {
            self.posts.push(PostLine {
                post_id: e.post_id.clone(),
                author: e.author.clone(),
                tripcode: e.tripcode.clone(),
                body: e.body.clone(),
            });
        }
    }

    #[on(key = thread_id)]
    fn post_deleted(&mut self, e: &PostDeleted) {
        self.posts.retain(|p| p.post_id != e.post_id);
    }

    #[on]
    fn deleted(&mut self, _: &ThreadDeleted) {
        self.deleted = true;
        self.posts.clear();
    }
}

/// A thread as a board's index and catalog show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadLine {
    /// The thread's number.
    pub thread_id: String,
    /// The subject line.
    pub subject: String,
    /// The start of the opening post.
    pub opening: String,
    /// Replies not deleted.
    pub replies: u32,
    /// The log position of its last post: the index lists the last bumped first.
    pub bumped: u64,
}

/// One document per board: its live threads.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardPage {
    /// Threads in the order they were created.
    pub threads: Vec<ThreadLine>,
}

impl BoardPage {
    fn thread(&mut self, thread_id: &str) -> Option<&mut ThreadLine> {
        self.threads.iter_mut().find(|t| t.thread_id == thread_id)
    }
}

/// The first `chars` characters of `text`, with `…` when cut.
pub fn excerpt(text: &str, chars: usize) -> String {
    let mut cut: String = text.chars().take(chars).collect();
    if text.chars().count() > chars {
        cut.push('…');
    }
    cut
}

#[projection] // name "board_page"; keyed by board
impl BoardPage {
    #[on(key = board)]
    fn created(&mut self, e: &Envelope<ThreadCreated>) {
        if self.thread(&e.payload.thread_id).is_none() {
            self.threads.push(ThreadLine {
                thread_id: e.payload.thread_id.clone(),
                subject: e.payload.subject.clone(),
                opening: String::new(),
                replies: 0,
                bumped: e.global_position,
            });
        }
    }

    #[on(key = board)]
    fn posted(&mut self, e: &Envelope<PostCreated>) {
        let post = &e.payload;
        if let Some(thread) = self.thread(&post.thread_id) {
            if post.post_id == post.thread_id {
                thread.opening = excerpt(&post.body, 40);
            } else {
                thread.replies += 1;
            }
            thread.bumped = e.global_position;
        }
    }

    #[on(key = board)]
    fn post_deleted(&mut self, e: &PostDeleted) {
        if let Some(thread) = self.thread(&e.thread_id) {
            thread.replies = thread.replies.saturating_sub(1);
        }
    }

    #[on(key = board)]
    fn deleted(&mut self, e: &ThreadDeleted) {
        self.threads.retain(|t| t.thread_id != e.thread_id);
    }
}

/// The board's read models over `store`.
pub fn projections(store: SqliteStore) -> Projections<SqliteStore> {
    Projections::new(store).with::<ThreadPage>().with::<BoardPage>()
}

/// A thread page as the site renders it.
pub fn render_thread(thread_id: &str, page: Option<&ThreadPage>) -> String {
    let Some(page) = page.filter(|p| !p.deleted) else {
        return format!("404: thread {thread_id} does not exist");
    };
    let mut text = format!("/{}/ No.{thread_id} \"{}\"", page.board, page.subject);
    for post in &page.posts {
        let trip = post
            .tripcode
            .as_deref()
            .map(|t| format!(" !{t}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "\n  No.{} {}{trip}: {}",
            post.post_id, post.author, post.body
        ));
    }
    text
}

/// A board's index: threads by last bump, newest first.
pub fn render_index(board: &str, page: Option<&BoardPage>) -> String {
    let mut threads: Vec<&ThreadLine> = page.map(|p| p.threads.iter().collect()).unwrap_or_default();
    threads.sort_by_key(|t| std::cmp::Reverse(t.bumped));
    let mut text = format!("/{board}/ index");
    for thread in threads {
        let plural = if thread.replies == 1 { "reply" } else { "replies" };
        text.push_str(&format!(
            "\n  No.{} \"{}\" ({} {plural})",
            thread.thread_id, thread.subject, thread.replies
        ));
    }
    text
}

/// A board's catalog: every thread with the start of its opening post, oldest first.
pub fn render_catalog(board: &str, page: Option<&BoardPage>) -> String {
    let mut text = format!("/{board}/ catalog");
    for thread in page.map(|p| p.threads.as_slice()).unwrap_or_default() {
        text.push_str(&format!(
            "\n  [No.{} R:{}] {}: {}",
            thread.thread_id, thread.replies, thread.subject, thread.opening
        ));
    }
    text
}
