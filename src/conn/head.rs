//! Reading a request head before pingora does, under a deadline for the whole head and a cap
//! on its size.
//!
//! pingora's own head reading times each read, not the head (a client sending a byte every few
//! seconds keeps a request open for ever), and buffers up to 1 MiB of an unfinished head. Here
//! the head must be complete by one deadline, and no more than `max_header_bytes` of it is taken
//! in; pingora then parses the bytes read here as if it had read them itself.

use super::idle::Idle;
use crate::error::ProxyError;
use bytes::{Buf, BufMut, BytesMut};
use pingora::protocols::Stream;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant, Sleep};

/// How reading a request head ended.
#[derive(Debug)]
pub enum Head {
    /// The head and whatever followed it in the same reads (body bytes).
    Complete(BytesMut),
    /// The client closed or broke the connection (before sending anything, or part-way).
    Closed,
    /// No first byte within the wait for one (idle keep-alive, or a silent new connection).
    Idle,
    /// The first byte came, the rest of the head not before the deadline.
    TimedOut,
    /// No end of the head within `max_header_bytes`.
    TooLarge,
    /// The connection was told to make room: nothing had come, or (`begun`) part of a head
    /// that has been under way long (see [`super::idle`]).
    Evicted { begun: bool },
}

/// Reads the next request head from `io`.
///
/// `first_byte_by`: when the client must have started (the keep-alive timeout, or for a new
/// connection its whole-head deadline). `head_time`: how long the head may take from then on,
/// capped by `head_by` if given (a new connection's head counts from the accept). `idle`: the
/// connection's place among those that may be closed to make room (see [`super::idle`]): idle
/// until the first byte, a begun head after it.
///
/// `timer` is the connection's one timer, moved to each deadline rather than made anew: moving
/// it later only extends it, while a new timer registers with tokio's timer wheel and, being the
/// thread's earliest, wakes the runtime's driver through an eventfd: a `write` and an extra
/// `epoll_wait` on every keep-alive request.
pub async fn read(
    io: &mut Stream,
    timer: &mut Pin<Box<Sleep>>,
    first_byte_by: Instant,
    head_time: Duration,
    head_by: Option<Instant>,
    max_bytes: usize,
    mut idle: Option<Idle>,
) -> Head {
    let mut buf = BytesMut::new();
    let mut deadline = first_byte_by;
    let mut started = false;
    // Bytes already searched for the end of the head (minus the few a terminator spans).
    let mut searched = 0;
    loop {
        if buf.len() >= max_bytes {
            return Head::TooLarge;
        }
        if buf.capacity() == buf.len() {
            // Grow by doubling, never past the cap: a parked head costs at most that much.
            buf.reserve(buf.len().max(1024).min(max_bytes - buf.len()));
        }
        let room = max_bytes - buf.len();
        let mut limited = (&mut buf).limit(room);
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        // Cancelling a read that has not completed loses nothing.
        // Bytes that have arrived win over the deadline and over an eviction told at the same
        // moment: closing then would lose a request the client has sent (and may not send again).
        let read = tokio::select! {
            biased;
            read = io.read_buf(&mut limited) => Some(read),
            () = timer.as_mut() => None,
            () = evicted(idle.as_ref()) => return Head::Evicted { begun: started },
        };
        match read {
            None if started => return Head::TimedOut,
            None => return Head::Idle,
            Some(Err(_)) | Some(Ok(0)) => return Head::Closed,
            Some(Ok(_)) => {}
        }
        // Empty lines before a request line are allowed (RFC 9112 2.2) and mean nothing.
        let blank = buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        buf.advance(blank);
        if buf.is_empty() {
            continue;
        }
        if !started {
            started = true;
            if let Some(idle) = &mut idle {
                idle.begin();
            }
            let by = Instant::now() + head_time;
            deadline = head_by.map_or(by, |cap| cap.min(by));
        }
        if head_end(&buf, searched).is_some() {
            return Head::Complete(buf);
        }
        searched = buf.len().saturating_sub(2);
    }
}

/// Returns when the connection is told to make room; never without an [`Idle`] place.
async fn evicted(idle: Option<&Idle>) {
    match idle {
        Some(idle) => idle.evicted().await,
        None => std::future::pending().await,
    }
}

/// Where the head ends (just past its empty line), searching from `from`. A line ends with
/// LF or CRLF, as pingora's parser accepts.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            match buf.get(i + 1..) {
                Some([b'\n', ..]) => return Some(i + 2),
                Some([b'\r', b'\n', ..]) => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Writes `error` as a complete HTTP/1.1 response that closes the connection, for answers
