//! The demo: a board with a thread from the previous release, visitors posting, the cache read
//! through and invalidated, a search, a poison post dead-lettered and replayed after the fix, a
//! thread deleted, and the state of the pipeline.

use std::path::Path;
use std::time::Duration;

use eventcore::prelude::*;
use redis::aio::MultiplexedConnection;

use crate::board::{Board, BoardError};
use crate::cache::{Cache, Page, Served};
use crate::journal::Journal;
use crate::output::Output;
use crate::pipeline::{Parts, Pipeline, MAXLEN, PARTITIONS};
use crate::post::PostCreated;
use crate::request::{AddressHasher, Request};
use crate::scorer::{Fix, ModerationScorer};
use crate::search::{Hit, SearchIndex};
use crate::{inspect, legacy, views};

/// Errors of the demo.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The board of the demo.
pub const BOARD: &str = "g";

/// What the demo saw, for tests.
#[derive(Debug, Default)]
pub struct Report {
    /// The version the legacy post is stored at, and the event it reads back as.
    pub legacy: Option<(u32, PostCreated)>,
    /// Every page read through the cache: what, and hit or miss.
    pub reads: Vec<(String, Served)>,
    /// The thread page read after the reply, and whether it shows the reply.
    pub fresh_after_write: bool,
    /// Search results for "oolong" before and after a post was deleted.
    pub searches: Vec<Vec<Hit>>,
    /// The poison post's number, its dead letter's attempts and error chain.
    pub dead_letter: Option<(String, u32, Vec<String>)>,
    /// Dead letters left after the replay.
    pub dead_after_replay: usize,
    /// Why the spammer's next post was refused.
    pub refused: Option<BoardError>,
    /// The scores of the posts.
    pub scores: Vec<(String, u32)>,
    /// How far behind each relay and consumer group is at the end (a group: lag plus pending).
    pub lags: Vec<(String, u64)>,
}

/// A visitor of the board.
struct Visitor {
    address: [u8; 4],
    user_agent: &'static str,
}

const ALICE: Visitor = Visitor {
    address: [203, 0, 113, 7],
    user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
};
const BOB: Visitor = Visitor {
    address: [198, 51, 100, 23],
    user_agent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1",
};
const SPAMMER: Visitor = Visitor {
    address: [192, 0, 2, 66],
    user_agent: "curl/8.5.0",
};
const JANITOR: Visitor = Visitor {
    address: [198, 51, 100, 1],
    user_agent: "janitor-tools/1.2",
};

/// Numbers requests.
#[derive(Default)]
struct Requests(u32);

impl Requests {
    fn from(&mut self, visitor: &Visitor) -> Request {
        self.0 += 1;
        Request::new(&format!("req-{}", self.0), visitor.address, visitor.user_agent)
    }
}

