//! The moderation aggregate, one per poster (keyed by the hash of their address): bans.

use eventcore::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A poster was banned: posts from their address are refused from now on.
#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "moderation", name = "moderation.ban")]
pub struct PosterBanned {
    /// The hash of the poster's address (never the address itself).
    pub address_hash: String,
    /// Why.
    pub reason: String,
    /// The post that led to the ban, if any.
    pub post_id: Option<String>,
}

/// Every event of a poster's moderation record.
#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum ModerationEvent {
    /// See [`PosterBanned`].
    Banned(PosterBanned),
}

/// A poster's moderation record.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Moderation {
    /// Why the poster is banned, once they are.
    pub banned: Option<String>,
}

/// Bans a poster.
pub struct Ban {
    /// The hash of their address: the aggregate id.
    pub address_hash: String,
    /// Why.
    pub reason: String,
    /// The post that led to it, if any.
    pub post_id: Option<String>,
}

/// Why a moderation record refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModerationError {
    /// The poster is banned already.
    #[error("poster already banned")]
    AlreadyBanned,
}

#[aggregate(events = ModerationEvent, error = ModerationError)]
impl Moderation {
    #[command]
    fn ban(&self, cmd: Ban) -> Result<Vec<ModerationEvent>, ModerationError> {
        if self.banned.is_some() {
            return Err(ModerationError::AlreadyBanned);
        }
        Ok(vec![PosterBanned {
            address_hash: cmd.address_hash,
            reason: cmd.reason,
            post_id: cmd.post_id,
        }
        .into()])
    }

    #[apply]
    fn banned(&mut self, e: &PosterBanned) {
        self.banned = Some(e.reason.clone());
    }
}
