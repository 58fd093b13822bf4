//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Labels are bounded: route and credential set *names* from the configuration, a fixed set of
//! methods, status codes, and fixed error kinds. Never paths, buckets or keys.

use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::OnceLock;

/// Buckets from 1 ms to 60 s: Lambda cold starts and S3 transfers both fit.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub request_bytes: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub upstream_errors: IntCounterVec,
    pub signing_errors: IntCounterVec,
    pub denied: IntCounterVec,
    pub upstream_retries: IntCounterVec,
    pub credentials_expiry: GaugeVec,
    pub credential_refreshes: IntCounterVec,
    pub sts_duration: HistogramVec,
    pub connections: IntGauge,
    pub connections_refused: IntCounter,
    pub request_heads_refused: IntCounterVec,
    pub buffered_body_bytes: IntGauge,
    pub body_budget_refusals: IntCounter,
    /// Configuration reloads (SIGHUP, file change), by result: success or failure.
    pub config_reloads: IntCounterVec,
    /// When a configuration was last applied (start-up included), Unix time.
    pub config_last_reload_success: Gauge,
    /// 1 while the file holds changes only a restart applies (listen addresses, limits).
    pub config_restart_required: IntGauge,
    /// The first 48 bits of the applied file's SHA-256: which configuration is live.
    pub config_hash: Gauge,
    /// TLS certificate files re-read after a change, by listener and result.
    pub tls_certificate_reloads: IntCounterVec,
    /// The serving certificate's notAfter, by listener, Unix time.
    pub tls_certificate_expiry: GaugeVec,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, m: T) -> T {
    registry
        .register(Box::new(m.clone()))
        .expect("metric names are unique");
    m
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, IntGauge::new(name, help).expect("valid metric"))
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
    register(
        registry,
        HistogramVec::new(opts, labels).expect("valid metric"),
    )
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let build_info = register(
            &r,
            IntGaugeVec::new(
                Opts::new("sigproxy_build_info", "sigproxy's version; always 1"),
                &["version"],
            )
            .expect("valid metric"),
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let config_reloads = counter(
            &r,
            "sigproxy_config_reloads_total",
            "Configuration reloads, by result: success or failure (the old configuration kept serving)",
            &["result"],
        );
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        // The configuration read at startup is the first successful load.
        let config_last_reload_success = register(
            &r,
            Gauge::new(
                "sigproxy_config_last_reload_success_timestamp_seconds",
                "When the configuration in use was loaded (Unix time)",
            )
            .expect("valid metric"),
        );
        config_last_reload_success.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        Metrics {
            requests: counter(
                &r,
                "sigproxy_requests_total",
                "Requests answered, by route, method and status code",
                &["route", "method", "code"],
            ),
            request_duration: histogram(
                &r,
                "sigproxy_request_duration_seconds",
                "From the request's first byte in to the response's last byte out",
                &["route"],
            ),
            upstream_duration: histogram(
                &r,
                "sigproxy_upstream_duration_seconds",
                "From sending the request upstream to the upstream's response header",
                &["route"],
            ),
            in_flight: register(
                &r,
                IntGaugeVec::new(
                    Opts::new("sigproxy_requests_in_flight", "Requests being handled"),
                    &["route"],
                )
                .expect("valid metric"),
            ),
            request_bytes: counter(
                &r,
                "sigproxy_request_bytes_total",
                "Request body bytes received from clients",
                &["route"],
            ),
            response_bytes: counter(
                &r,
                "sigproxy_response_bytes_total",
                "Response body bytes sent to clients",
                &["route"],
            ),
            upstream_errors: counter(
                &r,
                "sigproxy_upstream_errors_total",
                "Failures talking to the upstream, by kind: connect, timeout, reset, tls",
                &["route", "kind"],
            ),
            signing_errors: counter(
                &r,
                "sigproxy_signing_errors_total",
                "Requests that could not be signed, by reason",
                &["route", "reason"],
            ),
            denied: counter(
                &r,
                "sigproxy_denied_requests_total",
                "Requests refused by access control, by reason: client_address, bearer_token, method, path",
                &["route", "reason"],
            ),
            upstream_retries: counter(
                &r,
                "sigproxy_upstream_retries_total",
                "Requests sent again, by reason: expired_token (AWS refused the credentials; re-signed with fresh ones)",
                &["route", "reason"],
            ),
            credentials_expiry: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "sigproxy_credentials_expiry_timestamp_seconds",
                        "When the credentials held by each set expire (Unix time)",
                    ),
                    &["credentials"],
                )
                .expect("valid metric"),
            ),
            credential_refreshes: counter(
                &r,
                "sigproxy_credential_refreshes_total",
                "Credential fetches, by result: success or failure",
                &["credentials", "result"],
            ),
            sts_duration: histogram(
                &r,
                "sigproxy_sts_request_duration_seconds",
                "How long fetching credentials took (source chain plus STS)",
                &["credentials"],
            ),
            connections: gauge(
                &r,
                "sigproxy_connections",
                "Client connections open on the traffic port (max_connections)",
            ),
            connections_refused: register(
                &r,
                IntCounter::new(
                    "sigproxy_connections_refused_total",
                    "Client connections refused with 503 because max_connections were open",
                )
                .expect("valid metric"),
            ),
            request_heads_refused: counter(
                &r,
                "sigproxy_request_heads_refused_total",
                "Connections closed before a request head was complete, by reason: timeout (request_header_timeout), too_large (max_header_bytes)",
                &["reason"],
            ),
            buffered_body_bytes: gauge(
                &r,
                "sigproxy_buffered_body_bytes",
                "Request body bytes reserved in memory for signing (max_buffered_body_bytes)",
            ),
            body_budget_refusals: register(
                &r,
                IntCounter::new(
                    "sigproxy_body_budget_refusals_total",
                    "Requests refused with 503 because max_buffered_body_bytes were in use",
                )
                .expect("valid metric"),
            ),
            config_reloads,
            config_last_reload_success,
            config_restart_required: gauge(
                &r,
                "sigproxy_config_restart_required",
                "1 while the configuration file holds changes only a restart applies (listen addresses, limits)",
            ),
            config_hash: register(
                &r,
                Gauge::new(
                    "sigproxy_config_hash",
                    "The first 48 bits of the SHA-256 of the configuration file in force, as a number",
                )
                .expect("valid metric"),
            ),
            tls_certificate_reloads: counter(
                &r,
                "sigproxy_tls_certificate_reloads_total",
                "TLS certificate files re-read after they changed, by listener (listen, admin_listen) and result: success, or failure (the previous certificate kept serving)",
                &["listener", "result"],
            ),
            tls_certificate_expiry: register(
                &r,
                GaugeVec::new(
                    Opts::new(
                        "sigproxy_tls_certificate_expiry_timestamp_seconds",
                        "When the certificate each TLS listener serves expires (its notAfter, Unix time)",
                    ),
                    &["listener"],
                )
                .expect("valid metric"),
            ),
            registry: r,
        }
    }

    /// The metrics in Prometheus' text format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding to memory cannot fail");
        out
    }

    /// Makes each credential set's refresh counters exist from the start, at zero. (A route's
    /// series come into being with its [`RouteMetrics`], when the router is built.)
    pub fn declare_credential_sets(&self, credential_sets: &[&str]) {
        for set in credential_sets {
            for result in ["success", "failure"] {
                self.credential_refreshes.with_label_values(&[set, result]);
            }
        }
    }
}

/// One route's series, looked up once rather than by label on every request.
#[derive(Debug, Clone)]
pub struct RouteMetrics {
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub in_flight: IntGauge,
    pub request_bytes: IntCounter,
    pub response_bytes: IntCounter,
}

impl Metrics {
    /// Drops every series labelled with one of `routes` (routes a reload removed or renamed),
    /// so that `/metrics` does not keep them forever. (A request that was under way on such a
    /// route when it was removed brings back its own count when it finishes.)
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
        ] {
            forget(family, routes);
        }
        forget(&self.request_duration, routes);
        forget(&self.upstream_duration, routes);
        forget(&self.in_flight, routes);
    }

    pub fn for_route(&self, route: &str) -> RouteMetrics {
        RouteMetrics {
            request_duration: self.request_duration.with_label_values(&[route]),
            upstream_duration: self.upstream_duration.with_label_values(&[route]),
            in_flight: self.in_flight.with_label_values(&[route]),
            request_bytes: self.request_bytes.with_label_values(&[route]),
            response_bytes: self.response_bytes.with_label_values(&[route]),
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
    /// A routed request also leaves its route's in-flight gauge.
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
        if done.route.is_some() {
            per_route.in_flight.dec();
        }
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
