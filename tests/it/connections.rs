//! Connections are what a client can hold without sending anything, so no client may hold them
//! all: they are capped (`server.max_connections`, and per client address
//! `server.max_connections_per_client`), with a clean 503 beyond the cap while the open ones
//! keep working; a connection that holds its place for nothing is closed (silent after
//! `server.first_byte_timeout`, an unfinished head after `server.header_read_timeout`, idle
//! HTTP/2 after `server.idle_timeout`, an unread download after `server.send_timeout`, the
//! admin listener's too); and downloads abandoned by the thousand leave nothing behind
//! (requests in flight, descriptors, memory).
//!
//! Limits on the upload path (slots, pace, request time): `upload.rs`.

use std::time::{Duration, Instant};

use image_gateway::object_name::{ImageFormat, ObjectName};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::*;

/// Beyond `server.max_connections` a connection gets a 503 with a JSON detail and is closed;
/// the open ones keep working and a freed slot is usable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_refused_cleanly() {
    let fx = Fixture::with(Backend::Fs, |c| c.server.max_connections = 4).await;
    let server = TestServer::start(&fx).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let mut buf = vec![0; 1024];
        let n = within("livez", s.read(&mut buf)).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let refused = raw_request(server.addr, "GET", "/livez", &[]).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert!(refused.detail().contains("connection limit"), "{}", refused.detail());
    assert_eq!(refused.code(), "connection_limit");
    // The held connections still work.
    held[0]
        .write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 1024];
    let n = within("held livez", held[0].read(&mut buf)).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    drop(held.pop());
    within("a slot frees", async {
        while raw_request(server.addr, "GET", "/livez", &[]).await.status != 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let text = metrics_text(&server).await;
    assert!(sample(&text, "http_connections_rejected_total", &[]).unwrap() >= 1.0);
}

/// One peer address may hold `server.max_connections_per_client` connections; another address
/// (127.0.0.2, loopback too) is not affected.
#[tokio::test]
async fn connections_are_capped_per_client_address() {
    let fx = Fixture::with(crate::support::Backend::Fs, |c| c.server.max_connections_per_client = 3).await;
    let server = TestServer::start(&fx).await;
    let connect_from = |ip: &str| {
        let (ip, addr) = (ip.parse::<std::net::IpAddr>().unwrap(), server.addr);
        async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind((ip, 0).into()).unwrap();
            socket.connect(addr).await.unwrap()
        }
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from("127.0.0.1").await;
        // A request head in progress: the connection is open and counted.
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /livez HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect_from("127.0.0.1").await;
    let mut answer = Vec::new();
    within(
        "the fourth connection is refused",
        tokio::io::AsyncReadExt::read_to_end(&mut fourth, &mut answer),
    )
    .await
    .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let mut other = connect_from("127.0.0.2").await;
    tokio::io::AsyncWriteExt::write_all(
        &mut other,
        b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    within(
        "another address is served",
        tokio::io::AsyncReadExt::read_to_end(&mut other, &mut answer),
    )
    .await
    .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(held);
}

/// Connections that send nothing are closed after `server.first_byte_timeout`, so 20 silent
/// sockets hold a 20-connection server only that long: while they are open another client is
/// refused (503, the connection cap), once the timeout has closed them it is served.
/// Before: they stayed open 70 s+ and everyone else got 503 for minutes.
#[tokio::test]
async fn silent_connections_are_closed_at_their_timeout_and_others_served_then() {
    const FIRST_BYTE: Duration = Duration::from_secs(2);
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.server.max_connections = 20;
        c.server.first_byte_timeout = image_gateway::config::units::HumanDuration(FIRST_BYTE);
    })
    .await;
    let server = TestServer::start(&fx).await;
    let opened = std::time::Instant::now();
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    // Accepted after the 20 (the listen queue is first come, first served), so over the cap.
    let meanwhile = raw_request(server.addr, "GET", "/livez", &[]).await.status;
    let asked_within = opened.elapsed();
    assert!(
        meanwhile == 503 || asked_within >= FIRST_BYTE,
        "while the silent sockets were open ({asked_within:?} after): {meanwhile}"
    );
    for mut socket in silent {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        let read = within("the silent socket is closed", socket.read(&mut byte)).await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // Closed by the timeout, counted from its accept, which came after `opened`.
        assert!(opened.elapsed() >= FIRST_BYTE, "closed after {:?}", opened.elapsed());
    }
    until_live(server.addr, "a client is served once the silent sockets are closed").await;
    eprintln!("served {:?} after 20 silent connections", opened.elapsed());
}

#[tokio::test]
async fn header_read_timeout_closes_slow_clients() {
    let fx = Fixture::with(Backend::Fs, |c| {
        c.server.header_read_timeout = image_gateway::config::units::HumanDuration(Duration::from_millis(300))
    })
    .await;
    let server = TestServer::start(&fx).await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // A well-behaved client is still served meanwhile.
    let ok = within("livez", client().get(server.url("/livez")).send())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the server closed the connection of a client that never finished its headers"
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "the incomplete request was not served"
    );
}

