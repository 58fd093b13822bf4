//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Labels are bounded: route and credential set *names* from the configuration, a fixed set of
//! methods, status codes, and fixed error kinds. Never paths, buckets or keys.

use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
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
    /// Connections closed because the client read nothing for `client_write_timeout`.
    pub client_write_timeouts: IntCounter,
    /// Requests cut because their body arrived slower than `min_request_body_rate`.
    pub request_body_timeouts: IntCounter,
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
    /// Requests to the credential endpoint, by result (see `credential_endpoint`).
    pub credential_endpoint_requests: IntCounterVec,
    /// Requests of an `access.clients` client for a route it may not use, by client.
    pub client_denied: IntCounterVec,
    /// Upgraded (WebSocket) connections: see [`websocket`].
    pub websocket: websocket::Families,
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
                        "When the credentials held by each set expire (Unix time); client: the client whose own session of a per_client set it is (empty for a set's shared session)",
                    ),
                    &["credentials", "client"],
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
                "Connections closed without a request head sigproxy could read, by reason: timeout (request_header_timeout), too_large (max_header_bytes), evicted (made room at max_connections), malformed (refused by the HTTP parser)",
                &["reason"],
            ),
            client_write_timeouts: register(
                &r,
                IntCounter::new(
                    "sigproxy_client_write_timeouts_total",
                    "Client connections closed because the client read nothing of its response for client_write_timeout",
                )
                .expect("valid metric"),
            ),
            request_body_timeouts: register(
                &r,
                IntCounter::new(
                    "sigproxy_request_body_timeouts_total",
                    "Requests cut (408, connection closed) because their body arrived slower than min_request_body_rate after request_body_timeout",
                )
                .expect("valid metric"),
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
            credential_endpoint_requests: counter(
                &r,
                "sigproxy_credential_endpoint_requests_total",
                "Requests to the credential endpoint, by result: served, missing_token, wrong_token, browser (Origin or a foreign Host), unavailable (the set holds no valid credentials), method, disabled",
                &["result"],
            ),
            client_denied: counter(
                &r,
                "sigproxy_client_denied_total",
                "Requests of an access.clients client for a route it may not use (or no route it may use matched), by client",
                &["client"],
            ),
            websocket: websocket::Families::new(&r),
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

    /// Makes each client's refusal counter exist from the start, at zero.
    pub fn declare_clients<'a>(&self, clients: impl IntoIterator<Item = &'a str>) {
        for client in clients {
            self.client_denied.with_label_values(&[client]);
        }
    }

    /// Removes the series of clients a reload removed.
    pub fn forget_clients<'a>(&self, clients: impl IntoIterator<Item = &'a str>) {
        for client in clients {
            let _ = self.client_denied.remove_label_values(&[client]);
        }
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

mod request;
pub mod websocket;
pub use request::{method_label, Finished, InFlight, RouteMetrics};

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
