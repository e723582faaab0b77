//! The database schema: embedded, versioned migrations and the SQL the store runs.

use deadpool_postgres::Pool;

use crate::store::StoreError;

use super::backend;

/// Longest schema name accepted, so that derived names (the notification channel) stay under
/// PostgreSQL's 63-byte identifier limit.
pub(super) const MAX_SCHEMA_NAME_BYTES: usize = 48;

/// A schema name is a plain lower-case identifier: `[a-z_][a-z0-9_]*`, at most 48 bytes.
pub(super) fn validate_schema_name(name: &str) -> Result<(), super::PostgresConfigError> {
    let mut chars = name.chars();
    let valid_start = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let valid_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid_start && valid_rest && name.len() <= MAX_SCHEMA_NAME_BYTES && !name.starts_with("pg_") {
        Ok(())
    } else {
        Err(super::PostgresConfigError::InvalidSchemaName(name.to_owned()))
    }
}

/// The migrations, in order; each runs once, in the migration transaction. `{schema}` is the
/// quoted schema name, `{schema_name}` the plain one (a validated identifier, safe in a literal).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, MIGRATION_1),
    (2, super::snapshots::MIGRATION_2),
    (3, MIGRATION_3),
    (4, MIGRATION_4),
    (5, MIGRATION_5),
    (6, crate::runner::postgres::MIGRATION_RUNNERS),
    (7, crate::outbox::POSTGRES_MIGRATION),
    (8, MIGRATION_8),
];

/// The schema version this build of eventcore migrates to and runs against.
pub const SCHEMA_VERSION: i32 = 8;

const MIGRATION_1: &str = r#"
CREATE TABLE {schema}.streams (
    stream_id text PRIMARY KEY,
    version bigint NOT NULL CHECK (version >= 0)
);

-- CACHE 1 (the default) hands positions out in time order across sessions, which the
-- subscription's gap rule relies on.
CREATE SEQUENCE {schema}.global_position_seq AS bigint CACHE 1;

