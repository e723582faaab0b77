//! The tests' own small domain (tickets, a projection, a notifier consumer), a runner of the
//! built `eventcore` binary, and the scenario every backend runs.
#![allow(dead_code, missing_docs)] // test helpers, not API

pub mod brokers;
pub mod triage;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventcore::bus::{Backoff, EventBus};
use eventcore::projection::Projections;
use eventcore::runner::{RetryPolicy, RunnerStore};
use eventcore::{aggregate, event_handler, projection, CommandContext, DomainEvent, Envelope, Repository};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ticket")]
pub struct TicketOpened {
    pub title: String,
}

#[derive(DomainEvent, Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[event(aggregate = "ticket", version = 2)]
pub struct TicketClosed {
    pub reason: String,
}

#[derive(DomainEvent, Debug, Clone, PartialEq)]
pub enum TicketEvent {
    Opened(TicketOpened),
    Closed(TicketClosed),
}

#[derive(Debug, Default)]
pub struct Ticket {
    open: bool,
}

pub struct Open {
    pub title: String,
}

pub struct Close {
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the ticket is not in a state for that")]
pub struct WrongState;

#[aggregate(events = TicketEvent, error = WrongState)]
impl Ticket {
    #[command]
    fn open(&self, cmd: Open) -> Result<Vec<TicketEvent>, WrongState> {
        if self.open {
            return Err(WrongState);
        }
        Ok(vec![TicketOpened { title: cmd.title }.into()])
    }

    #[command]
    fn close(&self, cmd: Close) -> Result<Vec<TicketEvent>, WrongState> {
        if !self.open {
            return Err(WrongState);
        }
        Ok(vec![TicketClosed { reason: cmd.reason }.into()])
    }

    #[apply]
    fn opened(&mut self, _: &TicketOpened) {
        self.open = true;
    }

    #[apply]
    fn closed(&mut self, _: &TicketClosed) {
        self.open = false;
    }
}

/// One document per ticket.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSummary {
    pub title: String,
    pub closed: bool,
}

#[projection(name = "ticket_summary")]
impl TicketSummary {
    #[on]
    fn opened(&mut self, e: &TicketOpened) {
        self.title = e.title.clone();
    }

    #[on]
    fn closed(&mut self, _: &TicketClosed) {
        self.closed = true;
    }
}

/// Whether [`StrictIndex`] refuses poison (until the "fix").
pub static STRICT: AtomicBool = AtomicBool::new(true);

