//! The causes sigproxy's client stream (`conn::stream`) puts in the `io::Error`s it fails a
//! read or write with, which pingora passes on as downstream errors and
//! [`super::ProxyError::from_pingora`] recognises.

use std::fmt;

/// What a write to a client fails with when the client read nothing for
/// `client_write_timeout` (see `conn::stream`): pingora passes it on as a downstream write
/// error, and [`super::ProxyError::from_pingora`] recognises it.
#[derive(Debug)]
pub struct Stalled(pub std::time::Duration);

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the client read none of the response for client_write_timeout ({}s)",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for Stalled {}

/// What a read of a request body fails with when the body arrives slower than
/// `min_request_body_rate` once `request_body_timeout` is over (see `conn::body_clock`):
/// pingora passes it on as a downstream read error, and [`super::ProxyError::from_pingora`]
/// recognises it.
#[derive(Debug)]
pub struct SlowBody {
    /// `request_body_timeout`.
    pub grace: std::time::Duration,
    /// `min_request_body_rate`, bytes per second.
    pub rate: u64,
}

impl fmt::Display for SlowBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body arrived slower than min_request_body_rate ({} bytes/s) after request_body_timeout ({}s)",
            self.rate,
            self.grace.as_secs_f64()
        )
    }
}

impl std::error::Error for SlowBody {}
