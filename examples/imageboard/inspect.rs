//! What an operator looks at: envelopes and their correlation, causation and metadata, and the
//! streams on Redis.

use eventcore::prelude::*;
use redis::aio::MultiplexedConnection;

use crate::output::Output;
use crate::pipeline::{MAXLEN, PARTITIONS};
use crate::request::{ADDRESS_HASH, USER_AGENT};
use crate::scenario::Error;

/// Prints the envelope of the first event of `stream_id`.
pub async fn envelope_of(store: &SqliteStore, stream_id: &str, out: &mut Output) -> Result<(), Error> {
    let events = store.read_stream(stream_id, 1, 1).await?;
    let event = events.first().ok_or("no such stream")?;
    out.line(format!(
        "envelope of {} {}: correlation {}, causation {}, {ADDRESS_HASH} {}, {USER_AGENT} {:?}",
        event.event_type,
        event.aggregate_id,
        event.correlation_id.as_deref().unwrap_or("-"),
        event.causation_id.as_deref().unwrap_or("-"),
        event.metadata.get(ADDRESS_HASH).map_or("-", String::as_str),
        event.metadata.get(USER_AGENT).map_or("-", String::as_str),
    ));
    Ok(())
}

/// Prints the ban of `address_hash`, with the request and the post that caused it.
pub async fn ban_chain(store: &SqliteStore, address_hash: &str, out: &mut Output) -> Result<(), Error> {
    for event in store
        .read_stream(&format!("moderation-{address_hash}"), 1, 10)
        .await?
    {
        out.line(format!(
            "{} of poster {}…: correlation {} (the spam request), causation {} (its post.created)",
            event.event_type,
            &address_hash[..8],
            event.correlation_id.as_deref().unwrap_or("-"),
            event.causation_id.as_deref().unwrap_or("-"),
        ));
    }
    Ok(())
}

/// Prints the length of each partition stream of the board's bus.
pub async fn stream_lengths(
    mut redis: MultiplexedConnection,
    prefix: &str,
    out: &mut Output,
) -> Result<(), Error> {
    let mut lengths = Vec::new();
    for partition in 0..PARTITIONS {
        let key = format!("{prefix}:bus:events:{partition}");
        let length: u64 = redis::cmd("XLEN").arg(&key).query_async(&mut redis).await?;
        lengths.push(format!("{partition}: {length}"));
    }
    out.line(format!(
        "stream entries per partition ({}), trimmed to about {MAXLEN} each",
        lengths.join(", ")
    ));
    Ok(())
}
