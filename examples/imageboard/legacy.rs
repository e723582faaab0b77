//! The previous release's data: a thread whose opening post was stored as `post.created`
//! version 1, which the current code reads upcast to version 2.

use eventcore::prelude::*;
use eventcore::NewEvent;

use crate::output::Output;
use crate::post::{PostCreated, PostCreatedV1};
use crate::request::{AddressHasher, Request};
use crate::scenario::{Error, BOARD};
use crate::thread::{CreateThread, Thread};

/// Stores thread No.1000 and its opening post as the previous release did: `post.created`
/// version 1. Returns the stored version and the event it reads back as.
pub async fn seed_legacy(
    store: &SqliteStore,
    request: &Request,
    hasher: &AddressHasher,
    out: &mut Output,
) -> Result<(u32, PostCreated), Error> {
    let context = request.context(hasher);
    let create = CreateThread {
        thread_id: "1000".into(),
        board: BOARD.into(),
        subject: "Serial Experiments Lain".into(),
    };
    Repository::<Thread, _>::new(store.clone())
        .execute_with("1000", create, &context)
        .await?;
    let old = PostCreatedV1 {
        post_id: "1000".into(),
        thread_id: "1000".into(),
        board: BOARD.into(),
        name: "lain!Wired7".into(),
        body: "Present day, present time. Post your favourite episode.".into(),
    };
    let event = NewEvent::encode(&old, "post", "1000")?.with_context(&context);
    store
        .append("post-1000", ExpectedVersion::NoStream, vec![event])
        .await?;
    let stored = store.read_stream("post-1000", 1, 1).await?;
    let record = stored.first().ok_or("the legacy post was not stored")?;
    out.line(format!(
        "stored {} v{}: {}",
        record.event_type,
        record.event_version,
        String::from_utf8_lossy(&record.payload)
    ));
    let current = record.decode::<PostCreated>()?;
    out.line(format!(
        "read back as {} v{}: author {:?}, tripcode {:?}",
        current.event_type, current.event_version, current.payload.author, current.payload.tripcode
    ));
    Ok((record.event_version, current.payload))
}