CREATE TABLE {schema}.events (
    global_position bigint PRIMARY KEY,
    stream_id text NOT NULL,
    stream_version bigint NOT NULL,
    event_id uuid NOT NULL,
    event_type text NOT NULL,
    event_version integer NOT NULL,
    aggregate_type text NOT NULL,
    aggregate_id text NOT NULL,
    occurred_at timestamptz NOT NULL,
    correlation_id text,
    causation_id text,
    metadata jsonb NOT NULL,
    payload bytea NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

-- Appends a batch in one call. Expected-version kinds: 0 any, 1 no stream, 2 exact, 3 stream
-- exists. Returns conflict = true (and writes nothing) when the stream is not as expected.
CREATE FUNCTION {schema}.append_events(
    p_stream_id text,
    p_expected_kind smallint,
    p_expected bigint,
    p_event_ids uuid[],
    p_event_types text[],
    p_event_versions integer[],
    p_aggregate_types text[],
    p_aggregate_ids text[],
    p_occurred_at timestamptz[],
    p_correlation_ids text[],
    p_causation_ids text[],
    p_metadata jsonb[],
    p_payloads bytea[]
) RETURNS TABLE (conflict boolean, actual bigint, positions bigint[])
LANGUAGE plpgsql AS $fn$
DECLARE
    v_count bigint := coalesce(cardinality(p_event_ids), 0);
    v_actual bigint;
    v_positions bigint[];
BEGIN
    -- Take the transaction id before drawing any position: a subscriber treats a missing
    -- position as settled once every transaction older than an id it took after seeing the
    -- gap has ended.
    PERFORM pg_current_xact_id();

    IF v_count = 0 THEN
        SELECT s.version INTO v_actual FROM {schema}.streams s WHERE s.stream_id = p_stream_id;
        v_actual := coalesce(v_actual, 0);
        IF NOT (CASE p_expected_kind WHEN 0 THEN true WHEN 1 THEN v_actual = 0
                WHEN 2 THEN v_actual = p_expected WHEN 3 THEN v_actual > 0 ELSE false END) THEN
            RETURN QUERY SELECT true, v_actual, NULL::bigint[];
        ELSE
            RETURN QUERY SELECT false, v_actual, ARRAY[]::bigint[];
        END IF;
        RETURN;
    END IF;

    -- The stream's row is its lock: the conditional UPDATE waits for a writer of the same
    -- stream, re-checks the expectation on the version it committed, and claims the versions.
    -- Writers of other streams never meet.
    LOOP
        UPDATE {schema}.streams s SET version = s.version + v_count
            WHERE s.stream_id = p_stream_id
              AND (p_expected_kind = 0
                   OR (p_expected_kind = 1 AND s.version = 0)
                   OR (p_expected_kind = 2 AND s.version = p_expected)
                   OR (p_expected_kind = 3 AND s.version > 0))
            RETURNING s.version - v_count INTO v_actual;
        EXIT WHEN FOUND;
        SELECT s.version INTO v_actual FROM {schema}.streams s WHERE s.stream_id = p_stream_id;
        IF FOUND THEN
            IF NOT (CASE p_expected_kind WHEN 0 THEN true WHEN 1 THEN v_actual = 0
                    WHEN 2 THEN v_actual = p_expected WHEN 3 THEN v_actual > 0 ELSE false END) THEN
                RETURN QUERY SELECT true, v_actual, NULL::bigint[];
                RETURN;
            END IF;
            -- It changed to an acceptable version meanwhile: try again.
        ELSE
            IF NOT (p_expected_kind IN (0, 1) OR (p_expected_kind = 2 AND p_expected = 0)) THEN
                RETURN QUERY SELECT true, 0::bigint, NULL::bigint[];
                RETURN;
            END IF;
            INSERT INTO {schema}.streams (stream_id, version) VALUES (p_stream_id, v_count)
                ON CONFLICT (stream_id) DO NOTHING;
            IF FOUND THEN
                v_actual := 0;
                EXIT;
            END IF;
            -- Created by a concurrent writer: try again.
        END IF;
    END LOOP;

    WITH inserted AS (
        INSERT INTO {schema}.events (
            global_position, stream_id, stream_version, event_id, event_type, event_version,
            aggregate_type, aggregate_id, occurred_at, correlation_id, causation_id, metadata, payload)
        SELECT nextval('{schema}.global_position_seq'), p_stream_id, v_actual + e.ord, e.event_id,
               e.event_type, e.event_version, e.aggregate_type, e.aggregate_id, e.occurred_at,
               e.correlation_id, e.causation_id, e.metadata, e.payload
        FROM unnest(p_event_ids, p_event_types, p_event_versions, p_aggregate_types, p_aggregate_ids,
                    p_occurred_at, p_correlation_ids, p_causation_ids, p_metadata, p_payloads)
             WITH ORDINALITY AS e(event_id, event_type, event_version, aggregate_type, aggregate_id,
                                  occurred_at, correlation_id, causation_id, metadata, payload, ord)
        ORDER BY e.ord
        RETURNING global_position, stream_version
    )
    SELECT array_agg(i.global_position ORDER BY i.stream_version) INTO v_positions FROM inserted i;

    RETURN QUERY SELECT false, v_actual, v_positions;
END
$fn$;
"#;

/// Migration 3: appends lock their stream with a transaction-scoped advisory lock and insert
/// with one statement (see `Statements::append`), so the stream table and the function of
/// migration 1 go: the events table alone holds every stream's version.
const MIGRATION_3: &str = "
DROP FUNCTION {schema}.append_events(text, smallint, bigint, uuid[], text[], integer[], text[], text[],
    timestamptz[], text[], text[], jsonb[], bytea[]);
DROP TABLE {schema}.streams;
";

/// Migration 4: an index for reads filtered by event type, and checks that refuse what
/// `validate_append` refuses. The checks are `NOT VALID` (existing rows are not scanned under
/// the migration's lock; a bad one reads back as corrupt), but bind every new row.
const MIGRATION_4: &str = "
CREATE INDEX events_type_position_idx ON {schema}.events (event_type, global_position);
ALTER TABLE {schema}.events
    ADD CONSTRAINT events_event_version_check CHECK (event_version >= 1) NOT VALID,
    ADD CONSTRAINT events_event_type_check CHECK (event_type <> '') NOT VALID;
";

/// Migration 5: writers announce themselves (a shared advisory lock, see the `store::postgres`
/// module doc) and readers wait only for announced writers. It changes no table; the version
/// keeps an older eventcore, whose writers do not announce, from writing to the schema.
const MIGRATION_5: &str = "
COMMENT ON TABLE {schema}.events IS
    'eventcore: writers take the schema''s shared writer lock before drawing a position';
";

/// Migration 8: the append as a function, one for a single event (scalars) and one for a batch
/// (arrays), so that an append is one autocommitted statement: one request and one reply,
/// where `BEGIN`, the lock statement, the insert and `COMMIT` took four replies (and the client
/// as many wake-ups). Each function announces the writer and takes the stream's lock (the keys
/// of `Statements::lock_stream`) in a statement of its own, then inserts in the next one; the
/// functions are `VOLATILE`, so under READ COMMITTED the insert takes a fresh snapshot, which
/// sees every version committed before the lock was granted. The insert (a statement of the store
/// before this migration) reads the stream's version, checks the expectation (kinds: 0 any, 1 no stream,
/// 2 exact, 3 stream exists) and that no event id is stored, takes the transaction id
/// (`pg_current_xact_id()`, ordered by the `CASE`) and only then draws positions, after the
/// sort (so they grow with the stream version). It returns no row, and draws no position, when
/// a check fails.
const MIGRATION_8: &str = r#"
CREATE FUNCTION {schema}.append_one(
    p_stream_id text, p_expected_kind smallint, p_expected bigint, p_event_id uuid,
    p_event_type text, p_event_version integer, p_aggregate_type text, p_aggregate_id text,
    p_occurred_at timestamptz, p_correlation_id text, p_causation_id text, p_metadata jsonb,
    p_payload bytea
) RETURNS TABLE (global_position bigint, stream_version bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('eventcore.writers'), hashtext('{schema_name}')),
            pg_advisory_xact_lock(hashtextextended(p_stream_id, hashtext('{schema_name}')));
    RETURN QUERY
    INSERT INTO {schema}.events AS ev (global_position, stream_id, stream_version, event_id,
        event_type, event_version, aggregate_type, aggregate_id, occurred_at, correlation_id,
        causation_id, metadata, payload)
    SELECT CASE WHEN pg_current_xact_id() IS NOT NULL
                THEN nextval('{schema}.global_position_seq') END,
           p_stream_id, cur.version + 1, p_event_id, p_event_type, p_event_version,
           p_aggregate_type, p_aggregate_id, p_occurred_at, p_correlation_id, p_causation_id,
           p_metadata, p_payload
    FROM (SELECT coalesce(max(s.stream_version), 0) AS version FROM {schema}.events s
          WHERE s.stream_id = p_stream_id) AS cur
    WHERE CASE p_expected_kind WHEN 0 THEN true WHEN 1 THEN cur.version = 0
          WHEN 2 THEN cur.version = p_expected ELSE cur.version > 0 END
      AND NOT EXISTS (SELECT 1 FROM {schema}.events s WHERE s.event_id = p_event_id)
    RETURNING ev.global_position, ev.stream_version;
END
$fn$;

CREATE FUNCTION {schema}.append_batch(
    p_stream_id text, p_expected_kind smallint, p_expected bigint, p_event_ids uuid[],
    p_event_types text[], p_event_versions integer[], p_aggregate_types text[],
    p_aggregate_ids text[], p_occurred_at timestamptz[], p_correlation_ids text[],
    p_causation_ids text[], p_metadata jsonb[], p_payloads bytea[]
) RETURNS TABLE (global_position bigint, stream_version bigint)
LANGUAGE plpgsql VOLATILE AS $fn$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtext('eventcore.writers'), hashtext('{schema_name}')),
            pg_advisory_xact_lock(hashtextextended(p_stream_id, hashtext('{schema_name}')));
    RETURN QUERY
    INSERT INTO {schema}.events AS ev (global_position, stream_id, stream_version, event_id,
        event_type, event_version, aggregate_type, aggregate_id, occurred_at, correlation_id,
        causation_id, metadata, payload)
    SELECT CASE WHEN pg_current_xact_id() IS NOT NULL
                THEN nextval('{schema}.global_position_seq') END,
           p_stream_id, cur.version + e.ord, e.event_id, e.event_type, e.event_version,
           e.aggregate_type, e.aggregate_id, e.occurred_at, e.correlation_id, e.causation_id,
           e.metadata, e.payload
    FROM (SELECT coalesce(max(s.stream_version), 0) AS version FROM {schema}.events s
          WHERE s.stream_id = p_stream_id) AS cur,
         unnest(p_event_ids, p_event_types, p_event_versions, p_aggregate_types, p_aggregate_ids,
                p_occurred_at, p_correlation_ids, p_causation_ids, p_metadata, p_payloads)
         WITH ORDINALITY AS e(event_id, event_type, event_version, aggregate_type, aggregate_id,
                              occurred_at, correlation_id, causation_id, metadata, payload, ord)
    WHERE CASE p_expected_kind WHEN 0 THEN true WHEN 1 THEN cur.version = 0
          WHEN 2 THEN cur.version = p_expected ELSE cur.version > 0 END
      AND NOT EXISTS (SELECT 1 FROM {schema}.events s WHERE s.event_id = ANY(p_event_ids))
    ORDER BY e.ord
    RETURNING ev.global_position, ev.stream_version;
