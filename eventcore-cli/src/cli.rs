//! The command line: global options and every subcommand.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use eventcore::schema::compat::Compatibility;

/// Exit codes, shown under `--help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command ran and the answer is no: `schema check` found problems, `schema export --check`
     found a file not in canonical form, or a rebuild was refused
  2  usage: bad arguments, a bad store or bus URL, a malformed id or time
  3  not found: no such stream, event, runner, consumer, saga, instance or dead letter
  4  the store or bus failed: missing file, server unreachable, not an eventcore store, corrupt data";

/// Operate an eventcore store: streams and events, runners and their lag, dead letters, saga
/// instances and deadlines, projection rebuilds, registry export, checks and catalog.
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
    /// The broker bus, for `dead-letters` and `lag`.
    #[command(flatten)]
    pub bus: BusArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The broker bus a service runs (`EventBus::redis`, `EventBus::nats`): its options must match
/// the service's.
#[derive(Debug, Args)]
pub struct BusArgs {
    /// A Redis Streams bus (`redis://HOST:PORT`): `dead-letters` then act on its dead letters
    /// instead of the store's, and `lag` adds its consumer groups.
    #[arg(long, global = true, value_name = "URL", conflicts_with = "nats")]
    pub redis: Option<String>,
    /// A NATS JetStream bus (`nats://HOST:PORT`), as `--redis`. Connecting creates the bus's
    /// stream and letters bucket if they are missing, as a service does.
    #[arg(long, global = true, value_name = "URL")]
    pub nats: Option<String>,
    /// The bus's key prefix (`RedisOptions::prefix`, `NatsOptions::prefix`).
    #[arg(long, global = true, default_value = "eventcore", value_name = "PREFIX")]
    pub bus_prefix: String,
    /// The Redis bus's partitions (`RedisOptions::partitions`); NATS finds them itself.
    #[arg(long, global = true, default_value_t = 8, value_name = "N")]
    pub partitions: u32,
}

impl BusArgs {
    /// Whether a bus was given.
    pub fn given(&self) -> bool {
        self.redis.is_some() || self.nats.is_some()
    }
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
    ///
    /// The store's own (local bus) dead letters, or with `--redis URL` / `--nats URL` those the
    /// broker bus keeps (no store needed then).
    #[command(name = "dead-letters", alias = "dlq")]
    DeadLetters {
        /// What to do with dead letters.
        #[command(subcommand)]
        command: DeadLettersCommand,
    },
    /// Every runner against the head: the same as `runners lag`.
    Lag,
    /// Every runner (projections, consumers, relay, sagas) against the head.
    Runners {
        /// What to do with runners.
        #[command(subcommand)]
        command: RunnersCommand,
    },
    /// Saga instances: their state, status, deadlines, commands waiting and dead letters.
    Sagas {
        /// What to do with saga instances.
        #[command(subcommand)]
        command: SagasCommand,
    },
    /// The sagas' pending deadlines.
    Deadlines {
        /// What to do with deadlines.
        #[command(subcommand)]
        command: DeadlinesCommand,
    },
    /// Export (canonically), check and render registry files (`schemas/registry.json`); needs
    /// no store.
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
            } | Self::Sagas {
                command: SagasCommand::Replay { .. }
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
    /// NEXT is the position it reads next (everything below is handled), HEAD the last committed
    /// position, LAG the events between them.
    ///
    /// Consumers, sagas and relays are left out (see `runners lag` for all). A consumer is
    /// known once it has handled an event; until then it is listed as a projection.
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
    /// refuses (exit 1) event-bus consumers and sagas (a replay would repeat their side effects
    /// and commands), relays (it would republish everything) and table projections
    /// (`Projections::with_tables`: the tool cannot clear their tables, and a replay would apply
    /// events to them twice). Table projections and relays record their kind when they start;
    /// one that last ran under an eventcore older than this tool cannot be told from a document
    /// projection, so start it once with a current eventcore first.
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
    /// Every runner's checkpoint against the head: projections, consumers, relays, sagas; with
    /// `--redis URL` / `--nats URL`, also the broker's consumers (messages handed out and not
    /// acknowledged, and not yet handed out).
    ///
    /// NEXT is the position a runner reads next (everything below is handled), HEAD the last
    /// committed position, LAG the events between them.
    Lag,
}

/// `sagas ...`
#[derive(Debug, Subcommand)]
pub enum SagasCommand {
    /// Every instance of every saga that has run on the store: status (`active`, `ended`, or
    /// `failed` while one of its commands is dead-lettered or a deadline of it was set aside),
    /// stage (the state's own `stage`, `status` or `phase` field, such as `Compensating`, when
    /// it has one), steps run, pending deadlines, last step time, and the state as JSON.
    List {
        /// Only instances that have not ended.
        #[arg(long)]
        active: bool,
        /// Only this saga's instances (`checkout`).
        #[arg(long)]
        saga: Option<String>,
    },
    /// One instance: its keys, whole state, deadlines, commands waiting to be dispatched, and
    /// dead-lettered commands and deadlines with their errors.
    Show {
        /// The instance id (the key value of its start event, `o-1`).
        id: String,
        /// The saga, when several sagas have an instance with this id.
        #[arg(long)]
        saga: Option<String>,
    },
    /// Asks the running saga to dispatch dead-lettered commands again (shown by `sagas show`),
    /// with their original idempotency keys: a command that did apply appends nothing.
    Replay {
        /// The saga (`checkout`).
        saga: String,
        /// The dead letter's key (the command key `sagas show` lists).
        key: Option<String>,
        /// Every dead-lettered command of the saga.
        #[arg(long, conflicts_with = "key")]
        all: bool,
    },
}

/// `deadlines ...`
#[derive(Debug, Subcommand)]
pub enum DeadlinesCommand {
    /// Pending deadlines of every saga, earliest first, and whether each is overdue by this
    /// machine's clock (a saga running on another clock fires them by its own).
    List {
        /// Only deadlines due before this time (RFC 3339: `2026-12-01T12:00:00Z`).
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        due_before: Option<DateTime<Utc>>,
        /// Only this saga's deadlines.
        #[arg(long)]
        saga: Option<String>,
    },
}

/// An RFC 3339 time, in UTC.
fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: give an RFC 3339 time such as 2026-12-01T12:00:00Z"))
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
    /// Validate a registry file and write it in canonical form (schemas canonical, fields in
    /// order, formatted exactly as `Registry::to_json` writes it), to `--out` or standard output.
    ///
    /// The tool cannot export your project's registry itself: it has none of your events linked
    /// in. Export it from your code (`std::fs::write("schemas/registry.json",
    /// eventcore::schema::registry().to_json())`, or `eventcore_testing::assert_registry` in a
    /// test). This command reads such a file, refuses one that is not a registry (exit 2), and
    /// rewrites it canonically: after resolving a merge conflict by hand, or to check in CI that
    /// the committed file is canonical (`--check`: exit 1 when rewriting would change it).
    Export {
        /// The registry file.
        #[arg(long, default_value = "schemas/registry.json")]
        registry: PathBuf,
        /// Where to write it (default: standard output); may be the registry file itself.
        #[arg(long, conflicts_with = "check")]
        out: Option<PathBuf>,
        /// Write nothing; exit 1 when the file is not in canonical form.
        #[arg(long)]
        check: bool,
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
