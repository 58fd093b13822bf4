//! The pool against a real loopback upstream: what it hands out again, and what it closes.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
const KEEPS_ONE_SECOND: &[u8] =
    b"HTTP/1.1 200 OK\r\nkeep-alive: max=100, timeout=1\r\ncontent-length: 2\r\n\r\nok";

/// What the upstream does after each answer.
#[derive(Clone, Copy)]
enum After {
    Wait,
    /// Closes the connection a moment later (an upstream's own idle timeout).
    Close,
    /// Writes bytes no request asked for.
    Chatter,
    /// Says in each answer how long it keeps an idle connection (`Keep-Alive: timeout=1`).
    KeepsOneSecond,
}

/// A keep-alive upstream on 127.0.0.1: counts the connections it accepted and those that
/// ended (its side saw the close).
struct Upstream {
    port: u16,
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(after: After) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let ended = Arc::new(AtomicUsize::new(0));
        let (a, e) = (accepted.clone(), ended.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let e = e.clone();
                tokio::spawn(async move {
                    serve(conn, after).await;
                    e.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            port,
            accepted,
            ended,
        }
    }

    fn peer(&self, group: u64, idle: Duration) -> HttpPeer {
        let mut peer = HttpPeer::new(("127.0.0.1", self.port), false, String::new());
        peer.group_key = group;
        peer.options.idle_timeout = Some(idle);
        peer
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Answers each request head until the client closes (or `after` says otherwise).
async fn serve(mut conn: TcpStream, after: After) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            let mut answer = match after {
                After::KeepsOneSecond => KEEPS_ONE_SECOND.to_vec(),
                _ => ANSWER.to_vec(),
            };
            if let After::Chatter = after {
                answer.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
            if conn.write_all(&answer).await.is_err() {
                return;
            }
            if let After::Close = after {
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
        }
    }
}

/// One GET through `pool`, its answer read to the end; whether its connection was pooled.
async fn get(pool: &Pool, peer: &HttpPeer) -> (HttpSession, bool) {
    let (mut session, reused) = pool.session(peer).await.unwrap();
    let request = RequestHeader::build("GET", b"/", None).unwrap();
    session
        .write_request_header(Box::new(request))
        .await
        .unwrap();
    session.finish_request_body().await.unwrap();
    session.read_response_header().await.unwrap();
    assert_eq!(session.response_header().unwrap().status, 200);
    while session.read_response_body().await.unwrap().is_some() {}
    (session, reused)
}

async fn get_and_release(pool: &Pool, peer: &HttpPeer) -> bool {
    let (session, reused) = get(pool, peer).await;
    pool.release(session, peer).await;
    reused
}

fn pool(capacity: usize) -> Pool {
    Pool::new(ConnectorOptions::new(capacity))
}

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_released_connection_serves_the_next_request_to_its_peer_only() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(8);
    let (route_a, route_b) = (upstream.peer(1, MINUTE), upstream.peer(2, MINUTE));
    assert!(!get_and_release(&pool, &route_a).await);
    assert!(get_and_release(&pool, &route_a).await);
    assert_eq!(upstream.accepted(), 1);
    // Another group (route or client) never gets route A's connection.
    assert!(!get_and_release(&pool, &route_b).await);
    assert_eq!(upstream.accepted(), 2);
    assert!(get_and_release(&pool, &route_a).await);
    assert!(get_and_release(&pool, &route_b).await);
    assert_eq!(upstream.accepted(), 2);
    assert_eq!(pool.idle_count(), 2);
}

#[tokio::test]
async fn a_fresh_connection_passes_the_pool_by() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(8);
    let peer = upstream.peer(1, MINUTE);
    assert!(!get_and_release(&pool, &peer).await);
    let fresh = pool.fresh(&peer).await.unwrap();
    until(|| upstream.accepted() == 2).await;
    assert_eq!(pool.idle_count(), 1);
    drop(fresh);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_handed_out() {
    let upstream = Upstream::start(After::Close).await;
    let pool = pool(8);
    let peer = upstream.peer(1, MINUTE);
    assert!(!get_and_release(&pool, &peer).await);
    assert_eq!(pool.idle_count(), 1);
    until(|| upstream.ended.load(Ordering::SeqCst) == 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The closed one is passed over: the request goes on a new connection.
    assert!(!get_and_release(&pool, &peer).await);
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn an_idle_timeout_of_a_thousand_years_keeps_the_connection() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(8);
    let peer = upstream.peer(1, Duration::MAX);
    assert!(!get_and_release(&pool, &peer).await);
    assert!(get_and_release(&pool, &peer).await);
    assert_eq!(upstream.accepted(), 1);
}

#[tokio::test]
async fn an_expired_connection_is_not_handed_out() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(8);
    let peer = upstream.peer(1, Duration::from_millis(100));
    assert!(!get_and_release(&pool, &peer).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!get_and_release(&pool, &peer).await);
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn a_connection_is_kept_no_longer_than_the_upstream_says_it_keeps_it() {
    let upstream = Upstream::start(After::KeepsOneSecond).await;
    let pool = pool(8);
    let peer = upstream.peer(1, MINUTE);
    assert!(!get_and_release(&pool, &peer).await);
    assert!(get_and_release(&pool, &peer).await);
    // "timeout=1": kept for half of it, so that the next request does not race its close.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!get_and_release(&pool, &peer).await);
    assert_eq!(upstream.accepted(), 2);
}

#[test]
fn keep_alive_timeouts_are_read_with_a_margin() {
    let ms = |ms: u64| Some(Duration::from_millis(ms));
    let cases = [
        ("timeout=5, max=1000", ms(4000)),
        ("max=9,Timeout = 30", ms(29000)),
        ("timeout=1", ms(500)),
        ("timeout=0", ms(0)),
        ("timeout=4294967296", Some(Duration::from_secs(4294967295))),
        ("max=10", None),
        ("timeout=soon", None),
        ("timeout=-1", None),
        ("timeout=99999999999999999999", None),
    ];
    for (value, kept) in cases {
        let mut answer = ResponseHeader::build(200, None).unwrap();
        answer.insert_header("keep-alive", value).unwrap();
        assert_eq!(keeps(&answer), kept, "{value}");
    }
    // Several lines are one list; the shortest timeout counts.
    let mut answer = ResponseHeader::build(200, None).unwrap();
    answer.append_header("keep-alive", "max=5").unwrap();
    answer.append_header("keep-alive", "timeout=30").unwrap();
    answer
        .append_header("keep-alive", "timeout=3, timeout=60")
        .unwrap();
    assert_eq!(keeps(&answer), ms(2000));
    assert_eq!(keeps(&ResponseHeader::build(200, None).unwrap()), None);
}

#[tokio::test]
async fn an_idle_timeout_shortened_by_a_reload_applies_to_connections_already_kept() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(8);
    assert!(!get_and_release(&pool, &upstream.peer(1, MINUTE)).await);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let shortened = upstream.peer(1, Duration::from_millis(100));
    assert!(!get_and_release(&pool, &shortened).await);
    assert_eq!(upstream.accepted(), 2);
}

#[tokio::test]
async fn idle_connections_are_closed_once_expired_or_closed_by_the_upstream() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(8);
    assert!(!get_and_release(&pool, &upstream.peer(1, Duration::from_millis(300))).await);
    assert_eq!(pool.idle_count(), 1);
    // No request comes: the pool's own task closes it.
    until(|| upstream.ended.load(Ordering::SeqCst) == 1).await;
    assert_eq!(pool.idle_count(), 0);

