//! The TLS handshake of an HTTPS listener, inside the connection's limits: it must be done
//! within the first request head's time, and it holds a place among `max_connections` like any
//! other connection (pingora's own listener would run it before either, for up to 60 s).

use super::head;
use super::idle::Idle;
use super::stream::Downstream;
use crate::error::ProxyError;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::{Peek, Stream};
use tokio::time::{sleep_until, timeout_at, Instant};

/// A TLS record's first byte when it carries a handshake message (a ClientHello).
const HANDSHAKE_RECORD: u8 = 0x16;

/// How the handshake went.
pub enum Handshake {
    /// The TLS stream, ready for the first request head.
    Done(Stream),
    /// Not done by the deadline.
    TimedOut,
    /// Told to make room (see [`super::idle`]) before it was done.
    Evicted,
    /// The client closed, spoke plain HTTP (answered) or failed the handshake.
    Failed,
}

/// Peeks at the first byte: plain HTTP gets a plain `400` telling it to use HTTPS (instead of
/// a TLS alert no HTTP client can show); anything else goes through the handshake.
///
/// A connection out of time, or told to make room (`idle`: silent, it is idle; once its hello
/// has begun, a begun head), is closed at once, without the lingering close: nothing was
/// answered, and its place among `max_connections` comes back now, not seconds later.
pub async fn handshake(
    acceptor: &Acceptor,
    mut io: Downstream,
    by: Instant,
    mut idle: Option<&mut Idle>,
) -> Handshake {
    let closer = io.closer();
    let mut first = [0u8; 1];
    let peeked = {
        let peek = timeout_at(by, io.try_peek(&mut first));
        match idle.as_deref() {
            Some(idle) => tokio::select! {
                biased;
                peeked = peek => Some(peeked),
                () = idle.evicted() => None,
            },
            None => Some(peek.await),
        }
    };
    match peeked {
        None => {
            closer.close_at_once();
            return Handshake::Evicted;
        }
        Some(Err(_)) => {
            closer.close_at_once();
            return Handshake::TimedOut;
        }
        Some(Ok(Err(_))) => return Handshake::Failed,
        Some(Ok(Ok(_))) => {}
    }
    if let Some(idle) = idle.as_deref_mut() {
        idle.begin();
    }
    if first[0] != HANDSHAKE_RECORD {
        let mut io: Stream = Box::new(io);
        let plain = ProxyError::BadRequest(
            "this port serves HTTPS only: connect with https:// (a TLS client)".into(),
        );
        head::answer(&mut io, &plain).await;
        return Handshake::Failed;
    }
    // Pinned here, the handshake (and the connection in it) is dropped only after the closer
    // has been told.
    let shaking = acceptor.tls_handshake(io);
    tokio::pin!(shaking);
    let evicted = async {
        match idle.as_deref() {
            Some(idle) => idle.evicted().await,
            None => std::future::pending().await,
        }
    };
    let shaken = tokio::select! {
        shaken = &mut shaking => shaken,
        () = sleep_until(by) => {
            closer.close_at_once();
            return Handshake::TimedOut;
        }
        () = evicted => {
            closer.close_at_once();
            return Handshake::Evicted;
        }
    };
    match shaken {
        Ok(tls) => Handshake::Done(Box::new(tls)),
        Err(e) => {
            // A scanner, or a client that does not trust the certificate: theirs to report.
            tracing::debug!(error = %e, "TLS handshake failed");
            Handshake::Failed
        }
    }
}
