//! The program around the demo: where Redis is, a clear message when it cannot be reached,
//! keys and files unique to the run, and cleanup.

use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::output::Output;
use crate::scenario::{self, Error, Report};

/// Where Redis is when `EVENTCORE_REDIS_URL` is not set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// How long connecting to Redis may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Redis could not be reached: the one message the program prints about it.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot reach Redis at {url} ({reason}): the imageboard example needs Redis; start one, \
     or point EVENTCORE_REDIS_URL at it (default {DEFAULT_REDIS_URL})"
)]
pub struct Unreachable {
    /// The URL tried, without its password.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// The Redis URL to use: `EVENTCORE_REDIS_URL`, or the default.
pub fn redis_url() -> String {
    std::env::var("EVENTCORE_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// `url` without a password (`redis://:secret@host` -> `redis://:***@host`).
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split_once(':').map_or(user, |(user, _)| user);
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Connects to Redis at `url` and checks it answers.
pub async fn connect(url: &str) -> Result<MultiplexedConnection, Unreachable> {
    let unreachable = |reason: String| Unreachable {
        url: redacted(url),
        reason,
    };
    let client = redis::Client::open(url).map_err(|e| unreachable(e.to_string()))?;
    let mut connection = tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection())
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut connection)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    Ok(connection)
}

/// Deletes every key under `prefix`; how many.
async fn clean_up(redis: &mut MultiplexedConnection, prefix: &str) -> Result<usize, Error> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    if !keys.is_empty() {
        let _: usize = redis::cmd("DEL").arg(&keys).query_async(redis).await?;
    }
    Ok(keys.len())
}

/// Runs the demo on Redis at `url` with keys under a prefix unique to this run, and in a
/// temporary directory; removes both afterwards, whatever the outcome.
pub async fn run(url: &str, out: &mut Output) -> Result<Report, Error> {
    let mut redis = connect(url).await?;
    let prefix = format!("imageboard-{}", eventcore::uuid::Uuid::now_v7().simple());
    let dir = tempfile::tempdir()?;
    out.line(format!("Redis at {}, keys under {prefix}:*", redacted(url)));
    out.line(format!(
        "store and search index: SQLite files in {}",
        dir.path().display()
    ));
    let outcome = scenario::run(url, redis.clone(), &prefix, dir.path(), out).await;
    let removed = clean_up(&mut redis, &prefix).await;
    let report = outcome?;
    out.section("cleanup");
    out.line(format!(
        "removed {} Redis keys and the temporary directory",
        removed?
    ));
    Ok(report)
}

/// The program: runs the demo, or prints why it could not; the exit code.
pub fn main() -> u8 {
    if std::env::args().nth(1).as_deref() == Some("catalog") {
        println!("{}", crate::catalog::mermaid_block());
        return 0;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return 1;
        }
    };
    let url = redis_url();
    match runtime.block_on(run(&url, &mut Output::printing())) {
        Ok(_) => 0,
        Err(error) => {
            eprintln!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            1
        }
    }
}
