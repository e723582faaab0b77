//! The imageboard example (examples/imageboard) run against real Redis, its output checked; the
//! message it gives when Redis cannot be reached; fixture tests of its domain; and its part of
//! the event catalog, as the README shows it.
#![cfg(feature = "redis")]

#[path = "../examples/imageboard/app.rs"]
mod app;
#[path = "../examples/imageboard/board.rs"]
mod board;
#[path = "../examples/imageboard/cache.rs"]
mod cache;
#[path = "../examples/imageboard/catalog.rs"]
mod catalog;
#[path = "../examples/imageboard/inspect.rs"]
mod inspect;
#[path = "../examples/imageboard/invalidator.rs"]
mod invalidator;
#[path = "../examples/imageboard/journal.rs"]
mod journal;
#[path = "../examples/imageboard/legacy.rs"]
mod legacy;
#[path = "../examples/imageboard/moderation.rs"]
mod moderation;
#[path = "../examples/imageboard/output.rs"]
mod output;
#[path = "../examples/imageboard/pipeline.rs"]
mod pipeline;
#[path = "../examples/imageboard/post.rs"]
mod post;
#[path = "../examples/imageboard/published.rs"]
mod published;
#[path = "../examples/imageboard/request.rs"]
mod request;
#[path = "../examples/imageboard/scenario.rs"]
mod scenario;
#[path = "../examples/imageboard/scorer.rs"]
mod scorer;
#[path = "../examples/imageboard/search.rs"]
mod search;
#[path = "../examples/imageboard/thread.rs"]
mod thread;
#[path = "../examples/imageboard/views.rs"]
mod views;

use std::process::Command;

use eventcore_testing::{AggregateFixture, ProjectionFixture};
use serde_json::json;

use board::{author_of, BoardError};
use cache::Served;
use moderation::{Ban, Moderation, ModerationError, PosterBanned};
use post::{CreatePost, DeletePost, Post, PostCreated, PostCreatedV1, PostDeleted, PostError};
use request::AddressHasher;
use scorer::{score, ScoreError, BAN_SCORE};
use thread::{CreateThread, DeleteThread, Thread, ThreadCreated, ThreadDeleted, ThreadError};
use views::{BoardPage, ThreadPage};

