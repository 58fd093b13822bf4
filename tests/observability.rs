//! Metrics and access logs, read the way an operator reads them: `/metrics` and the log stream.

mod common;

use common::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[test]
fn every_metric_moves_with_traffic() {
    let peers = Peers::start();
    let closed = free_port();
    let config = format!(
        r#"credentials:
{app}{bad}routes:
  - name: fn
    match: {{ path_prefix: /fn/ }}
    strip_prefix: true
    upstream: {lambda}
    service: lambda
    region: us-east-1
    credentials: app
    read_timeout: 1s
  - name: down
    match: {{ path_prefix: /down/ }}
    upstream: http://127.0.0.1:{closed}
    service: lambda
    region: us-east-1
    credentials: app
  - name: denied
    match: {{ path_prefix: /denied/ }}
    upstream: {lambda}
    service: lambda
    region: us-east-1
    credentials: bad
"#,
        app = peers.credentials_yaml("app", peers.get("external_id")),
        bad = peers.credentials_yaml("bad", "wrong-external-id"),
        lambda = peers.get("lambda_url"),
    );
    let proxy = Proxy::start(&config, &peers.caller_env());
    proxy.wait_for_metric(
        "sigproxy_credential_refreshes_total",
        &[("credentials", "bad"), ("result", "failure")],
    );
    proxy.wait_for_metric(
        "sigproxy_credential_refreshes_total",
        &[("credentials", "app"), ("result", "success")],
    );

    for _ in 0..3 {
        assert_eq!(proxy.get("/fn/a").status, 200);
    }
    assert_eq!(proxy.send("POST", "/fn/b", &[], &bytes(1000)).status, 200);
    assert_eq!(proxy.get("/fn/__bytes?n=5000").status, 200);
    assert_eq!(proxy.get("/nowhere").status, 404);
    assert_eq!(proxy.get("/down/x").status, 502);
    assert_eq!(proxy.get("/fn/__sleep?ms=1500").status, 504);
    assert_eq!(proxy.get("/denied/x").status, 503);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let hour = now + 3600.0;
    const MORE: f64 = f64::INFINITY;
    // (series, labels, lowest and highest value it may have)
    type Series<'a> = (&'a str, &'a [(&'a str, &'a str)], f64, f64);
    #[rustfmt::skip]
    let expected: [Series; 17] = [
        ("sigproxy_requests_total", &[("route", "fn"), ("method", "GET"), ("code", "200")], 4.0, 4.0),
        ("sigproxy_requests_total", &[("route", "fn"), ("method", "POST"), ("code", "200")], 1.0, 1.0),
        ("sigproxy_requests_total", &[("route", "unmatched"), ("code", "404")], 1.0, 1.0),
        ("sigproxy_requests_total", &[("route", "down"), ("code", "502")], 1.0, 1.0),
        ("sigproxy_requests_total", &[("route", "fn"), ("code", "504")], 1.0, 1.0),
        ("sigproxy_requests_total", &[("route", "denied"), ("code", "503")], 1.0, 1.0),
        ("sigproxy_request_duration_seconds_count", &[("route", "fn")], 6.0, 6.0),
        ("sigproxy_upstream_duration_seconds_count", &[("route", "fn")], 5.0, 5.0),
        ("sigproxy_requests_in_flight", &[("route", "fn")], 0.0, 0.0),
        ("sigproxy_request_bytes_total", &[("route", "fn")], 1000.0, 1000.0),
        ("sigproxy_response_bytes_total", &[("route", "fn")], 5000.0, MORE),
        ("sigproxy_upstream_errors_total", &[("route", "down"), ("kind", "connect")], 1.0, 1.0),
        ("sigproxy_upstream_errors_total", &[("route", "fn"), ("kind", "timeout")], 1.0, 1.0),
        ("sigproxy_signing_errors_total", &[("route", "denied"), ("reason", "credentials_unavailable")], 1.0, 1.0),
        ("sigproxy_credentials_expiry_timestamp_seconds", &[("credentials", "app")], hour - 120.0, hour + 120.0),
        ("sigproxy_sts_request_duration_seconds_count", &[("credentials", "app")], 1.0, MORE),
        ("sigproxy_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0, 1.0),
    ];
    for (name, labels, low, high) in expected {
        let value = proxy.metric(name, labels);
        assert!(
            value.is_some_and(|v| (low..=high).contains(&v)),
            "{name} {labels:?} is {value:?}, not in {low}..={high}"
        );
    }

    // Nothing unbounded in the labels: no paths, no query strings.
    let text = String::from_utf8(proxy.admin_get("/metrics").body).unwrap();
    assert!(
        !text.contains("__sleep") && !text.contains("/fn/"),
        "{text}"
    );
}

#[test]
fn json_access_log_has_one_line_per_request_with_the_aws_request_id() {
    let peers = Peers::start();
    let proxy = Proxy::start_with_args(
        &peers.lambda_config(""),
        &peers.caller_env(),
        &["--log-format", "json"],
    );
    proxy.wait_ready();
    assert_eq!(
        proxy.send("POST", "/fn/logged?x=1", &[], b"12345").status,
        200
    );
    assert_eq!(proxy.get("/missing").status, 404);
    std::thread::sleep(Duration::from_millis(200));
    let lines: Vec<serde_json::Value> = proxy
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["target"] == "access")
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ok = &lines[0];
    assert_eq!(ok["route"], "fn");
    assert_eq!(ok["method"], "POST");
    // The path as sent upstream (the route strips /fn/), never the query.
    assert_eq!(ok["path"], "/logged");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["upstream_status"], 200);
    assert_eq!(ok["bytes_in"], 5);
    assert!(ok["bytes_out"].as_u64().unwrap() > 0);
    assert!(ok["duration_ms"].as_f64().is_some());
    assert!(
        ok["aws_request_id"]
            .as_str()
            .unwrap()
            .starts_with("standin-"),
        "{ok}"
    );
    let missing = &lines[1];
    assert_eq!(missing["status"], 404);
    assert!(missing["error"].as_str().unwrap().contains("no route"));
    // pingora's own log records come through the same subscriber, under their own target,
    // and every line on stderr is one JSON object.
    let log = proxy.log();
    let all: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        all.iter().any(|v| v["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("pingora_core"))
            && v["message"].is_string()),
        "pingora's log is bridged: {log}"
    );
    assert!(all
        .iter()
        .all(|v| v["timestamp"].is_string() && v["level"].is_string()));
}

#[test]
fn plain_access_log_is_one_key_value_line_per_request() {
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    assert_eq!(proxy.send("POST", "/fn/plain", &[], b"123").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains(" access: "))
        .unwrap_or_else(|| panic!("no access line: {log}"));
    // `2026-11-24T09:08:03.926121Z  INFO access: request route="fn" method=POST ...`
    let (time, rest) = line.split_once("  INFO access: request ").expect(line);
    assert_eq!(time.len(), 27, "{line}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{line}");
    for field in [
        "route=\"fn\"",
        "method=POST",
        "path=\"/plain\"",
        "status=200",
        "bytes_in=3",
        "upstream_status=200",
        "aws_request_id=\"standin-",
    ] {
        assert!(rest.contains(field), "{field} missing: {line}");
    }
    let duration = rest
        .split(' ')
        .find_map(|f| f.strip_prefix("duration_ms="))
        .expect(line);
    assert!(duration.parse::<f64>().unwrap() > 0.0, "{line}");
    assert!(
        log.lines().any(|l| l.contains(" INFO pingora_core")),
        "{log}"
    );
}
