//! Opening a store from its URL, without ever creating one, and a broker bus.

use std::path::{Path, PathBuf};

use eventcore::bus::{EventBus, NatsOptions, RedisOptions};
#[cfg(feature = "postgres")]
use eventcore::PostgresStore;
use eventcore::SqliteStore;

use crate::cli::BusArgs;
use crate::error::CliError;
use crate::runners::Bus;

/// A store URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH` or `sqlite://PATH`.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`, as given.
    Postgres(String),
}

impl StoreUrl {
    /// Parses `url`; a usage error names the accepted forms.
    pub fn parse(url: &str) -> Result<Self, CliError> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(CliError::Usage(format!(
                    "the store URL `{url}` names no file: use sqlite:PATH"
                )));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(CliError::Usage(format!(
            "unsupported store URL `{}`: use sqlite:PATH or postgres://USER@HOST:PORT/DB",
            redact(url)
        )))
    }
}

/// `url` with any password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// An opened store.
#[derive(Debug)]
pub enum Store {
    /// An SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL schema.
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

impl Store {
    /// Opens the store at `url`: read-only unless `writes`. Never creates a store: a missing
    /// SQLite file, a file that is not an eventcore store and a missing PostgreSQL schema are
    /// errors.
    pub async fn open(url: &str, schema: Option<&str>, writes: bool) -> Result<Self, CliError> {
        match StoreUrl::parse(url)? {
            StoreUrl::Sqlite(path) => {
                if schema.is_some() {
                    return Err(CliError::Usage(
                        "--schema applies to PostgreSQL stores only".into(),
                    ));
                }
                open_sqlite(&path, writes).await.map(Self::Sqlite)
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(url) => open_postgres(&url, schema).await.map(Self::Postgres),
            #[cfg(not(feature = "postgres"))]
            StoreUrl::Postgres(_) => Err(CliError::Usage(
                "this eventcore tool was built without PostgreSQL support (feature `postgres`)".into(),
            )),
        }
    }
}

async fn open_sqlite(path: &Path, writes: bool) -> Result<SqliteStore, CliError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync + 'static>| CliError::Open {
        url: format!("sqlite:{}", path.display()),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(failed(format!("{} is not a file", path.display()).into())),
        Err(error) => return Err(failed(Box::new(error))),
    }
    // Read-only first: it checks the file is an eventcore store without migrating anything.
    let store = SqliteStore::open_read_only(path)
        .await
        .map_err(|e| failed(explain_sqlite(path, e)))?;
    if !writes {
        return Ok(store);
    }
    drop(store);
    SqliteStore::open(path).await.map_err(|e| failed(Box::new(e)))
}

/// A database that is no (current) eventcore store, said for an operator; other errors as
/// they are.
fn explain_sqlite(
    path: &Path,
    error: eventcore::StoreError,
) -> Box<dyn std::error::Error + Send + Sync + 'static> {
    use eventcore::rusqlite::{Connection, OpenFlags};

    // The read-only open refuses a file whose schema is not the current one.
    if !matches!(error, eventcore::StoreError::ReadOnly(_)) {
        return Box::new(error);
    }
    let version = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|conn| conn.pragma_query_value(None, "user_version", |row| row.get::<_, i64>(0)));
    match version {
        Ok(0) => format!(
            "{} is an SQLite database but holds no eventcore store (the tool never creates one)",
            path.display()
        )
        .into(),
        Ok(version) => format!(
            "the store in {} is at schema version {version}, older than this tool reads: start a service \
             with this eventcore version (it migrates the file) or use a matching tool",
            path.display()
        )
        .into(),
        Err(_) => Box::new(error),
    }
}

