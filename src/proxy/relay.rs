//! Relaying the upstream's answer to a request sent by [`super::forward`] back to the client,
//! and returning the upstream connection to the [`Pool`].
//!
//! Between two HTTP/1 sessions the body is written from pingora's read buffer, not copied
//! into a `Bytes` of its own first (that copy was nearly all the user-space work of a large
//! download). pingora reads a body at most 64 KiB at a time; past the first piece, the rest
//! of a large body of declared length is read here straight from the connection,
//! [`LARGE_READ`] at a time, each read capped at what the length leaves, so no byte of a next
//! response is ever taken. Fewer, larger reads and writes cost the kernel less per byte.

use super::forward::{connected_error, Failure, Relay};
use super::pool::Pool;
use crate::access::browser::{answer_cors, PageRequest};
use crate::error::ProxyError;
use crate::headers;
use bytes::Bytes;
use http::{header, Method};
use pingora::http::ResponseHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::v1::client::HttpSession as Http1Client;
use pingora::protocols::http::v1::server::HttpSession as Http1Server;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::proxy::Session;
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error as PingoraError, ErrorType};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// How much of a large body one read takes when sigproxy reads it itself. Held only while
/// such a body is relayed (one per download in flight, instead of pingora's 64 KiB buffer).
const LARGE_READ: usize = 128 * 1024;

/// Sends the upstream's response to the client, as `relay` says: `held`, body already read,
/// first, then the rest as it arrives; then returns the connection to `pool` when it can be
/// used again.
pub(super) async fn relay_response(
    session: &mut Session,
    pool: &Pool,
    mut upstream: HttpSession,
    peer: &HttpPeer,
    held: Vec<Bytes>,
    page: &PageRequest,
    relay: Relay,
) -> Result<u16, Failure> {
    let mut resp = upstream.response_header().cloned().ok_or_else(|| {
        Failure::Unanswered(ProxyError::Internal("missing response header".into()))
    })?;
    let status = resp.status.as_u16();
    let method = &session.req_header().method;
    let declared = declared_length(&resp, method);
    let done = upstream.response_done();
    match relay {
        Relay::Own => headers::prepare_response(&mut resp),
        Relay::AsPingora => {
            chunk_if_unframed(&mut resp, method, done).map_err(Failure::Unanswered)?
        }
    }
    answer_cors(&mut resp, page);
    session
        .write_response_header(Box::new(resp), done && held.is_empty())
        .await
        .map_err(client_failure)?;
    let held_count = held.len();
    for (i, chunk) in held.into_iter().enumerate() {
        let end = done && i + 1 == held_count;
        session
            .write_response_body(Some(chunk), end)
            .await
            .map_err(client_failure)?;
    }
    if !done {
        let from_upstream = |e| Failure::Midway(connected_error(e, relay, peer));
        let rest = match (&mut upstream, session.as_downstream_mut()) {
            (HttpSession::H1(from), ServerSession::H1(to)) => relay_h1(from, to, declared)
                .await
                .map_err(|f| f.into_failure(from_upstream))?,
            _ => relay_pieces(session, &mut upstream)
                .await
                .map(|()| 0)
                .map_err(|f| f.into_failure(from_upstream))?,
        };
        if rest > 0 {
            // Only an HTTP/1 pair leaves a rest (anything else is dropped, closing it).
            if let (HttpSession::H1(from), ServerSession::H1(to)) =
                (upstream, session.as_downstream_mut())
            {
                relay_rest(from, to, rest, pool, peer)
                    .await
                    .map_err(|f| f.into_failure(from_upstream))?;
            }
            return Ok(status);
        }
    }
    pool.release(upstream, peer).await;
    Ok(status)
}

/// A body the upstream ends by closing its connection goes to the client chunked, as pingora's
/// loop sends it, so the client's connection can stay open: unless the answer has no body
/// (`HEAD`, `204`, `304`, `1xx`) or is complete already.
fn chunk_if_unframed(
    resp: &mut ResponseHeader,
    method: &Method,
    done: bool,
) -> Result<(), ProxyError> {
    let no_body = *method == Method::HEAD
        || matches!(resp.status.as_u16(), 204 | 304)
        || resp.status.is_informational();
    let framed = resp.headers.contains_key(header::TRANSFER_ENCODING)
        || resp.headers.contains_key(header::CONTENT_LENGTH);
    if no_body || framed || done {
        return Ok(());
    }
    resp.set_version(http::Version::HTTP_11);
    resp.insert_header(header::TRANSFER_ENCODING, "chunked")
        .map_err(|e| ProxyError::Internal(e.to_string()))
}

/// A failed write to the client: the answer is under way, all that is left is to close.
pub(super) fn client_failure(e: Box<PingoraError>) -> Failure {
    Failure::Midway(match ProxyError::from_pingora(&e) {
        stalled @ ProxyError::ClientStalled(_) => stalled,
        _ => ProxyError::BodyRead(e.to_string()),
    })
}

/// Where a relay broke: reading the upstream (its error, to be told as the upstream's) or
/// writing to the client (already a [`Failure`]).
enum Broke {
    Upstream(Box<PingoraError>),
    Client(Failure),
}

impl Broke {
    fn into_failure(self, upstream: impl FnOnce(Box<PingoraError>) -> Failure) -> Failure {
        match self {
            Broke::Upstream(e) => upstream(e),
            Broke::Client(failure) => failure,
        }
    }
}

/// A client write failed.
fn to_client(e: Box<PingoraError>) -> Broke {
    Broke::Client(client_failure(e))
}

