//! The command line: global options and every subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use eventcore::schema::compat::Compatibility;

/// Exit codes, shown under `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command ran and the answer is no: `schema check` found problems, or a rebuild was refused
  2  usage: bad arguments, a bad store URL, a malformed id
  3  not found: no such stream, event, runner, consumer or dead letter
  4  the store failed: missing file, server unreachable, not an eventcore store, corrupt data";

/// Operate an eventcore store: streams and events, runners and their lag, dead letters,
/// projection rebuilds, registry checks.
#[derive(Debug, Parser)]
#[command(name = "eventcore", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// The store: `sqlite:PATH` (or `sqlite://PATH`) or `postgres://USER@HOST:PORT/DB`. The
    /// tool never creates a store: a missing SQLite file is an error.
    #[arg(long, global = true, env = "EVENTCORE_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// The PostgreSQL schema holding the store's tables (default `eventcore`).
    #[arg(long, global = true, env = "EVENTCORE_SCHEMA")]
    pub schema: Option<String>,
    /// Print JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and show streams.
    Streams {
        /// What to do with streams.
        #[command(subcommand)]
        command: StreamsCommand,
    },
    /// Show one event, or the tail of the log.
    Events {
        /// What to do with events.
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The highest global position committed so far.
    Head,
    /// Projection status and rebuilds.
    Projections {
        /// What to do with projections.
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
    /// Events a consumer gave up on: list, show, replay, discard.
    #[command(name = "dead-letters", alias = "dlq")]
    DeadLetters {
        /// What to do with dead letters.
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// Every runner against the head: the same as `runners lag`.
    Lag,
    /// Every runner (projections, consumers, relay) against the head.
    Runners {
        /// What to do with runners.
        #[command(subcommand)]
        command: RunnersCommand,
    },
    /// Check and render registry files (`schemas/registry.json`); needs no store.
    ///
    /// The registry lists the events linked into a binary, and this tool has none of your
    /// project's events linked in: export the registry from your project
    /// (`eventcore::schema::registry().to_json()`, or `eventcore_testing::assert_registry` in a
    /// test) and point these commands at the files.
    Schema {
        /// What to do with registry files.
        #[command(subcommand)]
        command: SchemaCommand,
    },
}

impl Command {
    /// Whether the command writes to the store (it is then opened read-write).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Self::Projections {
                command: ProjectionsCommand::Rebuild { .. }
            } | Self::DeadLetters {
                command: DeadLettersCommand::Replay { .. } | DeadLettersCommand::Discard { .. }
            }
        )
    }
}

/// `streams ...`
#[derive(Debug, Subcommand)]
pub enum StreamsCommand {
    /// Streams in id order, with their versions.
    List {
        /// Only streams whose id starts with this (`account-`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Only streams whose id sorts after this one (the last one of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many streams.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The events of one stream: position, version, type, event version, time and ids.
    Show {
        /// The stream id (`account-acc-1`).
        stream: String,
        /// From this stream version.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// `events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// One event by id, with its envelope, metadata and payload.
    Show {
        /// The event id (a UUID).
        event_id: String,
    },
    /// The last events of the whole log, or those from a position.
    Tail {
        /// From this global position (default: the last `--limit` events).
        #[arg(long)]
        from: Option<u64>,
        /// At most this many events (per read, with `--follow`).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Keep printing events as they commit, until interrupted; with `--json`, one event
        /// per line (JSON Lines).
        #[arg(long)]
        follow: bool,
    },
}

/// `projections ...`
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Every projection's checkpoint, the head, the lag, the lease (owner, expiry), state and
    /// last recorded error.
    ///
    /// The store does not record which kind of runner a checkpoint belongs to: runners that
    /// handled events as event-bus consumers are left out (see `runners lag` for all).
    Status,
    /// Reset a document projection so that its runner rebuilds it from the first event.
    ///
    /// A projection's handlers live in your code, so the tool cannot run them, and the runners
    /// take no rebuild requests from outside. Instead, in one transaction, this deletes the
    /// projection's documents and sets its checkpoint back to the start; the projection's
    /// runner (in your service) then replays every event into them. Readers see the documents
    /// emptied and refilling meanwhile; `Projections::rebuild` in code rebuilds in a shadow
    /// copy instead.
    ///
    /// It refuses while a live lease is held (the service is running the projection) unless
    /// `--force`: the running runner is then fenced out, takes its lease back and replays. It
    /// refuses event-bus consumers (a replay would repeat their side effects). Do not use it on
    /// table projections (`Projections::with_tables`): the tool cannot clear their own tables,
    /// and a replay would apply events to them twice.
    Rebuild {
        /// The projection's name (`account_summary`).
        name: String,
        /// Reset it even though a running service holds its lease.
        #[arg(long)]
        force: bool,
    },
}

/// `dead-letters ...`
#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// A consumer's dead letters, in log order.
    List {
        /// The consumer (`welcome`).
        consumer: String,
    },
    /// One dead letter: the event whole, attempts, failures and the error chain.
    Show {
        /// The consumer.
        consumer: String,
        /// The letter's id (the event id).
        id: String,
    },
    /// Hand letters back to the running consumer, which handles them again (same event id)
    /// and removes each once it succeeds; the consumer must be running to pick them up.
    Replay {
        /// The consumer.
        consumer: String,
        /// The letter's id (the event id).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every letter of the consumer.
        #[arg(long)]
        all: bool,
    },
    /// Drop a letter for good: its event is never handled by this consumer.
    Discard {
        /// The consumer.
        consumer: String,
        /// The letter's id (the event id).
        id: String,
    },
}

/// `runners ...`
#[derive(Debug, Subcommand)]
pub enum RunnersCommand {
    /// Every runner's checkpoint against the head: projections, consumers, the relay.
    Lag,
}

/// `schema ...`
#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// Compare a new registry export with the committed one (schema changes, removed
    /// versions, missing upcasters, compatibility); exit 1 with a report when they disagree.
    Check {
        /// The committed registry.
        #[arg(long, default_value = "schemas/registry.json")]
        committed: PathBuf,
        /// The registry exported from the current code.
        #[arg(long)]
        current: PathBuf,
        /// Compatibility mode: NONE, BACKWARD, FORWARD, FULL, or one of them with _TRANSITIVE.
        #[arg(long, default_value = "NONE")]
        compatibility: Compatibility,
    },
    /// Render a registry file as the event catalog: a Markdown page per aggregate and a
    /// Mermaid diagram (commands are not in registry files, so the diagram shows events).
    Catalog {
        /// The registry file.
        #[arg(long, default_value = "schemas/registry.json")]
        registry: PathBuf,
        /// The directory to write into.
        #[arg(long, default_value = "docs/catalog")]
        out: PathBuf,
    },
}
