//! Limits on every client of the traffic port: how long a connection may idle, take over a
//! request head or leave a response unread, how slowly a request body may arrive, how many
//! connections are served at once, and how many body bytes are held in memory (to be hashed)
//! across all requests.

use super::check::Checker;
use super::{ConfigError, RouteConfig};
use std::time::Duration;

/// How long an idle keep-alive connection is kept open.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client gets to send a whole request head (request line and headers).
pub const DEFAULT_REQUEST_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write to a client may make no progress (the client reads nothing) before the
/// connection is closed: nginx's `send_timeout`.
pub const DEFAULT_CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request body may take before it must keep [`DEFAULT_MIN_REQUEST_BODY_RATE`]:
/// Apache's `RequestReadTimeout body=20,MinRate=500`.
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Bytes per second a request body must keep arriving at, after the timeout above.
pub const DEFAULT_MIN_REQUEST_BODY_RATE: u64 = 500;
/// Connections served at once on the traffic listener: above the soak benchmark's 1,000.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Signed bodies held in memory at once, all requests together: far below the smallest pod
/// memory limit in deploy/ (128 MiB for a sidecar), and room for five 6 MiB Lambda bodies.
pub const DEFAULT_MAX_BUFFERED_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Timeouts are capped so that deadlines computed from them cannot overflow.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
const MAX_MAX_CONNECTIONS: u64 = 1_000_000;
/// 1 GB/s: more than a client connection carries.
const MAX_MIN_REQUEST_BODY_RATE: u64 = 1_000_000_000;
const MAX_MAX_BUFFERED_BODY_BYTES: u64 = 16 * 1024 * 1024 * 1024;

/// The checked limits (top-level keys of the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// `keepalive_timeout`: an idle keep-alive connection is closed after this.
    pub keepalive_timeout: Duration,
    /// `request_header_timeout`: the whole request head must arrive within this, counted from
    /// the connection's start (first request) or from the next request's first byte.
    pub request_header_timeout: Duration,
    /// `client_write_timeout`: a write to the client that makes no progress for this long
    /// (the client reads nothing of the response) closes the connection.
    pub client_write_timeout: Duration,
    /// `request_body_timeout`: how long a request body may keep sigproxy waiting for its bytes
    /// in all, plus one second for every `min_request_body_rate` bytes received (see
    /// [`crate::conn`]).
    pub request_body_timeout: Duration,
    /// `min_request_body_rate`: bytes per second, the rate above; 0 turns that deadline off
    /// (a body is then bounded only by the route's `read_timeout` between two reads).
    pub min_request_body_rate: u64,
    /// `max_connections`: connections served at once; more are refused with `503`.
    pub max_connections: usize,
    /// `max_websocket_connections`: upgraded (WebSocket) connections open at once, all routes
    /// together; another upgrade is refused with `503`. At most `max_connections`, so that
    /// long-lived WebSockets cannot take every place from ordinary requests.
    pub max_websocket_connections: usize,
    /// `max_buffered_body_bytes`: body bytes buffered for signing, all requests together.
    pub max_buffered_body_bytes: usize,
}

/// `max_websocket_connections` when the file sets none: half of `max_connections` (at least
/// one), leaving the other half to ordinary requests.
pub fn default_max_websocket_connections(max_connections: usize) -> usize {
    (max_connections / 2).max(1)
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            request_header_timeout: DEFAULT_REQUEST_HEADER_TIMEOUT,
            client_write_timeout: DEFAULT_CLIENT_WRITE_TIMEOUT,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            min_request_body_rate: DEFAULT_MIN_REQUEST_BODY_RATE,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_websocket_connections: default_max_websocket_connections(DEFAULT_MAX_CONNECTIONS),
            max_buffered_body_bytes: DEFAULT_MAX_BUFFERED_BODY_BYTES,
        }
    }
}

/// The limits' keys as written in the file.
pub(super) struct Raw<'a> {
    pub keepalive_timeout: Option<&'a str>,
    pub request_header_timeout: Option<&'a str>,
    pub client_write_timeout: Option<&'a str>,
    pub request_body_timeout: Option<&'a str>,
    pub min_request_body_rate: Option<u64>,
    pub max_connections: Option<u64>,
    pub max_websocket_connections: Option<u64>,
    pub max_buffered_body_bytes: Option<u64>,
}

