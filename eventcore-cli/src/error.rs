//! What can go wrong, and the exit code each tells a script.

use eventcore::runner::RunnerError;
use eventcore::StoreError;

/// An error of a command; [`exit_code`](Self::exit_code) classifies it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No `--store` and no `EVENTCORE_STORE`.
    #[error("no store given: pass --store URL or set EVENTCORE_STORE (sqlite:PATH or postgres://...)")]
    NoStore,
    /// The arguments are wrong.
    #[error("{0}")]
    Usage(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The command ran and says no (a check failed, a rebuild was refused).
    #[error("{0}")]
    Refused(String),
    /// The store cannot be opened.
    #[error("cannot open the store at {url}")]
    Open {
        /// The URL as given (without a password).
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The broker bus cannot be reached.
    #[error("cannot connect to the bus at {url}")]
    Bus {
        /// The URL as given (without a password).
        url: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// A runner-level call (store or broker bus) failed.
    #[error("{}", if matches!(.0, RunnerError::Broker(_)) { "the bus failed" } else { "the store failed" })]
    Runner(#[from] RunnerError),
    /// Standard output was closed (a pipe to `head`): the command ends quietly.
    #[error("standard output was closed")]
    OutputClosed,
    /// A file could not be read or written.
    #[error("{what}")]
    Io {
        /// Which file, doing what.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl CliError {
    /// The process exit code (see `eventcore --help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::OutputClosed => 0,
            Self::Refused(_) => 1,
            Self::NoStore | Self::Usage(_) => 2,
            Self::NotFound(_) => 3,
            Self::Open { .. } | Self::Bus { .. } | Self::Store(_) | Self::Runner(_) | Self::Io { .. } => 4,
        }
    }
}

/// An error and its causes on one line: `outer: cause: root cause`.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    eventcore::runner::error_chain(error)
}
