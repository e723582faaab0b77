//! One `LISTEN` connection per store, shared by all its subscriptions.
//!
//! A task owned by the store connects with the store's connector (the same TLS setup as its
//! pool), `LISTEN`s on the schema's channel and counts notifications in a `watch` channel that
//! every subscription of the store follows. When the connection fails, subscriptions fall back
//! to polling while the task reconnects with backoff; after each (re)connection the count moves
//! too, so subscriptions look for what committed while nobody listened. The task ends once the
//! store and its subscriptions are gone.
//!
//! The task reports its state ([`ListenerHealth`], from
//! [`PostgresStore::listener_health`](super::PostgresStore::listener_health)) and logs every
//! change: a warning when the connection is lost or cannot be opened, and when it is back.
//! Reconnection never stops; the backoff grows to [`MAX_BACKOFF`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::watch;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Socket};

use super::schema;

/// A connection's client and its messages (driving the stream drives the connection).
pub(super) type Connection = (
    tokio_postgres::Client,
    BoxStream<'static, Result<AsyncMessage, tokio_postgres::Error>>,
);

/// Opens a `LISTEN` connection with the store's connector.
pub(super) type Connect =
    Arc<dyn Fn() -> BoxFuture<'static, Result<Connection, tokio_postgres::Error>> + Send + Sync>;

/// First wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnections.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The `application_name` of the `LISTEN` connection, unless its configuration sets one.
pub const APPLICATION_NAME: &str = "eventcore listener";

/// The state of a store's shared `LISTEN` connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerState {
    /// The store has no `LISTEN` connector (built from a pool without a listen config): its
    /// subscriptions poll.
    Disabled,
    /// No subscription has started the listener yet.
    NotStarted,
    /// The first connection is being opened.
    Connecting,
    /// Listening: notifications wake the subscriptions.
    Connected,
    /// The connection was lost or could not be opened; subscriptions poll while the store
    /// reconnects with backoff.
    Reconnecting,
}

/// The health of a store's shared `LISTEN` connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerHealth {
    /// The current state.
    pub state: ListenerState,
    /// When the current state began.
    pub since: SystemTime,
    /// The last error of the connection, kept after it is back (`None`: none yet).
    pub last_error: Option<String>,
    /// How many times the connection was lost or could not be opened.
    pub failures: u64,
}

impl ListenerHealth {
    /// The health of a store with or without a `LISTEN` connector.
    pub(super) fn initial(listens: bool) -> Self {
        Self {
            state: if listens {
                ListenerState::NotStarted
            } else {
                ListenerState::Disabled
            },
            since: SystemTime::now(),
            last_error: None,
            failures: 0,
        }
    }
}

/// Where the listener reports its health.
pub(super) type Health = Arc<watch::Sender<ListenerHealth>>;

/// Moves the health to `state` (a no-op when it is there already).
fn report(health: &Health, state: ListenerState, error: Option<String>) {
    health.send_if_modified(|current| {
        let failed = error.is_some();
        if let Some(error) = error {
            current.last_error = Some(error);
            current.failures += 1;
        }
        if current.state == state {
            return failed;
        }
        current.state = state;
        current.since = SystemTime::now();
        true
    });
}

/// A connector for `config` with `tls`, type-erased so the store needs no TLS parameter.
pub(super) fn connector<T>(config: tokio_postgres::Config, tls: T) -> Connect
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + Sync + 'static,
    T::TlsConnect: Send + Sync,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let mut config = config;
    if config.get_application_name().is_none() {
        // So that operators (and tests) can tell the listener among the store's connections.
        config.application_name(APPLICATION_NAME);
    }
    Arc::new(move || {
        let (config, tls) = (config.clone(), tls.clone());
        Box::pin(async move {
            let (client, mut connection) = config.connect(tls).await?;
            let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed();
            Ok((client, messages))
        })
    })
}

/// Starts the shared listener; the count is 0 until the first attempt to listen has ended
/// (either way), then moves on every notification and every reconnection.
pub(super) fn spawn(connect: Connect, channel: String, health: Health) -> watch::Receiver<u64> {
    let (wake, receiver) = watch::channel(0u64);
    report(&health, ListenerState::Connecting, None);
    tokio::spawn(async move {
        let listen = format!("LISTEN {}", schema::quote_ident(&channel));
        let mut backoff = FIRST_BACKOFF;
        loop {
            let outcome = tokio::select! {
                outcome = listen_until_lost(&connect, &listen, &wake, &health) => outcome,
                () = wake.closed() => return,
            };
            let error = match outcome {
                Ended::Listened(error) => {
                    backoff = FIRST_BACKOFF;
                    tracing::warn!(error = ?error, channel, retry_in = ?backoff, "eventcore lost its LISTEN connection; subscriptions poll until it is back");
                    error
                }
                Ended::NeverListened(error) => {
                    tracing::warn!(error = ?error, channel, retry_in = ?backoff, "eventcore cannot LISTEN; subscriptions poll");
                    error
                }
            };
            let error = error.map_or_else(|| "the connection closed".to_owned(), |e| e.to_string());
            report(&health, ListenerState::Reconnecting, Some(error));
            // Wake the subscriptions: they poll now, and look again once listening resumes.
            wake.send_modify(|count| *count += 1);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = wake.closed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
    receiver
}

/// How a listening attempt ended.
enum Ended {
    /// The connection listened, then failed (`None`: it closed without an error).
    Listened(Option<tokio_postgres::Error>),
    /// The connection or the `LISTEN` failed (`None`: it closed without an error).
    NeverListened(Option<tokio_postgres::Error>),
}

async fn listen_until_lost(
    connect: &Connect,
    listen: &str,
    wake: &watch::Sender<u64>,
    health: &Health,
) -> Ended {
    let (client, mut messages) = match connect().await {
        Ok(connection) => connection,
        Err(error) => return Ended::NeverListened(Some(error)),
    };
    // The connection must be driven while the command runs.
    let command = client.batch_execute(listen);
    tokio::pin!(command);
    loop {
        tokio::select! {
            done = &mut command => match done {
                Ok(()) => break,
                Err(error) => return Ended::NeverListened(Some(error)),
            },
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Ended::NeverListened(Some(error)),
                None => return Ended::NeverListened(None),
            },
        }
    }
    if health.borrow().failures > 0 {
        tracing::warn!(
            listen,
            "eventcore listens again; subscriptions are woken by notifications"
        );
    }
    report(health, ListenerState::Connected, None);
    wake.send_modify(|count| *count += 1);
    loop {
        match messages.next().await {
            Some(Ok(AsyncMessage::Notification(_))) => wake.send_modify(|count| *count += 1),
            Some(Ok(_)) => {}
            Some(Err(error)) => return Ended::Listened(Some(error)),
            None => return Ended::Listened(None),
        }
    }
}
