//! `FaultProxy` on its own, in front of an echo server.

use std::time::Duration;

use eventcore_testing::proxy::FaultProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server on a free port; returns its address.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Sends `message` and reads the reply: `Some(bytes)`, or `None` when the connection closed.
async fn round_trip(socket: &mut TcpStream, message: &[u8]) -> Option<Vec<u8>> {
    socket.write_all(message).await.ok()?;
    let mut reply = vec![0u8; message.len()];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_exact(&mut reply))
        .await
        .expect("a reply or a closed connection within 10 s");
    read.ok().map(|_| reply)
}

#[tokio::test]
async fn forwards_both_ways_and_counts() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut socket, b"hello").await.as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(
        round_trip(&mut socket, b"again").await.as_deref(),
        Some(&b"again"[..])
    );
    let counters = proxy.counters();
    assert_eq!(counters.connections, 1);
    assert_eq!((counters.bytes_to_server, counters.bytes_to_client), (10, 10));
    assert_eq!(counters.dropped_replies, 0);
}

#[tokio::test]
async fn a_dropped_reply_closes_the_connection_and_later_ones_work() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut socket, b"one").await.is_some());
    proxy.drop_next_reply();
    assert!(proxy.is_armed());
    assert_eq!(
        round_trip(&mut socket, b"two").await,
        None,
        "the reply is lost, the socket closed"
    );
    assert!(!proxy.is_armed());
    assert_eq!(proxy.counters().dropped_replies, 1);

    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut fresh, b"three").await.as_deref(),
        Some(&b"three"[..])
    );
    assert_eq!(proxy.counters().connections, 2);
}

#[tokio::test]
async fn a_needle_drops_only_the_reply_of_the_connection_that_sent_it() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut bystander = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut writer = TcpStream::connect(proxy.addr()).await.unwrap();
    proxy.drop_reply_to("COMMIT");
    assert!(round_trip(&mut bystander, b"SELECT 1").await.is_some());
    assert!(round_trip(&mut writer, b"BEGIN").await.is_some());
    assert!(proxy.is_armed());
    assert_eq!(round_trip(&mut writer, b"INSERT; COMMIT").await, None);
    assert!(round_trip(&mut bystander, b"SELECT 2").await.is_some());
    assert_eq!(proxy.counters().dropped_replies, 1);
}

#[tokio::test]
async fn close_all_closes_open_connections() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut a = TcpStream::connect(proxy.addr()).await.unwrap();
    let mut b = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut a, b"a").await.is_some());
    assert!(round_trip(&mut b, b"b").await.is_some());
    proxy.close_all();
    assert_eq!(round_trip(&mut a, b"a").await, None);
    assert_eq!(round_trip(&mut b, b"b").await, None);
    let mut c = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut c, b"c").await.is_some());
}

#[tokio::test]
async fn a_blackhole_is_silent_until_lifted() {
    let proxy = FaultProxy::start(echo_server().await).await.unwrap();
    let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(round_trip(&mut socket, b"before").await.is_some());
    proxy.blackhole(true);
    socket.write_all(b"lost").await.unwrap();
    let mut buf = [0u8; 4];
    let silent = tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
    assert!(
        silent.is_err(),
        "nothing arrives and the socket stays open: {silent:?}"
    );
    proxy.blackhole(false);
    assert_eq!(
        round_trip(&mut socket, b"after").await.as_deref(),
        Some(&b"after"[..])
    );
    assert_eq!(
        proxy.counters().bytes_to_server,
        11,
        "what the blackhole swallowed is not counted"
    );
}