/// Connections held for nothing are closed: an HTTP/2 connection that answers every PING but
/// sends no request (after `server.idle_timeout`, with a GOAWAY), a download whose client reads
/// nothing (after `server.send_timeout`), and silent sockets on the admin listener (after
/// `server.first_byte_timeout`). Before: each held its place, and `max_connections` filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_held_for_nothing_are_closed() {
    use image_gateway::config::units::HumanDuration;
    let fx = Fixture::with(crate::support::Backend::Fs, |c| {
        c.server.idle_timeout = HumanDuration(Duration::from_secs(1));
        // Long enough that a loaded machine still sees the stalled download hold its place.
        c.server.send_timeout = HumanDuration(Duration::from_secs(5));
        c.server.first_byte_timeout = HumanDuration(Duration::from_secs(1));
        c.server.max_connections = 1;
    })
    .await;
    let name = fx
        .put(
            image_gateway::object_name::ImageFormat::Png,
            crate::support::pattern(32 << 20),
        )
        .await;
    let server = TestServer::start(&fx).await;

    // An HTTP/2 connection that keeps answering (and sending) PINGs, and nothing else.
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (send, mut connection) = h2::client::handshake(tcp).await.unwrap();
    let mut pings = connection.ping_pong().unwrap();
    let driver = tokio::spawn(connection);
    let pinger = tokio::spawn(async move {
        while pings.ping(h2::Ping::opaque()).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let ended = within("the pinging HTTP/2 connection is closed", driver).await;
    assert!(ended.is_ok(), "{ended:?}");
    pinger.abort();
    drop(send);
    until_live(server.addr, "the HTTP/2 connection's place comes back").await;

    // A download whose client never reads: 32 MiB cannot all sit in socket buffers.
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let get = format!("GET /v1/image/download/{name} HTTP/1.1\r\nHost: x\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut stalled, get.as_bytes())
        .await
        .unwrap();
    // Its place is taken once the server has accepted it (a fixed sleep failed on a loaded
    // machine): polled, within the send timeout that will free it.
    within("the stalled download holds the only place", async {
        while raw_request(server.addr, "GET", "/livez", &[]).await.status != 503 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    until_live(server.addr, "the stalled download's place comes back").await;
    drop(stalled);

    // 300 silent sockets on the admin listener: over the cap they are closed at once, the
    // rest after the first-byte timeout; probes are answered meanwhile and after.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(tokio::net::TcpStream::connect(server.admin).await.unwrap());
    }
    for mut socket in silent {
        let mut byte = [0u8; 1];
        let read = within(
            "a silent admin socket is closed",
            tokio::io::AsyncReadExt::read(&mut socket, &mut byte),
        )
        .await;
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    assert_eq!(raw_request(server.admin, "GET", "/livez", &[]).await.status, 200);
}

/// Waits (bounded by `within`) until `/livez` on `addr` answers 200: `what` names the place
/// being waited for.
async fn until_live(addr: std::net::SocketAddr, what: &str) {
    within(what, async {
        while raw_request(addr, "GET", "/livez", &[]).await.status != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// 1000 downloads abandoned midway: nothing stays in flight, and the server process's open
/// descriptors and memory return to where they were (the real binary, so the figures are its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_aborted_downloads_leave_nothing_behind() {
    let server =
        crate::cli::Spawned::start(&[("IMAGE_GATEWAY_LOG__LEVEL", "warn")], std::process::Stdio::inherit()).await;
    let (pid, addr, admin) = (server.child.id(), server.addr, server.admin);
    let name = ObjectName::generate(ImageFormat::Png);
    // Larger than loopback's socket buffers can absorb, so no download completes unread.
    std::fs::write(server.data().join(name.as_str()), pattern(32 << 20)).unwrap();
    let request = format!("GET /v1/image/download/{name} HTTP/1.1\r\nHost: x\r\n\r\n");
    let settled = || async {
        within("settled", async {
            loop {
                let text = raw_request(admin, "GET", "/metrics", &[]).await;
                let text = String::from_utf8_lossy(&text.body).into_owned();
                if sample(&text, "http_requests_in_flight", &[]) == Some(0.0)
                    && sample(&text, "http_connections_open", &[]) == Some(0.0)
                {
                    return text;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    };
    // Warm up the allocator and the runtime's threads before the baseline.
    for _ in 0..100 {
        abandon(addr, &request).await;
    }
    settled().await;
    let (fds, rss) = (open_fds(pid), crate::support::memory_bytes("VmRSS", pid));
    let started = Instant::now();
    for _ in 0..1000 {
        abandon(addr, &request).await;
    }
    let took = started.elapsed();
    let text = settled().await;
    let aborted = sample(&text, "http_responses_aborted_total", &[("reason", "client_gone")]).unwrap_or(0.0);
    let (fds_after, rss_after) = (open_fds(pid), crate::support::memory_bytes("VmRSS", pid));
    drop(server);
    eprintln!(
        "1000 aborted downloads in {took:?}: fds {fds} -> {fds_after}, RSS {:.1} -> {:.1} MiB, {aborted} counted aborted",
        rss as f64 / 1048576.0,
        rss_after as f64 / 1048576.0
    );
    assert!(
        aborted >= 1100.0,
        "every abandoned download is counted as aborted: {aborted}"
    );
    assert!(fds_after <= fds + 2, "descriptors leaked: {fds} -> {fds_after}");
    assert!(rss_after < rss + (16 << 20), "memory grew: {rss} -> {rss_after}");
}

/// Reads the head and some of the body, then drops the connection.
async fn abandon(addr: std::net::SocketAddr, request: &str) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0; 32 << 10];
    let mut got = 0;
    while got < 100 << 10 {
        match within("partial body", stream.read(&mut buf)).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
}