END
$fn$;
"#;

/// The schema was migrated by another version of eventcore, or not at all.
#[derive(Debug, thiserror::Error)]
pub enum SchemaVersionError {
    /// A newer eventcore migrated the schema: this one must not write to it.
    #[error(
        "schema `{schema}` is at version {found}, migrated by a newer eventcore; this eventcore \
         supports schema version {supported} at most: upgrade eventcore"
    )]
    Newer {
        /// The schema.
        schema: String,
        /// Its version.
        found: i32,
        /// The newest version this eventcore knows.
        supported: i32,
    },
    /// Migrations are off and the schema is not at the version this eventcore needs.
    #[error(
        "schema `{schema}` is at version {found} but this eventcore needs version {supported}, and \
         migrations are off (`migrate(false)`): run the migrations with a role that may"
    )]
    NotMigrated {
        /// The schema.
        schema: String,
        /// Its version (0 when it has no migration table).
        found: i32,
        /// The version this eventcore needs.
        supported: i32,
    },
}

/// Quotes an identifier (the name is validated already; quoting keeps it exact).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The LISTEN/NOTIFY channel of a schema.
pub(super) fn channel(schema: &str) -> String {
    format!("{schema}_eventcore_events")
}

/// The highest migration recorded in `schema` (0 when it has none).
async fn applied_version(client: &tokio_postgres::Client, schema: &str) -> Result<i32, StoreError> {
    let row = client
        .query_one(
            "SELECT to_regclass(format('%I.schema_migrations', $1::text)) IS NOT NULL",
            &[&schema],
        )
        .await
        .map_err(backend)?;
    if !row.try_get::<_, bool>(0).map_err(backend)? {
        return Ok(0);
    }
    let sql = format!(
        "SELECT coalesce(max(version), 0) FROM {}.schema_migrations",
        quote_ident(schema)
    );
    let row = client.query_one(&sql, &[]).await.map_err(backend)?;
    row.try_get(0).map_err(backend)
}