/// given before pingora has a session (too many connections, a head too large). Best effort,
/// within a second: the connection is being closed either way.
pub async fn answer(io: &mut Stream, error: &ProxyError) {
    let body = error.body(None);
    let header = error.response_header(body.len());
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        header.status.as_u16(),
        header.status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in header.headers.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&body);
    let deadline = Instant::now() + Duration::from_secs(1);
    let _ = timeout_at(deadline, async {
        io.write_all(&out).await?;
        io.flush().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_head_ends_at_its_first_empty_line() {
        assert_eq!(
            head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 0),
            Some(27)
        );
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nbody", 0), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0), None);
    }

    async fn feed(chunks: &[&[u8]], pause: Duration, max: usize, head_time: Duration) -> Head {
        let (client, server) = tokio::io::duplex(1 << 20);
        let chunks: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_vec()).collect();
        tokio::spawn(async move {
            let mut client = client;
            for c in chunks {
                client.write_all(&c).await.unwrap();
                tokio::time::sleep(pause).await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let mut io: Stream = Box::new(server);
        let now = Instant::now();
        read(
            &mut io,
            &mut Box::pin(tokio::time::sleep_until(now)),
            now + head_time,
            head_time,
            Some(now + head_time),
            max,
            None,
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_head_is_returned_with_what_followed() {
        let parts: &[&[u8]] = &[b"\r\nPUT / HT", b"TP/1.1\r\nContent-Length: 2\r\n\r\nab"];
        match feed(
            parts,
            Duration::from_millis(10),
            1024,
            Duration::from_secs(1),
        )
        .await
        {
            Head::Complete(buf) => {
                assert_eq!(&buf[..], b"PUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dribbled_head_times_out_at_the_deadline_not_per_read() {
        let bytes: Vec<&[u8]> = b"GET / HTTP/1.1\r\nHost: a\r\n"
            .chunks(1)
            .collect::<Vec<_>>();
        let head = feed(
            &bytes,
            Duration::from_millis(500),
            1024,
            Duration::from_secs(2),
        )
        .await;
        assert!(matches!(head, Head::TimedOut), "{head:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_is_taken_in_only_up_to_the_cap() {
        let big = vec![b'a'; 10_000];
        let parts: &[&[u8]] = &[b"GET / HTTP/1.1\r\nX: ", &big];
        let head = feed(parts, Duration::ZERO, 4096, Duration::from_secs(1)).await;
        assert!(matches!(head, Head::TooLarge), "{head:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_wait_is_evicted_a_begun_head_only_once_slow() {
        use super::super::idle::IdleSet;
        use std::sync::Arc;
        let slow = Duration::from_secs(1);
        let set = Arc::new(IdleSet::new(slow));
        let wait = Duration::from_secs(10);
        let reading = |io: Stream, idle| async move {
            let mut io = io;
            let mut timer = Box::pin(tokio::time::sleep(wait));
            let by = Instant::now() + wait;
            read(&mut io, &mut timer, by, wait, None, 4096, Some(idle)).await
        };

        let (mut client, server) = tokio::io::duplex(4096);
        let begun = tokio::spawn(reading(Box::new(server), set.enter()));
        client.write_all(b"GET / HT").await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!set.evict_longest(), "a head begun just now is not cut");
        client.write_all(b"TP/1.1\r\n\r\n").await.unwrap();
        let head = begun.await.unwrap();
        assert!(matches!(head, Head::Complete(_)), "{head:?}");

        let (mut client, server) = tokio::io::duplex(4096);
        let dribbled = tokio::spawn(reading(Box::new(server), set.enter()));
        client.write_all(b"GET / HT").await.unwrap();
        tokio::time::sleep(slow * 2).await;
        assert!(set.evict_longest(), "a head under way for long is cut");
        let head = dribbled.await.unwrap();
        assert!(matches!(head, Head::Evicted { begun: true }), "{head:?}");

        let (_client, server) = tokio::io::duplex(4096);
        let silent = tokio::spawn(reading(Box::new(server), set.enter()));
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(set.evict_longest());
        let head = silent.await.unwrap();
        assert!(matches!(head, Head::Evicted { begun: false }), "{head:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_idle() {
        let head = feed(&[], Duration::ZERO, 4096, Duration::from_secs(1)).await;
        assert!(matches!(head, Head::Idle), "{head:?}");
    }
}