/// Connects to the broker bus of `--redis` / `--nats`, if one was given.
pub async fn open_bus(args: &BusArgs) -> Result<Option<Bus>, CliError> {
    let failed = |url: &str, error: eventcore::bus::BusError| CliError::Bus {
        url: redact(url),
        source: Box::new(error),
    };
    if let Some(url) = &args.redis {
        if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://"))
        {
            return Err(CliError::Usage(format!(
                "unsupported Redis URL `{}`: use redis://HOST:PORT",
                redact(url)
            )));
        }
        let options = RedisOptions::default()
            .prefix(args.bus_prefix.clone())
            .partitions(args.partitions);
        let bus = tokio::time::timeout(BUS_TIMEOUT, EventBus::redis_with(url, options))
            .await
            .map_err(|_| timed_out(url))?
            .map_err(|e| failed(url, e))?;
        return Ok(Some(bus));
    }
    if let Some(url) = &args.nats {
        if !(url.starts_with("nats://") || url.starts_with("tls://")) {
            return Err(CliError::Usage(format!(
                "unsupported NATS URL `{}`: use nats://HOST:PORT",
                redact(url)
            )));
        }
        let options = NatsOptions::default().prefix(args.bus_prefix.clone());
        let bus = tokio::time::timeout(BUS_TIMEOUT, EventBus::nats_with(url, options))
            .await
            .map_err(|_| timed_out(url))?
            .map_err(|e| failed(url, e))?;
        return Ok(Some(bus));
    }
    Ok(None)
}

/// How long connecting to a bus may take.
const BUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn timed_out(url: &str) -> CliError {
    CliError::Bus {
        url: redact(url),
        source: format!("no answer within {} s", BUS_TIMEOUT.as_secs()).into(),
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str, schema: Option<&str>) -> Result<PostgresStore, CliError> {
    use std::time::Duration;

    let mut builder = PostgresStore::builder()
        .migrate(false)
        .pool_size(2)
        .connect_timeout(Duration::from_secs(5))
        .pool_wait_timeout(Duration::from_secs(5));
    if let Some(schema) = schema {
        builder = builder.schema(schema);
    }
    builder.connect(url).await.map_err(|error| CliError::Open {
        url: redact(url),
        source: explain_schema(error),
    })
}

/// A missing or unmigrated schema, said for an operator; other errors as they are.
#[cfg(feature = "postgres")]
fn explain_schema(error: eventcore::StoreError) -> Box<dyn std::error::Error + Send + Sync + 'static> {
    use eventcore::store::postgres::SchemaVersionError;

    let found = match &error {
        eventcore::StoreError::Backend(inner) => match inner.downcast_ref::<SchemaVersionError>() {
            Some(SchemaVersionError::NotMigrated { schema, found, .. }) => Some((schema.clone(), *found)),
            _ => None,
        },
        _ => None,
    };
    match found {
        Some((schema, 0)) => format!(
            "schema `{schema}` holds no eventcore store (the tool never creates one): check --schema or EVENTCORE_SCHEMA"
        )
        .into(),
        Some((schema, version)) => format!(
            "the store in schema `{schema}` is at schema version {version}, older than this tool reads:              start a service with this eventcore version (it migrates the schema) or use a matching tool"
        )
        .into(),
        None => Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_a_path() {
        assert_eq!(
            StoreUrl::parse("sqlite:data/app.db").unwrap(),
            StoreUrl::Sqlite("data/app.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite://data/app.db").unwrap(),
            StoreUrl::Sqlite("data/app.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:///var/app.db").unwrap(),
            StoreUrl::Sqlite("/var/app.db".into())
        );
        assert!(matches!(StoreUrl::parse("sqlite:"), Err(CliError::Usage(_))));
        assert!(matches!(StoreUrl::parse("sqlite://"), Err(CliError::Usage(_))));
    }

    #[test]
    fn postgres_urls_are_kept_and_others_refused() {
        let url = "postgres://postgres@127.0.0.1:5432/test";
        assert_eq!(StoreUrl::parse(url).unwrap(), StoreUrl::Postgres(url.into()));
        assert!(matches!(
            StoreUrl::parse("postgresql://h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
        for bad in ["", "app.db", "mysql://h/db", "http://x"] {
            assert!(matches!(StoreUrl::parse(bad), Err(CliError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact("mysql://u:p@h"), "mysql://u:***@h");
    }
}