/// Checks, without changing anything, that `schema` is at [`SCHEMA_VERSION`].
pub(super) async fn check_version(pool: &Pool, schema: &str) -> Result<(), StoreError> {
    let client = pool.get().await.map_err(backend)?;
    let found = applied_version(&client, schema).await?;
    let error = if found > SCHEMA_VERSION {
        SchemaVersionError::Newer {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }
    } else if found < SCHEMA_VERSION {
        SchemaVersionError::NotMigrated {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }
    } else {
        return Ok(());
    };
    Err(StoreError::backend(error))
}

/// Applies every migration not yet applied, each once, under a transaction-scoped advisory
/// lock so that concurrent starters queue instead of racing; refuses a schema that a newer
/// eventcore migrated.
pub(super) async fn migrate(pool: &Pool, schema: &str) -> Result<(), StoreError> {
    let quoted = quote_ident(schema);
    let mut client = pool.get().await.map_err(backend)?;
    let tx = client.transaction().await.map_err(backend)?;
    // Migrations wait for each other and may build an index: no timeout of the role applies.
    tx.batch_execute("SET LOCAL lock_timeout = 0; SET LOCAL statement_timeout = 0")
        .await
        .map_err(backend)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('eventcore.migrate.' || $1::text, 0))",
        &[&schema],
    )
    .await
    .map_err(backend)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {quoted};
         CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(backend)?;
    let applied: Vec<i32> = tx
        .query(&format!("SELECT version FROM {quoted}.schema_migrations"), &[])
        .await
        .map_err(backend)?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    if let Some(&found) = applied.iter().max().filter(|v| **v > SCHEMA_VERSION) {
        return Err(StoreError::backend(SchemaVersionError::Newer {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        }));
    }
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        let sql = sql.replace("{schema}", &quoted).replace("{schema_name}", schema);
        tx.batch_execute(&sql).await.map_err(backend)?;
        tx.execute(
            &format!("INSERT INTO {quoted}.schema_migrations (version) VALUES ($1)"),
            &[version],
        )
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// The statements of the store, with the schema name filled in.
#[derive(Debug)]
pub(super) struct Statements {
    /// Appends a batch passed as arrays (`AppendBatch::params`): the function `append_batch`
    /// of migration 8, which locks the stream, checks and inserts. `$1` is the stream, `$2`/`$3`
    /// the expectation, `$4`..`$13` the columns of the events; it returns the positions and
    /// versions stored, no row when a check fails.
    pub(super) append: String,
    /// As `append`, for one event passed as scalars, without the arrays' cost (`append_one`).
    pub(super) append_one: String,
    /// Announces the writer (the schema's shared writer lock) and takes the stream's lock.
    pub(super) lock_stream: String,
    pub(super) read_stream: String,
    /// As `read_stream`, of the `STREAM_RECORD_COLUMNS` only (rehydration).
    pub(super) read_stream_records: String,
    pub(super) read_all: String,
    pub(super) stream_version: String,
    pub(super) subscription_page: String,
    pub(super) notify: String,
    /// Where each of the event ids `$1` is stored.
    pub(super) stored_at: String,
    pub(super) find_event: String,
    /// Streams by id from a prefix `$1` after an id `$2` (or NULL), at most `$3`, with versions.
    pub(super) list_streams: String,
    pub(super) head: String,
    /// One snapshot's head and the positions from `$1` (at most `$2`): see `batch`.
    pub(super) batch_positions: String,
    /// Events in `[$1, $2)`, at most `$3`, bounded by bytes.
    pub(super) batch_events: String,
    /// As `batch_events`, of the types `$4` only.
    pub(super) batch_events_typed: String,
    /// As `batch_events_typed`, along the primary key: the type test is an expression no index
    /// serves, so the scan stops at the limit instead of sorting the window (for dense filters).
    pub(super) batch_events_typed_dense: String,
    /// The lowest position from `$1`, and which of the transaction ids `$2` still run: the
    /// cheap probe of an open gap.
    pub(super) gap_probe: String,
    /// The transaction ids of the writers announced now (see `horizon`), and whether the server
    /// is a standby (whose `pg_locks` shows no writer of the primary).
    pub(super) announced_writers: String,
}