/// Set in the child process that runs the example's `main`.
const CHILD: &str = "IMAGEBOARD_EXAMPLE_CHILD";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_redis_and_tells_what_each_consumer_did() {
    let Some(url) = eventcore_testing::service_url("EVENTCORE_REDIS_URL") else {
        return;
    };
    let mut out = output::Output::capturing();
    let report = app::run(&url, &mut out).await.expect("the demo runs");
    let text = out.text();

    // The v1 event is really stored at version 1 and read back upcast.
    let (stored, current) = report.legacy.clone().expect("legacy post");
    assert_eq!(stored, 1);
    assert_eq!(
        (current.author.as_str(), current.tripcode.as_deref()),
        ("lain", Some("Wired7"))
    );
    assert!(text.contains("stored post.created v1: {"), "{text}");
    assert!(
        text.contains("read back as post.created v2: author \"lain\", tripcode Some(\"Wired7\")"),
        "{text}"
    );

    // The envelope: correlation id, hashed address, user agent.
    assert!(
        text.contains("envelope of post.created 1002: correlation req-3, causation -, client_addr_hash "),
        "{text}"
    );
    assert!(text.contains("user_agent \"Mozilla/5.0 (iPhone;"), "{text}");
    assert!(
        !text.contains("198.51.100.23"),
        "the address itself is never shown"
    );

    // Cache-aside: miss, hit, then after a write a miss that shows the write.
    let thread_reads: Vec<Served> = report
        .reads
        .iter()
        .filter(|(what, _)| what == "thread 1001")
        .map(|(_, served)| *served)
        .collect();
    assert_eq!(thread_reads, [Served::Miss, Served::Hit, Served::Miss]);
    assert!(report.fresh_after_write, "{text}");
    assert!(
        text.contains("read after the write: fresh, shows No.1005"),
        "{text}"
    );
    assert!(
        text.contains(
            "post.created in thread No.1001: deleted its page, /g/ index and catalog (3 of 3 were cached)"
        ),
        "{text}"
    );

    // Search: the deleted post leaves the index.
    let found = |i: usize| -> Vec<String> { report.searches[i].iter().map(|h| h.post_id.clone()).collect() };
    let mut before = found(0);
    before.sort();
    assert_eq!(before, ["1001", "1004", "1005"]);
    assert!(!found(1).contains(&"1004".to_owned()), "{text}");
    assert!(text.contains("[Oolong] here"), "{text}");

    // The poison post: dead-lettered after 3 attempts, listed, replayed after the fix.
    let (post, attempts, error) = report.dead_letter.clone().expect("a dead letter");
    assert_eq!((post.as_str(), attempts), ("1006", 3));
    assert_eq!(error[0], "handler `post_created` failed");
    assert!(
        error[1].contains("cannot parse link `http://[2001:db8::1/shop`"),
        "{error:?}"
    );
    assert!(text.contains("dead letters of moderation_scorer: 1"), "{text}");
    assert!(text.contains("  attempts 3, dead-lettered at"), "{text}");
    assert_eq!(report.dead_after_replay, 0);
    assert!(text.contains("No.1006: score 100: banned the poster"), "{text}");
    assert!(
        matches!(report.refused, Some(BoardError::Banned(_))),
        "{:?}",
        report.refused
    );
    assert!(text.contains("moderation.ban of poster"), "{text}");
    assert!(report.scores.contains(&("1006".to_owned(), 100)));

    // The other consumers and the published language.
    assert!(
        text.contains("search_indexer     indexed No.1000: \"Present day"),
        "{text}"
    );
    assert!(
        text.contains("search_indexer     removed thread No.1000 (2 posts)"),
        "{text}"
    );
    assert!(text.contains("board_feed         imageboard.post_published v1: new thread /g/ No.1001 by Anonymous (correlation req-2, metadata [])"), "{text}");
    assert!(text.contains("404: thread 1000 does not exist"), "{text}");

    // Every runner caught up; the run's keys are gone.
    assert_eq!(
        report
            .lags
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        [
            "board_relay",
            "published_language",
            "search_indexer",
            "cache_invalidator",
            "moderation_scorer",
            "board_feed"
        ]
    );
    assert!(report.lags.iter().all(|(_, lag)| *lag == 0), "{:?}", report.lags);
    assert!(text.contains("MAXLEN ~ 10000 each"), "{text}");
    let prefix = text
        .lines()
        .find_map(|l| l.split("keys under ").nth(1))
        .and_then(|rest| rest.strip_suffix(":*"))
        .expect("the key prefix is printed");
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(left.is_empty(), "keys left behind: {left:?}");
}

/// Runs the example's `main` when started by `unreachable_redis_is_one_clear_message`.
#[test]
#[ignore = "the example's process, started by `unreachable_redis_is_one_clear_message`"]
fn child_process_entry() {
    if std::env::var_os(CHILD).is_some() {
        std::process::exit(i32::from(app::main()));
    }
}