/// The body's length when the upstream declared one and sends that many bytes: no
/// `Transfer-Encoding`, one valid `Content-Length`, and a response that has a body at all.
fn declared_length(resp: &ResponseHeader, method: &Method) -> Option<u64> {
    if method == Method::HEAD
        || matches!(resp.status.as_u16(), 100..=199 | 204 | 304)
        || resp.headers.contains_key(header::TRANSFER_ENCODING)
    {
        return None;
    }
    // Only a value pingora reads the same way: one header, digits only (no sign, no list).
    let mut lengths = resp.headers.get_all(header::CONTENT_LENGTH).iter();
    let value = lengths.next()?.to_str().ok()?.trim();
    if lengths.next().is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Relays the body as pingora reads it, each piece written from pingora's buffer, until it
/// ends, or, for a body of `declared` length, until a piece leaves more than one read of
/// pingora's to go: that rest is returned to be read here (0: the body was relayed whole and
/// the client's side finished).
async fn relay_h1(
    from: &mut Http1Client,
    to: &mut Http1Server,
    declared: Option<u64>,
) -> Result<u64, Broke> {
    loop {
        match from.read_body_ref().await.map_err(Broke::Upstream)? {
            None => break,
            Some([]) => {}
            Some(piece) => {
                to.write_body(piece).await.map_err(to_client)?;
            }
        }
        if from.is_body_done() {
            break;
        }
        let left = declared.map_or(0, |n| n.saturating_sub(from.body_bytes_received() as u64));
        if left > PINGORA_READ {
            return Ok(left);
        }
    }
    to.finish_body().await.map_err(to_client)?;
    Ok(0)
}

/// What pingora 0.9 reads of a body at most at once.
const PINGORA_READ: u64 = 64 * 1024;

/// Relays the body through pingora's session API (an HTTP/2 client), a copy per piece.
async fn relay_pieces(session: &mut Session, upstream: &mut HttpSession) -> Result<(), Broke> {
    loop {
        let chunk = upstream
            .read_response_body()
            .await
            .map_err(Broke::Upstream)?;
        let end = chunk.is_none() || upstream.response_done();
        session
            .write_response_body(chunk, end)
            .await
            .map_err(to_client)?;
        if end {
            return Ok(());
        }
    }
}

/// Relays the last `rest` bytes of a large body from the upstream connection itself; the
/// connection goes back to the pool only if the upstream keeps it alive and every declared
/// byte came.
async fn relay_rest(
    mut from: Http1Client,
    to: &mut Http1Server,
    rest: u64,
    pool: &Pool,
    peer: &HttpPeer,
) -> Result<(), Broke> {
    from.respect_keepalive();
    let keep = from.will_keepalive();
    let idle = from.read_timeout;
    let mut stream = from.into_inner();
    read_rest(&mut stream, to, rest, idle).await?;
    to.finish_body().await.map_err(to_client)?;
    if keep {
        pool.keep(stream, peer);
    }
    Ok(())
}

/// Reads exactly `rest` more bytes of the body from the upstream connection and writes them
/// to the client, waiting at most `idle` for each read.
async fn read_rest(
    stream: &mut Stream,
    to: &mut Http1Server,
    mut rest: u64,
    idle: Option<Duration>,
) -> Result<(), Broke> {
    let mut buffer = vec![0u8; LARGE_READ.min(rest as usize)];
    while rest > 0 {
        let want = buffer.len().min(rest as usize);
        let read = stream.read(&mut buffer[..want]);
        let read = match idle {
            Some(idle) => tokio::time::timeout(idle, read).await.map_err(|_| {
                PingoraError::explain(ErrorType::ReadTimedout, "reading the response body")
            }),
            None => Ok(read.await),
        };
        let n = read
            .and_then(|r| {
                r.map_err(|e| PingoraError::because(ErrorType::ReadError, "response body", e))
            })
            .map_err(Broke::Upstream)?;
        if n == 0 {
            let e = PingoraError::explain(
                ErrorType::ConnectionClosed,
                "the upstream closed the connection before the body's end",
            );
            return Err(Broke::Upstream(e));
        }
        to.write_body(&buffer[..n]).await.map_err(to_client)?;
        rest -= n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (name, value) in headers {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    #[test]
    fn only_one_valid_content_length_on_a_response_with_a_body_is_read_here() {
        let get = Method::GET;
        let cl = |v| response(200, &[("content-length", v)]);
        assert_eq!(declared_length(&cl("1048576"), &get), Some(1 << 20));
        assert_eq!(declared_length(&cl(" 7 "), &get), Some(7));
        assert_eq!(declared_length(&cl("-1"), &get), None);
        assert_eq!(declared_length(&cl("+5"), &get), None);
        assert_eq!(declared_length(&cl("5, 5"), &get), None);
        assert_eq!(declared_length(&cl(""), &get), None);
        assert_eq!(declared_length(&cl("99999999999999999999999"), &get), None);
        assert_eq!(declared_length(&cl("1e6"), &get), None);
        assert_eq!(declared_length(&cl("1048576"), &Method::HEAD), None);
        assert_eq!(declared_length(&response(200, &[]), &get), None);
        let twice = [("content-length", "5"), ("content-length", "5")];
        assert_eq!(declared_length(&response(200, &twice), &get), None);
        let chunked = [("content-length", "5"), ("transfer-encoding", "chunked")];
        assert_eq!(declared_length(&response(200, &chunked), &get), None);
        for status in [204, 304] {
            let no_body = response(status, &[("content-length", "5")]);
            assert_eq!(declared_length(&no_body, &get), None);
        }
    }
}