/// The first key of the writer lock (the second is the schema's): the two-key form, so it
/// never meets a stream lock (one 64-bit key).
const WRITER_LOCK_CLASS: &str = "hashtext('eventcore.writers')";

/// Running transactions hold an exclusive lock on their own transaction id until they end.
const OWN_XID_LOCK: &str = "locktype = 'transactionid' AND mode = 'ExclusiveLock' AND granted";

/// Wraps a query of `EVENT_COLUMNS` ordered by `order` so that it returns rows only until their
/// payloads reach [`MAX_PAGE_BYTES`](crate::store::MAX_PAGE_BYTES) (at least one), as
/// `bound_page_bytes` does; `length(payload)` reads no payload.
///
/// A running sum over the page (a window) costs more than reading the rows, so it runs only when
/// the page's payloads reach the bound; otherwise a plain sum lets every row through.
fn bounded_by_bytes(inner_from_where: &str, order: &str, limit: &str) -> String {
    format!(
        "SELECT {EVENT_COLUMNS} {inner_from_where} AND {order} < \
         (SELECT CASE WHEN coalesce(sum(length(payload)), 0) < {max} THEN {none} \
          ELSE coalesce((SELECT min({order}) FROM (SELECT {order}, sum(length(payload)) OVER \
            (ORDER BY {order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS bytes_before \
            {inner_from_where} ORDER BY {order} LIMIT {limit}) AS w WHERE bytes_before >= {max}), {none}) \
          END FROM (SELECT payload {inner_from_where} ORDER BY {order} LIMIT {limit}) AS p) \
         ORDER BY {order} LIMIT {limit}",
        max = crate::store::MAX_PAGE_BYTES,
        none = i64::MAX,
    )
}

