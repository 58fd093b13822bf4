//! Reading a whole request body, bounded, so its SHA-256 can go into the signature.

use super::budget::Reservation;
use crate::conn::body_clock;
use crate::error::ProxyError;
use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;
use pingora::ErrorType;
use std::time::Duration;

/// The declared `Content-Length`, if any and valid.
pub fn content_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the client waits for `100 Continue` before sending its body.
pub fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the body to its end, failing with 413 as soon as it grows past `limit`, and with 408
/// when the client sends nothing for `idle` or sends it too slowly (`min_request_body_rate`:
/// its deadline runs while this reads, see [`body_clock`]). The bytes held are covered by
/// `reserved` (503 when its budget cannot hold them), which is returned with the body and must
/// be kept as long as the body is.
///
/// Answers `Expect: 100-continue` first (the body is read here, not by the upstream).
/// A declared `Content-Length` over the limit, or more than the budget has free, is refused
/// before any body byte is read.
pub async fn read_bounded<'b>(
    session: &mut Session,
    limit: usize,
    idle: Duration,
    mut reserved: Reservation<'b>,
    continue_sent: &mut bool,
) -> Result<(Bytes, Reservation<'b>), ProxyError> {
    let declared = content_length(session);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    if let Some(n) = declared {
        reserved.cover(n as usize)?;
    }
    if expects_continue(session) {
        session
            .as_downstream_mut()
            .write_continue_response()
            .await
            .map_err(|e| ProxyError::BodyRead(e.to_string()))?;
        *continue_sent = true;
    }
    session.as_downstream_mut().set_read_timeout(Some(idle));
    let capacity = declared.map_or(0, |n| n as usize);
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut total = 0usize;
    let _awaiting = body_clock::awaiting();
    while let Some(chunk) = session.read_request_body().await.map_err(read_failed)? {
        total += chunk.len();
        if total > limit {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        // Chunked: the body's length shows only as it comes.
        reserved.cover(total)?;
        // The common single-chunk body is kept without a copy.
        match &first {
            None if rest.is_empty() => first = Some(chunk),
            _ => {
                if let Some(f) = first.take() {
                    rest.reserve(capacity.max(f.len() + chunk.len()));
                    rest.extend_from_slice(&f);
                }
                rest.extend_from_slice(&chunk);
            }
        }
    }
    Ok((first.unwrap_or_else(|| rest.freeze()), reserved))
}

/// What a failed read of the body tells the client.
fn read_failed(e: Box<pingora::Error>) -> ProxyError {
    match ProxyError::from_pingora(&e) {
        slow @ ProxyError::BodyTooSlow(_) => slow,
        _ if e.etype() == &ErrorType::ReadTimedout => ProxyError::ClientTimeout,
        _ => ProxyError::BodyRead(e.to_string()),
    }
}
