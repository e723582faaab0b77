//! `moderation_scorer`: scores each new post for spam and bans the poster (by the hash of their
//! address, from the envelope's metadata) when the score reaches [`BAN_SCORE`].
//!
//! Its link parser has a bug: a link with an unclosed `[` (an IPv6 literal) is an error rather
//! than a link. The error is retried, then the post is dead-lettered; the "fix" is
//! [`Fix::deploy`], a flag flipped at run time, after which a replay succeeds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use eventcore::prelude::*;

use crate::journal::Journal;
use crate::moderation::{Ban, Moderation, ModerationError};
use crate::post::PostCreated;
use crate::request::ADDRESS_HASH;

/// The score from which a poster is banned.
pub const BAN_SCORE: u32 = 60;

/// Words spammers use.
const SPAM_WORDS: [&str; 5] = ["buy", "cheap", "casino", "free", "gold"];

/// Why a post could not be scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// The link parser choked (the bug).
    #[error("cannot parse link `{0}`: unclosed `[` in the host")]
    MalformedLink(String),
    /// The ban could not be stored.
    #[error("cannot ban the poster")]
    Ban(#[from] RepositoryError<ModerationError>),
}

/// Whether the link parser's fix is deployed.
#[derive(Debug, Clone, Default)]
pub struct Fix(Arc<AtomicBool>);

impl Fix {
    /// Deploys the fix: unclosed hosts count as links.
    pub fn deploy(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn deployed(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The links in `body`; with the bug, an error for a host with an unclosed `[`.
fn links(body: &str, fixed: bool) -> Result<usize, ScoreError> {
    let mut count = 0;
    for word in body.split_whitespace() {
        let Some(rest) = word
            .strip_prefix("http://")
            .or_else(|| word.strip_prefix("https://"))
        else {
            continue;
        };
        if rest.starts_with('[') && !rest.contains(']') && !fixed {
            return Err(ScoreError::MalformedLink(word.to_owned()));
        }
        count += 1;
    }
    Ok(count)
}

/// The spam score of `body`, 0 to 100.
pub fn score(body: &str, fixed: bool) -> Result<u32, ScoreError> {
    let links = links(body, fixed)? as u32;
    let words: Vec<&str> = body.split_whitespace().collect();
    let shouting = words
        .iter()
        .filter(|w| w.len() > 2 && w.chars().all(|c| !c.is_lowercase()) && w.chars().any(char::is_uppercase))
        .count();
    let spammy = words
        .iter()
        .filter(|w| SPAM_WORDS.contains(&w.to_lowercase().trim_matches(|c: char| !c.is_alphanumeric())))
        .count() as u32;
    let mut score = 30 * links + 15 * spammy;
    if !words.is_empty() && shouting * 2 > words.len() {
        score += 20;
    }
    Ok(score.min(100))
}

/// Scores posts and bans spammers.
#[derive(Clone)]
pub struct ModerationScorer {
    moderation: Repository<Moderation, SqliteStore>,
    fix: Fix,
    scores: Arc<Mutex<BTreeMap<String, u32>>>,
    journal: Journal,
}

impl ModerationScorer {
    /// A scorer that bans through `moderation`, with the link parser's `fix`.
    pub fn new(moderation: Repository<Moderation, SqliteStore>, fix: Fix, journal: Journal) -> Self {
        Self {
            moderation,
            fix,
            scores: Arc::default(),
            journal,
        }
    }

    /// The score of every post scored so far, by post number.
    pub fn scores(&self) -> BTreeMap<String, u32> {
        self.scores.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[event_handler(name = "moderation_scorer")]
impl ModerationScorer {
    #[on]
    async fn post_created(&self, e: &Envelope<PostCreated>) -> Result<(), ScoreError> {
        let post = &e.payload;
        let score = match score(&post.body, self.fix.deployed()) {
            Ok(score) => score,
            Err(error) => {
                self.journal.record(
                    "moderation_scorer",
                    format!("No.{}: failed: {error}", post.post_id),
                );
                return Err(error);
            }
        };
        self.scores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(post.post_id.clone(), score);
        let Some(address_hash) = e.metadata.get(ADDRESS_HASH).filter(|_| score >= BAN_SCORE) else {
            self.journal
                .record("moderation_scorer", format!("No.{}: score {score}", post.post_id));
            return Ok(());
        };
        // At least once: the idempotency key makes a redelivered post ban once.
        let context = CommandContext::caused_by(e).idempotency_key(format!("ban/{}", e.event_id));
        let ban = Ban {
            address_hash: address_hash.clone(),
            reason: format!("spam score {score} on No.{}", post.post_id),
            post_id: Some(post.post_id.clone()),
        };
        let outcome = match self.moderation.execute_with(address_hash, ban, &context).await {
            Ok(_) => "banned the poster",
            Err(RepositoryError::Rejected(ModerationError::AlreadyBanned)) => "poster already banned",
            Err(error) => return Err(error.into()),
        };
        self.journal.record(
            "moderation_scorer",
            format!(
                "No.{}: score {score}: {outcome} ({}…)",
                post.post_id,
                &address_hash[..8.min(address_hash.len())]
            ),
        );
        Ok(())
    }
}