/// Refuses to index a ticket titled "poison" while [`STRICT`].
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct StrictIndex {
    pub titles: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot index a poisoned title")]
pub struct Poisoned;

#[projection(name = "strict_index")]
impl StrictIndex {
    #[on]
    fn opened(&mut self, e: &TicketOpened) -> Result<(), Poisoned> {
        if e.title == "poison" && STRICT.load(Ordering::SeqCst) {
            return Err(Poisoned);
        }
        self.titles.push(e.title.clone());
        Ok(())
    }
}

/// Notifies about new tickets; fails on "poison" while `broken`.
#[derive(Clone, Default)]
pub struct Notifier {
    pub sent: Arc<Mutex<Vec<String>>>,
    pub broken: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("mail server rejected `{0}`")]
pub struct Rejected(pub String);

#[event_handler(name = "notifier")]
impl Notifier {
    #[on]
    async fn opened(&self, e: &Envelope<TicketOpened>) -> Result<(), Rejected> {
        if e.payload.title == "poison" && self.broken.load(Ordering::SeqCst) {
            return Err(Rejected(e.payload.title.clone()));
        }
        self.sent
            .lock()
            .map_err(|_| Rejected("lock".into()))?
            .push(e.payload.title.clone());
        Ok(())
    }
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON it printed; panics with the output when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }

    /// Asserts the exit code, showing the output otherwise.
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "expected exit code {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the built `eventcore` with `args`, without `EVENTCORE_STORE` from the environment.
pub fn eventcore(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_eventcore"))
        .args(args)
        .env_remove("EVENTCORE_STORE")
        .env_remove("EVENTCORE_SCHEMA")
        .output()
        .expect("the eventcore binary runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the binary off the async runtime's threads, so runners in this process keep going.
pub async fn eventcore_async(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        eventcore(&args)
    })
    .await
    .expect("the binary's thread")
}

/// `--store ... [--schema ...]` followed by `rest`.
pub fn with_store(store_args: &[String], rest: &[&str]) -> Vec<String> {
    store_args
        .iter()
        .cloned()
        .chain(rest.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// Waits until `check` holds, up to ten seconds.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The end-to-end scenario on `store`, which the binary reaches with `store_args`: streams,
/// events, head, projection status and rebuild, runner lag, dead letters round trip.
pub async fn scenario<S: RunnerStore>(store: S, store_args: Vec<String>) {
    let cli = |rest: &[&str]| eventcore_async(with_store(&store_args, rest));
    STRICT.store(true, Ordering::SeqCst);
    let tickets = Repository::<Ticket, _>::new(store.clone());
    let context = CommandContext::new()
        .correlation_id("corr-1")
        .metadata("user", "ops");
    for (id, title) in [("t-1", "printer jam"), ("t-2", "poison"), ("t-3", "vpn down")] {
        tickets
            .execute_with(id, Open { title: title.into() }, &context)
            .await
            .unwrap();
    }
    tickets
        .execute(
            "t-1",
            Close {
                reason: "fixed".into(),
            },
        )
        .await
        .unwrap();

    // Streams and events.
    let listed = cli(&["--json", "streams", "list"]).await.expect(0).json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ticket-t-1", "ticket-t-2", "ticket-t-3"]);
    assert_eq!(listed[0]["version"], 2);
    let page = cli(&[
        "--json",
        "streams",
        "list",
        "--prefix",
        "ticket-",
        "--after",
        "ticket-t-1",
        "--limit",
        "1",
    ])
    .await
    .expect(0)
    .json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["stream_id"], "ticket-t-2");
    let human = cli(&["streams", "list", "--prefix", "nothing-"]).await.expect(0);
    assert_eq!(human.stdout, "no streams\n");

    let shown = cli(&["--json", "streams", "show", "ticket-t-1"])
        .await
        .expect(0)
        .json();
    assert_eq!(shown["version"], 2);
    let events = shown["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["event_type"], "ticket.opened");
    assert_eq!(events[0]["correlation_id"], "corr-1");
    assert_eq!(events[0]["metadata"]["user"], "ops");
    assert_eq!(events[0]["payload"]["title"], "printer jam");
    assert_eq!(events[1]["event_type"], "ticket.closed");
    assert_eq!(events[1]["event_version"], 2);
    assert_eq!(events[1]["stream_version"], 2);
    let first = cli(&["--json", "streams", "show", "ticket-t-1", "--limit", "1"])
        .await
        .expect(0)
        .json();
    assert_eq!(first["events"].as_array().unwrap().len(), 1);
    assert_eq!(first["next_version"], 2);
    assert!(shown["next_version"].is_null(), "{shown}");
    let second = cli(&["streams", "show", "ticket-t-1", "--from", "2"])
        .await
        .expect(0)
        .stdout;
    assert!(
        second.contains("ticket.closed") && !second.contains("ticket.opened"),
        "{second}"
    );
    let human = cli(&["streams", "show", "ticket-t-1"]).await.expect(0).stdout;
    assert!(
        human.starts_with("stream ticket-t-1 at version 2\nPOSITION"),
        "{human}"
    );
    assert!(
        human.contains("ticket.closed") && human.contains("corr-1/-"),
        "{human}"
    );
    cli(&["streams", "show", "ticket-nope"]).await.expect(3);
    cli(&["streams", "show", "bad\u{202e}id"]).await.expect(2);

    let event_id = events[1]["event_id"].as_str().unwrap().to_owned();
    let event = cli(&["--json", "events", "show", &event_id])
        .await
        .expect(0)
        .json();
    assert_eq!(event["payload"]["reason"], "fixed");
    assert_eq!(event["stream_id"], "ticket-t-1");
    let human = cli(&["events", "show", &event_id]).await.expect(0).stdout;
    assert!(human.contains("event_type:     ticket.closed"), "{human}");
    assert!(human.contains("\"reason\": \"fixed\""), "{human}");
    let missing = cli(&["events", "show", "0190a5b0-0000-7000-8000-000000000000"])
        .await
        .expect(3);
    assert!(missing.stderr.contains("no event with id"), "{}", missing.stderr);
    let malformed = cli(&["events", "show", "not-a-uuid"]).await.expect(2);
    assert!(
        malformed.stderr.contains("is not an event id"),
        "{}",
        malformed.stderr
    );

    let head = cli(&["--json", "head"]).await.expect(0).json();
    assert_eq!(head["head"], 4);
    let tail = cli(&["--json", "events", "tail", "--limit", "2"])
        .await
        .expect(0)
        .json();
    let positions: Vec<u64> = tail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [3, 4]);
    assert_eq!(tail["next_position"], 5);
    let from = cli(&["--json", "events", "tail", "--from", "2", "--limit", "1"])
        .await
        .expect(0)
        .json();
    assert_eq!(from["events"][0]["position"], 2);
    assert_eq!(from["next_position"], 3);

    // Projections: one healthy and live, one that gives up on the poison ticket.
    let projections = Projections::new(store.clone())
        .with::<TicketSummary>()
        .with::<StrictIndex>()
        // Long enough that a slow machine does not let it lapse while the tool looks at it.
        .lease_ttl(Duration::from_secs(3))
        .retry(RetryPolicy {
            max_attempts: 2,
            backoff: Backoff::exponential(Duration::from_millis(1), Duration::from_millis(5)),
        });
    let running = projections.start();
    eventually("the projections to settle", async || {
        let status = running.status();
        status[0].reached(4) && status[1].state == eventcore::runner::RunnerState::Failed
    })
    .await;
    let status = cli(&["--json", "projections", "status"]).await.expect(0).json();
    let rows = status.as_array().unwrap();
    let summary = rows.iter().find(|r| r["name"] == "ticket_summary").unwrap();
    assert_eq!(summary["state"], "running");
    assert_eq!(summary["position"], 5);
    assert_eq!(summary["lag"], 0);
    assert!(
        summary["owner"].is_string() && summary["lease_expires"].is_string(),
        "{summary}"
    );
    let strict = rows.iter().find(|r| r["name"] == "strict_index").unwrap();
    assert_eq!(strict["state"], "failed");
    assert_eq!(strict["position"], 2);
    assert_eq!(strict["lag"], 3);
    let error = strict["error"].as_str().unwrap();
    assert!(
        error.contains("at position 2") && error.contains("cannot index a poisoned title"),
        "{error}"
    );
    let human = cli(&["projections", "status"]).await.expect(0).stdout;
    assert_eq!(
        headers(&human)[..5],
        ["PROJECTION", "VERSION", "NEXT", "HEAD", "LAG"],
        "{human}"
    );
    assert!(
        human.contains("strict_index") && human.contains("failed"),
        "{human}"
    );

    // A rebuild is refused while the projection runs, and forced it resets and replays.
    let refused = cli(&["projections", "rebuild", "ticket_summary"]).await.expect(1);
    assert!(refused.stderr.contains("is running"), "{}", refused.stderr);
    cli(&["projections", "rebuild", "no_such_projection"])
        .await
        .expect(3);
    let forced = cli(&["--json", "projections", "rebuild", "ticket_summary", "--force"])
        .await
        .expect(0)
        .json();
    assert_eq!(forced["reset"], true);
    assert_eq!(forced["was_at"], 5);
    eventually("the forced rebuild to replay", async || {
        projections
            .get::<TicketSummary>("t-1")
            .await
            .unwrap()
            .is_some_and(|doc| doc.closed)
            && running.status()[0].reached(4)
    })
    .await;
    running.stop().await.unwrap();
    let status = cli(&["--json", "projections", "status"]).await.expect(0).json();
    let summary = status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "ticket_summary")
        .unwrap()
        .clone();
    assert_eq!(summary["state"], "stopped");
    assert!(summary["owner"].is_null(), "{summary}");
    // Stopped, it resets without --force; its documents are gone until it runs again.
    cli(&["projections", "rebuild", "ticket_summary"]).await.expect(0);
    assert_eq!(projections.get::<TicketSummary>("t-1").await.unwrap(), None);

    // After the fix, the failed projection runs again: its recorded failure is cleared.
    STRICT.store(false, Ordering::SeqCst);
    let fixed = Projections::new(store.clone())
        .with::<StrictIndex>()
        .lease_ttl(Duration::from_secs(3))
        .start();
    fixed.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let status = cli(&["--json", "projections", "status"]).await.expect(0).json();
    let strict = status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "strict_index")
        .unwrap()
        .clone();
    assert_eq!(
        (strict["state"].as_str(), strict["lag"].as_u64()),
        (Some("running"), Some(0)),
        "{strict}"
    );
    assert!(strict["error"].is_null(), "{strict}");
    fixed.stop().await.unwrap();

    // An owner that died keeps its lease until it expires; then a reset needs no --force.
    store
        .acquire_lease("ghost_projection", "dead-process", Duration::from_millis(1))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let lag = cli(&["runners", "lag"]).await.expect(0).stdout;
    assert_eq!(
        headers(&lag),
        ["RUNNER", "KIND", "NEXT", "HEAD", "LAG", "STATE"],
        "{lag}"
    );
    let ghost = lag
        .lines()
        .find(|l| l.starts_with("ghost_projection"))
        .unwrap_or_default();
    assert!(ghost.ends_with("lease expired"), "{lag}");
    cli(&["projections", "rebuild", "ghost_projection"])
        .await
        .expect(0);

    // Dead letters: the poison ticket is dead-lettered, replayed after the fix, and gone.
    let notifier = Notifier::default();
    notifier.broken.store(true, Ordering::SeqCst);
    let bus = EventBus::local(store.clone());
    let consumer = bus
        .subscribe(notifier.clone())
        .max_attempts(2)
        .backoff(Backoff::exponential(
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
        .lease_ttl(Duration::from_millis(600))
        .start();
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let letters = cli(&["--json", "dead-letters", "list", "notifier"])
        .await
        .expect(0)
        .json();
    let letters = letters.as_array().unwrap().clone();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["attempts"], 2);
    assert_eq!(letters[0]["event"]["payload"]["title"], "poison");
    assert!(
        letters[0]["error"][0].as_str().unwrap().contains("opened"),
        "{:?}",
        letters[0]
    );
    let letter_id = letters[0]["id"].as_str().unwrap().to_owned();
    let human = cli(&["dead-letters", "show", "notifier", &letter_id])
        .await
        .expect(0)
        .stdout;
    assert!(
        human.contains("attempts:      2") && human.contains("mail server rejected `poison`"),
        "{human}"
    );
    cli(&["dead-letters", "list", "nobody"]).await.expect(3);
    cli(&["dead-letters", "show", "notifier", "nope"]).await.expect(2);
    cli(&[
        "dead-letters",
        "show",
        "notifier",
        "0190a5b0-0000-7000-8000-000000000000",
    ])
    .await
    .expect(3);
    cli(&["dead-letters", "replay", "notifier"]).await.expect(2);

    let lag = cli(&["--json", "runners", "lag"]).await.expect(0).json();
    let short = cli(&["--json", "lag"]).await.expect(0).json();
    assert_eq!(short.as_array().map(Vec::len), lag.as_array().map(Vec::len));
    let kinds: Vec<(String, String)> = lag
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("notifier".into(), "consumer".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&("ticket_summary".into(), "projection".into())),
        "{kinds:?}"
    );
    let status = cli(&["--json", "projections", "status"]).await.expect(0).json();
    assert!(
        status.as_array().unwrap().iter().all(|r| r["name"] != "notifier"),
        "{status}"
    );
    let refused = cli(&["projections", "rebuild", "notifier", "--force"])
        .await
        .expect(1);
    assert!(refused.stderr.contains("consumer"), "{}", refused.stderr);

    notifier.broken.store(false, Ordering::SeqCst);
    let replayed = cli(&["--json", "dead-letters", "replay", "notifier", &letter_id])
        .await
        .expect(0)
        .json();
    assert_eq!(replayed["replay_requested"], 1);
    let letters_api = bus.dead_letters("notifier");
    eventually("the replayed letter to be handled", async || {
        letters_api.count().await.unwrap() == 0
    })
    .await;
    assert!(notifier.sent.lock().unwrap().contains(&"poison".to_owned()));
    let empty = cli(&["dead-letters", "list", "notifier"]).await.expect(0).stdout;
    assert_eq!(empty, "consumer `notifier` has no dead letters\n");
    cli(&["dead-letters", "replay", "notifier", &letter_id])
        .await
        .expect(3);

    // Discard: a second poison ticket is dead-lettered, then dropped for good.
    notifier.broken.store(true, Ordering::SeqCst);
    tickets
        .execute(
            "t-4",
            Open {
                title: "poison".into(),
            },
        )
        .await
        .unwrap();
    consumer.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let letters = cli(&["--json", "dead-letters", "list", "notifier"])
        .await
        .expect(0)
        .json();
    let second = letters[0]["id"].as_str().unwrap().to_owned();
    assert_ne!(second, letter_id);
    cli(&["dead-letters", "discard", "notifier", &second])
        .await
        .expect(0);
    assert_eq!(letters_api.count().await.unwrap(), 0);
    cli(&["dead-letters", "discard", "notifier", &second])
        .await
        .expect(3);
    consumer.stop().await.unwrap();
}

/// The column headers of a table (its first line).
fn headers(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}
