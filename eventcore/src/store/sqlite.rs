//! The embedded SQLite event store (placeholder until implemented).
/// The embedded durable store.
#[derive(Debug, Clone)]
pub struct SqliteStore;