    let closing = Upstream::start(After::Close).await;
    assert!(!get_and_release(&pool, &closing.peer(1, MINUTE)).await);
    assert_eq!(pool.idle_count(), 1);
    until(|| pool.idle_count() == 0).await;
}

#[tokio::test]
async fn a_connection_with_unasked_bytes_is_closed_not_pooled() {
    let upstream = Upstream::start(After::Chatter).await;
    let pool = pool(8);
    let peer = upstream.peer(1, MINUTE);
    let (session, _) = get(&pool, &peer).await;
    // Let the extra answer arrive whole.
    tokio::time::sleep(Duration::from_millis(50)).await;
    pool.release(session, &peer).await;
    assert_eq!(pool.idle_count(), 0);
    assert!(!get_and_release(&pool, &peer).await);
}

#[tokio::test]
async fn the_pool_keeps_at_most_its_capacity_and_nothing_without_an_idle_time() {
    let upstream = Upstream::start(After::Wait).await;
    let pool = pool(2);
    let peer = upstream.peer(1, MINUTE);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(get(&pool, &peer).await.0);
    }
    for session in held {
        pool.release(session, &peer).await;
    }
    assert_eq!(pool.idle_count(), 2);
    assert_eq!(upstream.accepted(), 3);
    // The oldest went; the other two are reused.
    until(|| upstream.ended.load(Ordering::SeqCst) == 1).await;
    assert!(get_and_release(&pool, &peer).await);

    let once = upstream.peer(7, Duration::ZERO);
    assert!(!get_and_release(&pool, &once).await);
    assert!(!get_and_release(&pool, &once).await);
    assert_eq!(pool.idle_count(), 2);
}

/// Waits (up to 5 s) for `done`, the runtime running meanwhile.
async fn until(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
