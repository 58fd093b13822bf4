//! Upgraded (WebSocket) connections: how upgrades went, how many are open, the bytes each way,
//! how long they lasted and why they closed. Every route's series exist from the start, at
//! zero, so dashboards and alerts see them before the first upgrade.

use super::{counter, register};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// From a second to a day: WebSocket connections last far longer than requests.
const LIFETIME_BUCKETS: &[f64] = &[
    1.0, 10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 86400.0,
];

/// How an upgrade request ended: `upgraded` (the upstream answered 101 and the connections
/// were joined), `declined` (it answered something else, relayed as is), `failed` (no answer:
/// unreachable, timed out, or the request could not be signed), `refused` (not sent:
/// `max_websocket_connections` were open).
pub const RESULTS: [&str; 4] = ["upgraded", "declined", "failed", "refused"];

/// Why an upgraded connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// The client closed its side.
    Client,
    /// The upstream closed its side.
    Upstream,
    /// No byte either way for `websocket.idle_timeout`.
    IdleTimeout,
    /// `websocket.max_lifetime` passed.
    MaxLifetime,
    /// A read or write failed (a reset, or a side that stopped reading).
    Error,
    /// A reload withdrew what admitted it (its token, its client, its address).
    Revoked,
}

impl Closed {
    pub const ALL: [Closed; 6] = [
        Closed::Client,
        Closed::Upstream,
        Closed::IdleTimeout,
        Closed::MaxLifetime,
        Closed::Error,
        Closed::Revoked,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Closed::Client => "client",
            Closed::Upstream => "upstream",
            Closed::IdleTimeout => "idle_timeout",
            Closed::MaxLifetime => "max_lifetime",
            Closed::Error => "error",
            Closed::Revoked => "revoked",
        }
    }
}

/// The WebSocket metric families.
pub struct Families {
    pub upgrades: IntCounterVec,
    pub open: IntGaugeVec,
    pub bytes: IntCounterVec,
    pub duration: HistogramVec,
    pub closed: IntCounterVec,
}

impl Families {
    pub(super) fn new(r: &Registry) -> Families {
        Families {
            upgrades: counter(
                r,
                "sigproxy_websocket_upgrades_total",
                "WebSocket upgrade requests, by route and result: upgraded (101, connections joined), declined (another answer, relayed as is), failed (no answer), refused (503, not sent: max_websocket_connections were open)",
                &["route", "result"],
            ),
            open: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "sigproxy_websocket_connections",
                        "Upgraded (WebSocket) connections open, by route",
                    ),
                    &["route"],
                )
                .expect("valid metric"),
            ),
            bytes: counter(
                r,
                "sigproxy_websocket_bytes_total",
                "Bytes carried over upgraded connections, by route and direction: to_upstream, to_client",
                &["route", "direction"],
            ),
            duration: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "sigproxy_websocket_duration_seconds",
                        "How long upgraded connections lasted, from the 101 to the close",
                    )
                    .buckets(LIFETIME_BUCKETS.to_vec()),
                    &["route"],
                )
                .expect("valid metric"),
            ),
            closed: counter(
                r,
                "sigproxy_websocket_closed_total",
                "Upgraded connections closed, by route and reason: client, upstream, idle_timeout, max_lifetime, error",
                &["route", "reason"],
            ),
        }
    }

    pub(super) fn for_route(&self, route: &str) -> RouteWebSocket {
        let [upgraded, declined, failed, refused] =
            RESULTS.map(|result| self.upgrades.with_label_values(&[route, result]));
        RouteWebSocket {
            upgraded,
            declined,
            failed,
            refused,
            open: self.open.with_label_values(&[route]),
            to_upstream: self.bytes.with_label_values(&[route, "to_upstream"]),
            to_client: self.bytes.with_label_values(&[route, "to_client"]),
            duration: self.duration.with_label_values(&[route]),
            closed: Closed::ALL.map(|c| self.closed.with_label_values(&[route, c.label()])),
        }
    }
}

/// One route's WebSocket series.
#[derive(Debug, Clone)]
pub struct RouteWebSocket {
    pub upgraded: IntCounter,
    pub declined: IntCounter,
    pub failed: IntCounter,
    pub refused: IntCounter,
    pub open: IntGauge,
    pub to_upstream: IntCounter,
    pub to_client: IntCounter,
    pub duration: Histogram,
    closed: [IntCounter; Closed::ALL.len()],
}

impl RouteWebSocket {
    /// Counts a close, for `reason`.
    pub fn closed(&self, reason: Closed) {
        let i = Closed::ALL
            .iter()
            .position(|c| *c == reason)
            .expect("every reason is listed");
        self.closed[i].inc();
    }
}
