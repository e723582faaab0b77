//! A fault-injecting TCP proxy for tests: put it between a client and a server, then drop
//! replies, close connections or go silent on command.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use eventcore_testing::proxy::FaultProxy;
//!
//! let proxy = FaultProxy::start("127.0.0.1:5432").await?;
//! // Connect the client to `proxy.addr()` instead of the server.
//! proxy.drop_next_reply(); // the next server-to-client chunk is lost and both sockets close
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Bytes read per chunk.
const CHUNK: usize = 64 * 1024;

/// A TCP proxy on `127.0.0.1` that forwards to a target and injects faults on command.
///
/// Faults act on *chunks*: what one `read` on a socket returned. A server's reply to a request
/// may span several chunks; dropping one closes both sockets, so the client never sees the rest.
/// Dropping the proxy stops it and closes every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

/// What the proxy has seen and done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyCounters {
    /// Client connections accepted.
    pub connections: u64,
    /// Server-to-client chunks dropped (each closed its connection).
    pub dropped_replies: u64,
    /// Bytes forwarded from clients to the server.
    pub bytes_to_server: u64,
    /// Bytes forwarded from the server to clients.
    pub bytes_to_client: u64,
}

#[derive(Debug)]
struct Shared {
    target: String,
    drop_next: AtomicBool,
    /// Drop the reply on the connection whose client next sends a chunk containing this.
    drop_reply_to: Mutex<Option<Vec<u8>>>,
    blackhole: AtomicBool,
    close: watch::Sender<u64>,
    connections: AtomicU64,
    dropped_replies: AtomicU64,
    bytes_to_server: AtomicU64,
    bytes_to_client: AtomicU64,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards each connection to `target` (`host:port`).
    pub async fn start(target: impl Into<String>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: target.into(),
            drop_next: AtomicBool::new(false),
            drop_reply_to: Mutex::new(None),
            blackhole: AtomicBool::new(false),
            close: watch::Sender::new(0),
            connections: AtomicU64::new(0),
            dropped_replies: AtomicU64::new(0),
            bytes_to_server: AtomicU64::new(0),
            bytes_to_client: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept(listener, Arc::clone(&shared)));
        Ok(Self { addr, shared, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drops the next server-to-client chunk, on any connection, and closes both its sockets.
    pub fn drop_next_reply(&self) {
        self.shared.drop_next.store(true, Ordering::SeqCst);
    }

    /// Once a client sends a chunk containing `needle`, drops the next server-to-client chunk
    /// of that connection and closes both its sockets (once; a later call re-arms it).
    ///
    /// A needle split across two chunks is not seen.
    pub fn drop_reply_to(&self, needle: impl Into<Vec<u8>>) {
        *lock(&self.shared.drop_reply_to) = Some(needle.into());
    }

    /// Whether a fault armed by [`drop_next_reply`](Self::drop_next_reply) or
    /// [`drop_reply_to`](Self::drop_reply_to) is still waiting for its chunk.
    pub fn is_armed(&self) -> bool {
        self.shared.drop_next.load(Ordering::SeqCst) || lock(&self.shared.drop_reply_to).is_some()
    }

    /// Closes every open connection (new ones are still accepted).
    pub fn close_all(&self) {
        self.shared.close.send_modify(|generation| *generation += 1);
    }

    /// While `on`, forwards nothing in either direction and keeps the sockets open: a silent
    /// network. Data read meanwhile is discarded.
    pub fn blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }

    /// The counters so far.
    pub fn counters(&self) -> ProxyCounters {
        let s = &self.shared;
        ProxyCounters {
            connections: s.connections.load(Ordering::SeqCst),
            dropped_replies: s.dropped_replies.load(Ordering::SeqCst),
            bytes_to_server: s.bytes_to_server.load(Ordering::SeqCst),
            bytes_to_client: s.bytes_to_client.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept task owns the connection tasks: aborting it aborts them.
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                shared.connections.fetch_add(1, Ordering::SeqCst);
                connections.spawn(forward(client, Arc::clone(&shared)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one connection until either side closes or a fault closes it.
async fn forward(client: TcpStream, shared: Arc<Shared>) {
    let Ok(server) = TcpStream::connect(shared.target.as_str()).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut close = shared.close.subscribe();
    close.borrow_and_update();
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut up = vec![0u8; CHUNK];
    let mut down = vec![0u8; CHUNK];
    let mut drop_reply = false;
    loop {
        tokio::select! {
            read = client_read.read(&mut up) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                if shared.blackhole.load(Ordering::SeqCst) {
                    continue;
                }
                let chunk = &up[..n];
                {
                    let mut needle = lock(&shared.drop_reply_to);
                    if needle.as_deref().is_some_and(|needle| contains(chunk, needle)) {
                        *needle = None;
                        drop_reply = true;
                    }
                }
                if server_write.write_all(chunk).await.is_err() {
                    return;
                }
                shared.bytes_to_server.fetch_add(n as u64, Ordering::SeqCst);
            }
            read = server_read.read(&mut down) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                if shared.blackhole.load(Ordering::SeqCst) {
                    continue;
                }
                if drop_reply || shared.drop_next.swap(false, Ordering::SeqCst) {
                    shared.dropped_replies.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client_write.write_all(&down[..n]).await.is_err() {
                    return;
                }
                shared.bytes_to_client.fetch_add(n as u64, Ordering::SeqCst);
            }
            _ = close.changed() => return,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}