impl Checker<'_> {
    /// The limits, checked against the routes whose bodies they must hold.
    pub(super) fn limits(
        &self,
        raw: Raw<'_>,
        routes: &[RouteConfig],
    ) -> Result<ClientLimits, ConfigError> {
        let timeout = |key: &str, value: Option<&str>, default| {
            let d = self.duration(key, value, default)?;
            if d > MAX_TIMEOUT {
                return self.err(key, "must be at most 1h");
            }
            Ok(d)
        };
        let keepalive_timeout = timeout(
            "keepalive_timeout",
            raw.keepalive_timeout,
            DEFAULT_KEEPALIVE_TIMEOUT,
        )?;
        let request_header_timeout = timeout(
            "request_header_timeout",
            raw.request_header_timeout,
            DEFAULT_REQUEST_HEADER_TIMEOUT,
        )?;
        let client_write_timeout = timeout(
            "client_write_timeout",
            raw.client_write_timeout,
            DEFAULT_CLIENT_WRITE_TIMEOUT,
        )?;
        let request_body_timeout = timeout(
            "request_body_timeout",
            raw.request_body_timeout,
            DEFAULT_REQUEST_BODY_TIMEOUT,
        )?;
        let min_request_body_rate = match raw.min_request_body_rate {
            None => DEFAULT_MIN_REQUEST_BODY_RATE,
            Some(n) if n <= MAX_MIN_REQUEST_BODY_RATE => n,
            Some(n) => {
                return self.err(
                    "min_request_body_rate",
                    format!(
                        "{n} is outside 0 to {MAX_MIN_REQUEST_BODY_RATE} (bytes per second; 0 turns the body deadline off)"
                    ),
                )
            }
        };
        let max_connections = match raw.max_connections {
            None => DEFAULT_MAX_CONNECTIONS,
            Some(n) if (1..=MAX_MAX_CONNECTIONS).contains(&n) => n as usize,
            Some(n) => {
                return self.err(
                    "max_connections",
                    format!("{n} is outside 1 to {MAX_MAX_CONNECTIONS}"),
                )
            }
        };
        let max_websocket_connections = match raw.max_websocket_connections {
            None => default_max_websocket_connections(max_connections),
            Some(n) if n >= 1 && n <= max_connections as u64 => n as usize,
            Some(n) => {
                return self.err(
                    "max_websocket_connections",
                    format!(
                        "{n} is outside 1 to max_connections ({max_connections}): upgraded connections hold their place for up to websocket.max_lifetime"
                    ),
                )
            }
        };
        let max_buffered_body_bytes = match raw.max_buffered_body_bytes {
            None => DEFAULT_MAX_BUFFERED_BODY_BYTES,
            Some(n) if (1..=MAX_MAX_BUFFERED_BODY_BYTES).contains(&n) => n as usize,
            Some(n) => {
                return self.err(
                    "max_buffered_body_bytes",
                    format!("{n} is outside 1 to {MAX_MAX_BUFFERED_BODY_BYTES}"),
                )
            }
        };
        // A signed route whose largest body could never be buffered would refuse it with 503
        // forever: say so now rather than at the first large request.
        let largest = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r.signing.is_some())
            .max_by_key(|(_, r)| r.max_body_bytes);
        if let Some((i, route)) = largest {
            if route.max_body_bytes > max_buffered_body_bytes {
                return self.err(
                    "max_buffered_body_bytes",
                    format!(
                        "{max_buffered_body_bytes} is below routes[{i}].max_body_bytes ({}): a body that size could never be buffered; raise max_buffered_body_bytes or lower the route's limit",
                        route.max_body_bytes
                    ),
                );
            }
        }
        Ok(ClientLimits {
            keepalive_timeout,
            request_header_timeout,
            client_write_timeout,
            request_body_timeout,
            min_request_body_rate,
            max_connections,
            max_websocket_connections,
            max_buffered_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const ROUTE: &str = "routes:\n  - upstream: http://127.0.0.1:1\n";

    fn parse(top: &str) -> Result<ClientLimits, String> {
        Config::parse(&format!("{top}{ROUTE}"), Path::new("conf/test.yaml"))
            .map(|c| c.limits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_safe() {
        assert_eq!(parse("").unwrap(), ClientLimits::default());
        let d = ClientLimits::default();
        assert_eq!(d.keepalive_timeout, Duration::from_secs(60));
        assert_eq!(d.request_header_timeout, Duration::from_secs(10));
        assert_eq!(d.client_write_timeout, Duration::from_secs(60));
        assert_eq!(d.request_body_timeout, Duration::from_secs(20));
        assert_eq!(d.min_request_body_rate, 500, "Apache's body=20,MinRate=500");
        assert!(d.max_connections > 1000, "the soak benchmark holds 1,000");
        assert_eq!(d.max_websocket_connections, 512);
        assert_eq!(d.max_buffered_body_bytes, 32 << 20);
    }

    #[test]
    fn each_key_is_read_and_checked() {
        let l = parse("keepalive_timeout: 5s\nrequest_header_timeout: 2s\nclient_write_timeout: 3s\nmax_connections: 10\nmax_buffered_body_bytes: 7000000\nrequest_body_timeout: 4s\nmin_request_body_rate: 100\n").unwrap();
        assert_eq!(l.keepalive_timeout, Duration::from_secs(5));
        assert_eq!(l.request_header_timeout, Duration::from_secs(2));
        assert_eq!(l.client_write_timeout, Duration::from_secs(3));
        assert_eq!(l.max_connections, 10);
        assert_eq!(l.max_buffered_body_bytes, 7_000_000);
        assert_eq!(l.request_body_timeout, Duration::from_secs(4));
        assert_eq!(l.min_request_body_rate, 100);
        // Off only when told so.
        assert_eq!(
            parse("min_request_body_rate: 0\n")
                .unwrap()
                .min_request_body_rate,
            0
        );
        assert_eq!(l.max_websocket_connections, 5, "half of max_connections");
        for (yaml, message) in [
            (
                "keepalive_timeout: 0s\n",
                "conf/test.yaml: keepalive_timeout: must be greater than zero",
            ),
            (
                "request_header_timeout: 2h\n",
                "conf/test.yaml: request_header_timeout: must be at most 1h",
            ),
            (
                "request_header_timeout: soon\n",
                "conf/test.yaml: request_header_timeout: 'soon' is not a duration",
            ),
            (
                "client_write_timeout: 0s\n",
                "conf/test.yaml: client_write_timeout: must be greater than zero",
            ),
            (
                "request_body_timeout: 0s\n",
                "conf/test.yaml: request_body_timeout: must be greater than zero",
            ),
            (
                "request_body_timeout: 2h\n",
                "conf/test.yaml: request_body_timeout: must be at most 1h",
            ),
            (
                "min_request_body_rate: 1000000001\n",
                "conf/test.yaml: min_request_body_rate: 1000000001 is outside 0 to 1000000000 (bytes per second; 0 turns the body deadline off)",
            ),
            (
                "max_connections: 0\n",
                "conf/test.yaml: max_connections: 0 is outside 1 to 1000000",
            ),
            (
                "max_websocket_connections: 0\n",
                "conf/test.yaml: max_websocket_connections: 0 is outside 1 to max_connections (1024)",
            ),
            (
                "max_connections: 8\nmax_websocket_connections: 9\n",
                "conf/test.yaml: max_websocket_connections: 9 is outside 1 to max_connections (8)",
            ),
            (
                "max_buffered_body_bytes: 0\n",
                "conf/test.yaml: max_buffered_body_bytes: 0 is outside 1",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.starts_with(message), "{yaml}: {e}");
        }
    }

    #[test]
    fn the_body_budget_holds_every_signed_routes_largest_body() {
        let signed = "credentials:\n  app: {}\nroutes:\n  - upstream: http://127.0.0.1:1\n    service: lambda\n    region: us-east-1\n    credentials: app\n    max_body_bytes: 16777216\n";
        let e = Config::parse(
            &format!("max_buffered_body_bytes: 8388608\n{signed}"),
            Path::new("c.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c.yaml: max_buffered_body_bytes: 8388608 is below routes[0].max_body_bytes (16777216)"),
            "{e}"
        );
        // Pass-through routes buffer nothing.
        assert!(parse("max_buffered_body_bytes: 1000\n").is_ok());
    }

    #[test]
    fn websockets_get_half_the_connections_unless_told() {
        let l = parse("max_connections: 8\n").unwrap();
        assert_eq!(l.max_websocket_connections, 4);
        assert_eq!(
            parse("max_connections: 1\n")
                .unwrap()
                .max_websocket_connections,
            1
        );
        let l = parse("max_connections: 8\nmax_websocket_connections: 2\n").unwrap();
        assert_eq!(l.max_websocket_connections, 2);
        let l = parse("max_connections: 8\nmax_websocket_connections: 8\n").unwrap();
        assert_eq!(l.max_websocket_connections, 8);
        assert_eq!(
            parse("max_websocket_connections: 512\n").unwrap(),
            ClientLimits::default()
        );
    }
}