#[test]
fn unreachable_redis_is_one_clear_message() {
    let url = "redis://127.0.0.1:1";
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("EVENTCORE_REDIS_URL", url)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: cannot reach Redis at redis://127.0.0.1:1 ("),
        "{stderr}"
    );
    assert!(
        lines[0]
            .contains("the imageboard example needs Redis; start one, or point EVENTCORE_REDIS_URL at it"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_catalog_draws_the_imageboard_and_the_readme_shows_it() {
    let block = catalog::mermaid_block();
    for node in [
        "agg_thread{{\"thread\"}}",
        "agg_post{{\"post\"}}",
        "agg_moderation{{\"moderation\"}}",
        "cmd_post_CreatePost([\"CreatePost\"]) --> agg_post",
        "agg_post --> evt_post_created[\"post.created v2\"]",
        "agg_post --> evt_post_deleted[\"post.deleted v1\"]",
        "agg_thread --> evt_thread_created[\"thread.created v1\"]",
        "agg_thread --> evt_thread_deleted[\"thread.deleted v1\"]",
        "agg_moderation --> evt_moderation_ban[\"moderation.ban v1\"]",
        "evt_post_created --> handler_search_indexer",
        "evt_post_deleted --> handler_cache_invalidator",
        "evt_thread_deleted --> handler_cache_invalidator",
        "evt_post_created --> handler_moderation_scorer",
        "evt_post_created --> projection_thread_page",
        "evt_thread_created --> projection_board_page",
        "evt_imageboard_post_published[/\"integration imageboard.post_published v1\"/]",
        "evt_post_created -. relay .-> evt_imageboard_post_published",
    ] {
        assert!(block.contains(node), "{node} missing from\n{block}");
    }
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.contains(&block),
        "README.md lacks the imageboard's current diagram \
         (`cargo run --example imageboard -- catalog`):\n{block}"
    );
}

fn created(post_id: &str, thread_id: &str) -> PostCreated {
    PostCreated {
        post_id: post_id.into(),
        thread_id: thread_id.into(),
        board: "g".into(),
        author: "Anonymous".into(),
        tripcode: None,
        body: "hello".into(),
    }
}

#[test]
fn a_thread_is_created_once_and_deleted_once() {
    let create = || CreateThread {
        thread_id: "1".into(),
        board: "g".into(),
        subject: "tea".into(),
    };
    let opened = ThreadCreated {
        thread_id: "1".into(),
        board: "g".into(),
        subject: "tea".into(),
    };
    AggregateFixture::<Thread>::new()
        .given_nothing()
        .when(create())
        .then_events(vec![opened.clone().into()]);
    AggregateFixture::<Thread>::new()
        .given(vec![opened.clone().into()])
        .when(create())
        .then_error(ThreadError::AlreadyCreated);
    AggregateFixture::<Thread>::new()
        .given_nothing()
        .when(CreateThread {
            subject: " ".into(),
            ..create()
        })
        .then_error(ThreadError::EmptySubject);
    AggregateFixture::<Thread>::new()
        .given(vec![opened.clone().into()])
        .when(DeleteThread {
            reason: "spam".into(),
        })
        .then_events(vec![ThreadDeleted {
            thread_id: "1".into(),
            board: "g".into(),
            reason: "spam".into(),
        }
        .into()])
        .then_state(|t| t.deleted && !t.is_open());
    AggregateFixture::<Thread>::new()
        .given_nothing()
        .when(DeleteThread {
            reason: "spam".into(),
        })
        .then_error(ThreadError::NotFound);
}

#[test]
fn a_post_needs_a_body_and_is_deleted_once() {
    AggregateFixture::<Post>::new()
        .given_nothing()
        .when(CreatePost(created("2", "1")))
        .then_events(vec![created("2", "1").into()]);
    AggregateFixture::<Post>::new()
        .given_nothing()
        .when(CreatePost(PostCreated {
            body: "  ".into(),
            ..created("2", "1")
        }))
        .then_error(PostError::BadBody);
    AggregateFixture::<Post>::new()
        .given(vec![created("2", "1").into()])
        .when(CreatePost(created("2", "1")))
        .then_error(PostError::AlreadyCreated);
    let deleted = PostDeleted {
        post_id: "2".into(),
        thread_id: "1".into(),
        board: "g".into(),
        reason: "off topic".into(),
    };
    AggregateFixture::<Post>::new()
        .given(vec![created("2", "1").into()])
        .when(DeletePost {
            reason: "off topic".into(),
        })
        .then_events(vec![deleted.clone().into()]);
    AggregateFixture::<Post>::new()
        .given(vec![created("2", "1").into(), deleted.into()])
        .when(DeletePost {
            reason: "again".into(),
        })
        .then_error(PostError::AlreadyDeleted);
}

#[test]
fn a_post_stored_at_version_1_is_upcast_when_loaded() {
    AggregateFixture::<Post>::new()
        .given_stored(
            "post.created",
            1,
            json!({ "post_id": "7", "thread_id": "5", "board": "a", "name": "ada!trip", "body": "hi" }),
        )
        .when(DeletePost { reason: "old".into() })
        .then_events(vec![PostDeleted {
            post_id: "7".into(),
            thread_id: "5".into(),
            board: "a".into(),
            reason: "old".into(),
        }
        .into()]);
    let v1 = |name: &str| PostCreatedV1 {
        post_id: "7".into(),
        thread_id: "5".into(),
        board: "a".into(),
        name: name.into(),
        body: "hi".into(),
    };
    let split = |name: &str| {
        let post = PostCreated::from(v1(name));
        (post.author, post.tripcode)
    };
    assert_eq!(split("ada!trip"), ("ada".into(), Some("trip".into())));
    assert_eq!(split("ada"), ("ada".into(), None));
    assert_eq!(split(""), ("Anonymous".into(), None));
    assert_eq!(split("!trip"), ("Anonymous".into(), Some("trip".into())));
    assert_eq!(split("ada!"), ("ada".into(), None));
}

#[test]
fn a_poster_is_banned_once() {
    let ban = || Ban {
        address_hash: "ab12".into(),
        reason: "spam".into(),
        post_id: Some("9".into()),
    };
    let banned = PosterBanned {
        address_hash: "ab12".into(),
        reason: "spam".into(),
        post_id: Some("9".into()),
    };
    AggregateFixture::<Moderation>::new()
        .given_nothing()
        .when(ban())
        .then_events(vec![banned.clone().into()])
        .then_state(|m| m.banned.as_deref() == Some("spam"));
    AggregateFixture::<Moderation>::new()
        .given(vec![banned.into()])
        .when(ban())
        .then_error(ModerationError::AlreadyBanned);
}

#[test]
fn the_read_models_follow_posts_and_deletions() {
    let opened = ThreadCreated {
        thread_id: "1".into(),
        board: "g".into(),
        subject: "tea".into(),
    };
    let reply_deleted = PostDeleted {
        post_id: "2".into(),
        thread_id: "1".into(),
        board: "g".into(),
        reason: "x".into(),
    };
    ProjectionFixture::<ThreadPage>::new()
        .given_for("1", vec![opened.clone().into()])
        .given_for("1", vec![created("1", "1").into()])
        .given_for("2", vec![created("2", "1").into(), reply_deleted.clone().into()])
        .then_document("1", |page| {
            page.subject == "tea" && page.posts.iter().map(|p| p.post_id.as_str()).eq(["1"])
        });
    ProjectionFixture::<BoardPage>::new()
        .given_for("1", vec![opened.clone().into()])
        .given_for("1", vec![created("1", "1").into()])
        .given_for("2", vec![created("2", "1").into()])
        .given_for(
            "3",
            vec![
                created("3", "1").into(),
                PostDeleted {
                    post_id: "3".into(),
                    ..reply_deleted.clone()
                }
                .into(),
            ],
        )
        .then_document("g", |page| {
            page.threads.len() == 1 && page.threads[0].replies == 1 && page.threads[0].opening == "hello"
        });
    ProjectionFixture::<BoardPage>::new()
        .given_for("1", vec![opened.into()])
        .given_for(
            "1",
            vec![ThreadDeleted {
                thread_id: "1".into(),
                board: "g".into(),
                reason: "x".into(),
            }
            .into()],
        )
        .then_document("g", |page| page.threads.is_empty());
}

#[test]
fn spam_scores_and_the_link_parser_bug() {
    assert_eq!(score("Genmaicha is nice", false).unwrap(), 0);
    let spam = "BUY CHEAP GOLD http://example.test/shop";
    assert!(score(spam, false).unwrap() >= BAN_SCORE);
    let poison = "BUY http://[2001:db8::1/shop";
    assert!(
        matches!(score(poison, false), Err(ScoreError::MalformedLink(link)) if link == "http://[2001:db8::1/shop")
    );
    assert!(score(poison, true).unwrap() >= 30, "fixed: the link counts");
    assert_eq!(score("http://[2001:db8::1]/ok", false).unwrap(), 30);
}

#[test]
fn addresses_are_hashed_with_a_key_and_tripcodes_from_secrets() {
    let address = "203.0.113.7".parse().unwrap();
    let hash = AddressHasher::new(b"key one").unwrap().hash(address);
    assert_eq!(hash.len(), 32);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(hash, AddressHasher::new(b"key one").unwrap().hash(address));
    assert_ne!(hash, AddressHasher::new(b"key two").unwrap().hash(address));
    assert_ne!(
        hash,
        AddressHasher::new(b"key one")
            .unwrap()
            .hash("203.0.113.8".parse().unwrap())
    );

    let (author, trip) = author_of("tea#kettle");
    assert_eq!(author, "tea");
    assert_eq!(trip.as_deref().map(str::len), Some(10));
    assert_eq!(author_of("#kettle").1, trip, "the same secret, the same tripcode");
    assert_eq!(author_of(""), ("Anonymous".into(), None));
}
