//! What each request adds to the metrics: a route's own series, the method label, and the
//! record of a finished request; and the removal of a route's series when a reload drops it.

use super::websocket::RouteWebSocket;
use super::Metrics;
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{Histogram, IntCounter, IntGauge};
use std::collections::{BTreeSet, HashMap};

/// One route's series, looked up once rather than by label on every request.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub in_flight: IntGauge,
    pub request_bytes: IntCounter,
    pub response_bytes: IntCounter,
    /// The route's upgraded (WebSocket) connections.
    pub websocket: RouteWebSocket,
}

/// A request counted in its route's in-flight gauge until this is dropped: when the request
/// ends, whichever way it ends (answered, handed to pingora's loop, or its task unwinding from
/// a panic, which must not leave the gauge, and the alert on it, one higher for ever).
#[derive(Debug)]
pub struct InFlight(IntGauge);

impl InFlight {
    pub fn enter(gauge: &IntGauge) -> InFlight {
        gauge.inc();
        InFlight(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Drops every series labelled with one of `routes` (routes a reload removed or renamed),
    /// so that `/metrics` does not keep them forever. (A request that was under way on such a
    /// route when it was removed is counted in the removed series, which `/metrics` no longer
    /// shows; a route added back starts from new series.)
    pub fn forget_routes(&self, routes: &BTreeSet<String>) {
        if routes.is_empty() {
            return;
        }
        for family in [
            &self.requests,
            &self.request_bytes,
            &self.response_bytes,
            &self.upstream_errors,
            &self.signing_errors,
            &self.denied,
            &self.upstream_retries,
            &self.websocket.upgrades,
            &self.websocket.bytes,
            &self.websocket.closed,
        ] {
            forget(family, routes);
        }
        forget(&self.request_duration, routes);
        forget(&self.upstream_duration, routes);
        forget(&self.in_flight, routes);
        forget(&self.websocket.open, routes);
        forget(&self.websocket.duration, routes);
    }

    pub fn for_route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            request_duration: self.request_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            in_flight: self.in_flight.with_label_values(&[route]),
            request_bytes: self.request_bytes.with_label_values(&[route]),
            response_bytes: self.response_bytes.with_label_values(&[route]),
            websocket: self.websocket.for_route(route),
        }
    }
}

/// Removes the series of `family` whose `route` label is one of `routes`.
fn forget<T: MetricVecBuilder>(family: &MetricVec<T>, routes: &BTreeSet<String>) {
    for gathered in family.collect() {
        for series in gathered.get_metric() {
            let labels: HashMap<&str, &str> = series
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get("route").is_some_and(|r| routes.contains(*r)) {
                let _ = family.remove(&labels);
            }
        }
    }
}

/// A method label: the standard methods by name, anything else as `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What one finished request adds to the metrics.
pub struct Finished<'a> {
    /// The route's series, or `None` for a request no route took.
    pub route: Option<&'a RouteMetrics>,
    pub route_name: &'a str,
    pub method: &'a http::Method,
    /// `0` when no response was written.
    pub status: u16,
    pub duration: std::time::Duration,
    pub upstream_time: Option<std::time::Duration>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub error: Option<&'a crate::error::ProxyError>,
}

impl Metrics {
    /// Counts a finished request: its status, timings and bytes, and what refused or failed it.
    /// (It leaves its route's in-flight gauge when its [`InFlight`] goes.)
    pub fn record(&self, done: Finished<'_>) {
        let route = done.route_name;
        let mut code = itoa::Buffer::new();
        self.requests
            .with_label_values(&[route, method_label(done.method), code.format(done.status)])
            .inc();
        let unrouted;
        let per_route = match done.route {
            Some(r) => r,
            None => {
                unrouted = self.for_route(route);
                &unrouted
            }
        };
        per_route
            .request_duration
            .observe(done.duration.as_secs_f64());
        if let Some(t) = done.upstream_time {
            per_route.upstream_duration.observe(t.as_secs_f64());
        }
        per_route.request_bytes.inc_by(done.bytes_in);
        per_route.response_bytes.inc_by(done.bytes_out);
        if let Some(error) = done.error {
            if let Some(kind) = error.upstream_kind() {
                self.upstream_errors.with_label_values(&[route, kind]).inc();
            }
            if let Some(reason) = error.denied_reason() {
                self.denied.with_label_values(&[route, reason]).inc();
            }
            if let Some(reason) = error.signing_reason() {
                self.signing_errors
                    .with_label_values(&[route, reason])
                    .inc();
            }
        }
    }
}