/// Runs the demo on Redis at `url` (connected as `redis`), with keys under `prefix` and files in
/// `dir`.
pub async fn run(
    url: &str,
    redis: MultiplexedConnection,
    prefix: &str,
    dir: &Path,
    out: &mut Output,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let store = SqliteStore::open(dir.join("board.sqlite3")).await?;
    // A deployment reads its secret from its configuration; the demo makes one per run.
    let hasher = AddressHasher::new(format!("deployment secret of {prefix}").as_bytes())?;
    let mut requests = Requests::default();

    out.section("the previous release's data: thread No.1000, its opening post stored as post.created v1");
    report.legacy = Some(legacy::seed_legacy(&store, &requests.from(&ALICE), &hasher, out).await?);

    let views = views::projections(store.clone());
    let read_models = views.start();
    let watches = ["thread_page", "board_page"]
        .iter()
        .filter_map(|name| read_models.watch(name))
        .collect();
    let cache = Cache::new(redis.clone(), prefix, views.clone());
    let journal = Journal::default();
    let fix = Fix::default();
    let scorer = ModerationScorer::new(Repository::new(store.clone()), fix.clone(), journal.clone());
    let index = SearchIndex::open(&dir.join("search.sqlite3"))?;
    let parts = Parts {
        cache: cache.clone(),
        read_models: watches,
        index: index.clone(),
        scorer: scorer.clone(),
        journal,
    };
    let pipeline = Pipeline::start(url, prefix, &store, parts).await?;
    out.section("pipeline");
    out.line(format!(
        "store: SQLite; relay `board_relay` -> Redis Streams {prefix}:bus:events:0..{} (MAXLEN ~ {MAXLEN} each)",
        PARTITIONS - 1
    ));
    out.line(format!(
        "relay `published_language` -> {prefix}:public:events:0 (imageboard.post_published only)"
    ));
    out.line(
        "consumer groups: search_indexer, cache_invalidator, moderation_scorer; board_feed on the public bus",
    );

    let board = Board::new(store.clone(), hasher.clone(), 1001);
    out.section("visitors post");
    let tea = board
        .create_thread(
            &requests.from(&ALICE),
            BOARD,
            "Tea thread",
            "",
            "What are you drinking? Oolong here, second steep.",
        )
        .await?;
    let genmaicha = board
        .reply(
            &requests.from(&BOB),
            &tea,
            "tea#kettle",
            "Genmaicha. The toasted rice smell is unbeatable.",
        )
        .await?;
    board
        .reply(
            &requests.from(&ALICE),
            "1000",
            "",
            "Layer 07 is the best episode, no contest.",
        )
        .await?;
    let cold = board
        .reply(
            &requests.from(&BOB),
            &tea,
            "",
            "Cold brewed oolong in summer, hot sencha in winter.",
        )
        .await?;
    pipeline.settle(out).await?;
    inspect::envelope_of(&store, &format!("post-{genmaicha}"), out).await?;

    out.section("cache-aside: the thread, the board index and the catalog, read through Redis");
    read(
        &cache.thread(&tea).await?,
        &format!("thread {tea}"),
        &mut report,
        out,
        false,
    );
    read(
        &cache.thread(&tea).await?,
        &format!("thread {tea}"),
        &mut report,
        out,
        false,
    );
    read(&cache.index(BOARD).await?, "board index", &mut report, out, true);
    read(&cache.catalog(BOARD).await?, "catalog", &mut report, out, true);
    read(&cache.index(BOARD).await?, "board index", &mut report, out, false);
    let fresh = board
        .reply(
            &requests.from(&ALICE),
            &tea,
            "",
            "Just brewed a fresh pot of oolong.",
        )
        .await?;
    out.line(format!("ALICE replies No.{fresh} in thread {tea}"));
    pipeline.settle(out).await?;
    let page = cache.thread(&tea).await?;
    report.fresh_after_write = page.text.contains(&format!("No.{fresh} "));
    read(&page, &format!("thread {tea}"), &mut report, out, true);
    out.line(format!(
        "read after the write: {}",
        if report.fresh_after_write {
            format!("fresh, shows No.{fresh}")
        } else {
            "STALE".to_owned()
        }
    ));
    read(&cache.index(BOARD).await?, "board index", &mut report, out, true);

    out.section("search the board: \"oolong\"");
    let hits = index.search("oolong", 10).await?;
    print_hits(&hits, out);
    report.searches.push(hits);
    board
        .delete_post(&requests.from(&JANITOR), &cold, "off topic")
        .await?;
    out.line(format!("a janitor deletes No.{cold}"));
    pipeline.settle(out).await?;
    out.line("search again: \"oolong\"");
    let hits = index.search("oolong", 10).await?;
    print_hits(&hits, out);
    report.searches.push(hits);

    out.section("a poison post: the scorer's link parser fails on it");
    let spam = board
        .reply(
            &requests.from(&SPAMMER),
            &tea,
            "",
            "BUY CHEAP GOLD NOW http://[2001:db8::1/shop FREE SHIPPING",
        )
        .await?;
    out.line(format!("SPAMMER posts No.{spam}"));
    pipeline.settle(out).await?;
    let dead = pipeline.bus.dead_letters("moderation_scorer");
    let letters = dead.list().await?;
    out.line(format!("dead letters of moderation_scorer: {}", letters.len()));
    for letter in &letters {
        out.dead_letter(letter);
    }
    out.line("lag of each group (the dead letter holds nothing back):");
    out.lags(&pipeline.relays(), &pipeline.groups(&mut redis.clone()).await?);
    if let Some(letter) = letters.first() {
        report.dead_letter = Some((spam.clone(), letter.attempts, letter.error.clone()));
    }

    out.section("the fix is deployed; the dead letter is replayed");
    fix.deploy();
    let replayed = dead.replay_all().await?;
    out.line(format!("replayed {replayed} dead letter(s)"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while dead.count().await? > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.dead_after_replay = dead.count().await?;
    pipeline.settle(out).await?;
    out.line(format!(
        "dead letters of moderation_scorer: {}",
        report.dead_after_replay
    ));
    match board
        .reply(&requests.from(&SPAMMER), &tea, "", "cheap gold, last chance")
        .await
    {
        Err(RepositoryError::Rejected(refusal)) => {
            out.line(format!("SPAMMER posts again: refused ({refusal})"));
            report.refused = Some(refusal);
        }
        Ok(number) => out.line(format!("SPAMMER posts again: accepted as No.{number}")),
        Err(other) => return Err(other.into()),
    }
    inspect::ban_chain(&store, &hasher.hash(SPAMMER.address.into()), out).await?;

    out.section("a janitor deletes thread No.1000");
    board
        .delete_thread(&requests.from(&JANITOR), "1000", "rule 2: no off-topic threads")
        .await?;
    pipeline.settle(out).await?;
    read(
        &cache.thread("1000").await?,
        "thread 1000",
        &mut report,
        out,
        true,
    );
    read(&cache.catalog(BOARD).await?, "catalog", &mut report, out, true);
    out.line("search \"episode\":");
    print_hits(&index.search("episode", 10).await?, out);

    out.section("the pipeline at the end");
    let relays = pipeline.relays();
    let groups = pipeline.groups(&mut redis.clone()).await?;
    out.lags(&relays, &groups);
    report.lags = relays.iter().map(|s| (s.name.clone(), s.lag)).collect();
    report
        .lags
        .extend(groups.iter().map(|g| (g.group.clone(), g.lag + g.pending)));
    inspect::stream_lengths(redis, prefix, out).await?;
    report.scores = scorer.scores().into_iter().collect();
    let scores: Vec<String> = report.scores.iter().map(|(p, s)| format!("No.{p} {s}")).collect();
    out.line(format!("spam scores: {}", scores.join(", ")));

    pipeline.stop().await?;
    read_models.stop().await?;
    Ok(report)
}

/// Prints a page read through the cache (its text too when `show`).
fn read(page: &Page, what: &str, report: &mut Report, out: &mut Output, show: bool) {
    let served = match page.served {
        Served::Hit => "hit ",
        Served::Miss => "miss",
    };
    out.line(format!("read {what:<12} cache {served}"));
    if show {
        for line in page.text.lines() {
            out.line(format!("    | {line}"));
        }
    }
    report.reads.push((what.to_owned(), page.served));
}

fn print_hits(hits: &[Hit], out: &mut Output) {
    if hits.is_empty() {
        out.line("  no results");
    }
    for hit in hits {
        out.line(format!(
            "  /{}/ No.{} (thread {}): {}",
            hit.board, hit.post_id, hit.thread_id, hit.snippet
        ));
    }
}