/// The columns rehydration reads ([`StreamRecord`](crate::store::StreamRecord)).
pub(super) const STREAM_RECORD_COLUMNS: &str = "stream_version, event_id, event_type, event_version, payload";

pub(super) const EVENT_COLUMNS: &str = "global_position, stream_id, stream_version, event_id, event_type, \
    event_version, aggregate_type, aggregate_id, occurred_at, correlation_id, causation_id, metadata, payload";

impl Statements {
    pub(super) fn new(schema: &str) -> Self {
        let s = quote_ident(schema);
        // Advisory locks are per database: the schema name seeds the key, so stores in other
        // schemas do not share locks. A hash collision only makes two streams queue. The append
        // functions of migration 8 take the same two locks.
        let lock_key = format!("hashtextextended($1, hashtext('{schema}'))");
        let writer_lock = format!("{WRITER_LOCK_CLASS}, hashtext('{schema}')");
        Self {
            append: format!(
                "SELECT global_position, stream_version FROM {s}.append_batch($1::text, \
                 $2::smallint, $3::bigint, $4::uuid[], $5::text[], $6::integer[], $7::text[], \
                 $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::jsonb[], $13::bytea[])"
            ),
            append_one: format!(
                "SELECT global_position, stream_version FROM {s}.append_one($1::text, \
                 $2::smallint, $3::bigint, $4::uuid, $5::text, $6::integer, $7::text, $8::text, \
                 $9::timestamptz, $10::text, $11::text, $12::jsonb, $13::bytea)"
            ),
            lock_stream: format!(
                "SELECT pg_advisory_xact_lock_shared({writer_lock}), pg_advisory_xact_lock({lock_key})"
            ),
            read_stream: bounded_by_bytes(
                &format!("FROM {s}.events WHERE stream_id = $1 AND stream_version >= $2"),
                "stream_version",
                "$3",
            ),
            // Not bounded by bytes: its rows are lent one at a time as they arrive, never
            // collected, so a page holds no more than one row in memory.
            read_stream_records: format!(
                "SELECT {STREAM_RECORD_COLUMNS} FROM {s}.events WHERE stream_id = $1 \
                 AND stream_version >= $2 ORDER BY stream_version LIMIT $3"
            ),
            read_all: bounded_by_bytes(
                &format!("FROM {s}.events WHERE global_position >= $1"),
                "global_position",
                "$2",
            ),
            stream_version: format!(
                "SELECT coalesce(max(stream_version), 0) FROM {s}.events WHERE stream_id = $1"
            ),
            // One statement, so the rows and the snapshot bounds come from the same snapshot.
            subscription_page: format!(
                "SELECT {EVENT_COLUMNS}, \
                 (SELECT max(global_position) FROM {s}.events) AS snapshot_head \
                 FROM {s}.events WHERE global_position >= $1 ORDER BY global_position LIMIT $2"
            ),
            notify: super::notifier::notify_sql(&channel(schema)),
            stored_at: format!(
                "SELECT event_id, stream_id, stream_version, global_position FROM {s}.events \
                 WHERE event_id = ANY($1::uuid[])"
            ),
            find_event: format!("SELECT {EVENT_COLUMNS} FROM {s}.events WHERE event_id = $1"),
            list_streams: format!(
                "SELECT stream_id, max(stream_version) FROM {s}.events \
                 WHERE starts_with(stream_id, $1::text) AND ($2::text IS NULL OR stream_id > $2::text) \
                 GROUP BY stream_id ORDER BY stream_id LIMIT $3"
            ),
            head: format!("SELECT coalesce(max(global_position), 0) FROM {s}.events"),
            batch_positions: format!(
                "SELECT (SELECT coalesce(max(global_position), 0) FROM {s}.events) AS head, \
                 ARRAY(SELECT global_position FROM {s}.events WHERE global_position >= $1 \
                       ORDER BY global_position LIMIT $2) AS positions"
            ),
            batch_events: bounded_by_bytes(
                &format!("FROM {s}.events WHERE global_position >= $1 AND global_position < $2"),
                "global_position",
                "$3",
            ),
            batch_events_typed: bounded_by_bytes(
                &format!(
                    "FROM {s}.events WHERE global_position >= $1 AND global_position < $2 \
                     AND event_type = ANY($4::text[])"
                ),
                "global_position",
                "$3",
            ),
            batch_events_typed_dense: bounded_by_bytes(
                &format!(
                    "FROM {s}.events WHERE global_position >= $1 AND global_position < $2 \
                     AND (event_type || '') = ANY($4::text[])"
                ),
                "global_position",
                "$3",
            ),
            gap_probe: format!(
                "SELECT (SELECT global_position FROM {s}.events \
                 WHERE global_position >= $1 ORDER BY global_position LIMIT 1), \
                 ARRAY(SELECT transactionid::text FROM pg_catalog.pg_locks \
                       WHERE {OWN_XID_LOCK} AND transactionid::text = ANY($2::text[]))"
            ),
            // One call of `pg_locks` (a CTE used twice is computed once): the holders of the
            // writer lock in this database, by their own transaction id.
            announced_writers: format!(
                "WITH locks AS MATERIALIZED (SELECT locktype, database, classid, objid, objsubid, \
                 virtualtransaction, transactionid, mode, granted FROM pg_catalog.pg_locks) \
                 SELECT ARRAY(SELECT DISTINCT x.transactionid::text \
                   FROM locks a JOIN locks x USING (virtualtransaction) \
                   WHERE a.locktype = 'advisory' AND a.granted AND a.objsubid = 2 \
                     AND a.classid = ({WRITER_LOCK_CLASS})::oid AND a.objid = hashtext('{schema}')::oid \
                     AND a.database = (SELECT oid FROM pg_catalog.pg_database \
                                       WHERE datname = current_database()) \
                     AND x.locktype = 'transactionid' AND x.mode = 'ExclusiveLock' AND x.granted), \
                 pg_catalog.pg_is_in_recovery()"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["eventcore", "_x", "test_1a2b", "a"] {
            assert!(validate_schema_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Events",
            "a-b",
            "a\"b",
            "a;drop",
            "pg_catalog",
            &"x".repeat(49),
        ] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }
}
