//! Unit tests of the metric registry (`metrics.rs`).

use super::*;

#[test]
fn renders_every_family_in_text_format() {
    let m = metrics();
    m.declare_credential_sets(&["app"]);
    let _ = m.for_route("orders");
    m.requests
        .with_label_values(&["orders", "GET", "200"])
        .inc();
    m.request_duration
        .with_label_values(&["orders"])
        .observe(0.01);
    m.upstream_duration
        .with_label_values(&["orders"])
        .observe(0.01);
    m.upstream_errors
        .with_label_values(&["orders", "connect"])
        .inc();
    m.signing_errors
        .with_label_values(&["orders", "credentials_unavailable"])
        .inc();
    m.denied.with_label_values(&["orders", "path"]).inc();
    m.upstream_retries
        .with_label_values(&["orders", "expired_token"])
        .inc();
    m.credentials_expiry
        .with_label_values(&["app", ""])
        .set(1.0);
    m.sts_duration.with_label_values(&["app"]).observe(0.1);
    m.config_reloads.with_label_values(&["success"]).inc();
    let text = String::from_utf8(m.render()).unwrap();
    for family in [
        "sigproxy_requests_total",
        "sigproxy_request_duration_seconds_bucket",
        "sigproxy_upstream_duration_seconds_bucket",
        "sigproxy_requests_in_flight",
        "sigproxy_request_bytes_total",
        "sigproxy_response_bytes_total",
        "sigproxy_upstream_errors_total",
        "sigproxy_signing_errors_total",
        "sigproxy_denied_requests_total",
        "sigproxy_upstream_retries_total",
        "sigproxy_credentials_expiry_timestamp_seconds",
        "sigproxy_credential_refreshes_total",
        "sigproxy_sts_request_duration_seconds_bucket",
        "sigproxy_build_info",
        "sigproxy_config_reloads_total",
    ] {
        assert!(
            text.contains(&format!("\n{family}{{")),
            "{family} missing:\n{text}"
        );
    }
    assert!(text.contains(
        "sigproxy_credentials_expiry_timestamp_seconds{client=\"\",credentials=\"app\"} 1"
    ));
    m.request_heads_refused
        .with_label_values(&["timeout"])
        .inc();
    let text = String::from_utf8(m.render()).unwrap();
    assert!(text.contains("\nsigproxy_request_heads_refused_total{reason=\"timeout\"}"));
    for family in [
        "sigproxy_connections",
        "sigproxy_connections_refused_total",
        "sigproxy_buffered_body_bytes",
        "sigproxy_body_budget_refusals_total",
        "sigproxy_config_last_reload_success_timestamp_seconds",
        "sigproxy_config_restart_required",
        "sigproxy_config_hash",
    ] {
        assert!(text.contains(&format!("\n{family} ")), "{family} missing");
    }
    for result in ["success", "failure"] {
        let series = format!("\nsigproxy_config_reloads_total{{result=\"{result}\"}} ");
        assert!(text.contains(&series), "{series} missing");
    }
}

#[test]
fn unknown_methods_share_one_label() {
    assert_eq!(method_label(&http::Method::GET), "GET");
    let custom = http::Method::from_bytes(b"PROPFIND").unwrap();
    assert_eq!(method_label(&custom), "other");
}

#[test]
fn a_request_leaves_the_in_flight_gauge_however_it_ends() {
    let gauge = IntGauge::new("in_flight_test", "a test gauge").unwrap();
    let answered = InFlight::enter(&gauge);
    let other = InFlight::enter(&gauge);
    assert_eq!(gauge.get(), 2);
    drop(answered);
    assert_eq!(gauge.get(), 1);
    // A task that panics drops what it held as it unwinds.
    let held = std::panic::AssertUnwindSafe(other);
    let unwound = std::panic::catch_unwind(move || {
        let _request = held;
        panic!("a bug in a request's path");
    });
    assert!(unwound.is_err());
    assert_eq!(gauge.get(), 0);
}
