//! The imageboard example: the event pipeline of an imageboard on Redis Streams.
//!
//! Threads, posts and bans are event-sourced in the embedded SQLite store (with read models for
//! thread pages and board pages beside them). A relay publishes the store's log to Redis Streams
//! (`MAXLEN` trimming), where three consumer groups work: `search_indexer` keeps an SQLite FTS5
//! index of post bodies, `cache_invalidator` deletes the cached pages (cache-aside in Redis) a
//! post or deletion makes stale, and `moderation_scorer` scores posts for spam and bans spammers;
//! it chokes on a crafted post, which is dead-lettered, listed, and replayed after the fix. A
//! second relay publishes `imageboard.post_published`, the published language, to a bus that a
//! board feed of another service consumes.
//!
//! `cargo run --example imageboard` needs Redis at `EVENTCORE_REDIS_URL`
//! (default `redis://127.0.0.1:6379`); every run uses keys of its own and removes them.
//! `cargo run --example imageboard -- catalog` prints its flow diagram.

mod app;
mod board;
mod cache;
mod catalog;
mod inspect;
mod invalidator;
mod journal;
mod legacy;
mod moderation;
mod output;
mod pipeline;
mod post;
mod published;
mod request;
mod scenario;
mod scorer;
mod search;
mod thread;
mod views;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(app::main())
}
