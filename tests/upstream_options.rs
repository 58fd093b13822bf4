//! A route's upstream options against the verifying Lambda stand-in (botocore checks every
//! signature): `sign_host`, `headers` edits, and `tls` (a CA of the test's own, a server name,
//! skipping verification).

mod common;

use common::*;

/// One route `fn` to `upstream`, signing with the set `app`, and `extra` keys.
fn route(peers: &Peers, upstream: &str, extra: &str) -> String {
    peers.config(&format!(
        r#"  - name: fn
    upstream: {upstream}
    credentials: app
    read_timeout: 5s
{extra}"#
    ))
}

#[test]
fn sign_host_and_header_edits_reach_the_upstream_signed() {
    let peers = Peers::start();
    // Connect to the stand-in, but sign for (and send as Host) the Function URL's own name:
    // service and region come from it.
    let extra = r#"    sign_host: abc123.lambda-url.us-east-1.on.aws
    headers:
      add: { x-team: orders, x-amz-meta-origin: sigproxy }
      remove: [x-remove-me]
      duplicate: [user-agent, x-user]
"#;
    let proxy = Proxy::start_ready(
        &route(&peers, peers.get("lambda_url"), extra),
        &peers.caller_env(),
    );
    let r = proxy.send(
        "POST",
        "/orders",
        &[
            ("User-Agent", "curl/8.5"),
            ("X-Remove-Me", "secret"),
            ("X-Team", "client's own"),
            ("X-Original-X-User", "forged"),
        ],
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = &r.json()["headers"];
    assert_eq!(seen["host"], "abc123.lambda-url.us-east-1.on.aws");
    assert_eq!(seen["x-team"], "orders");
    assert_eq!(seen["x-amz-meta-origin"], "sigproxy");
    assert!(seen.get("x-remove-me").is_none(), "{seen}");
    assert_eq!(seen["x-original-user-agent"], "curl/8.5");
    assert!(
        seen.get("x-original-x-user").is_none(),
        "a client cannot forge a copy"
    );
    // x-amz-* headers sigproxy adds are signed like any other.
    let signed = seen["authorization"].as_str().unwrap();
    assert!(signed.contains("x-amz-meta-origin"), "{signed}");
    assert!(
        signed.contains("/us-east-1/lambda/aws4_request"),
        "{signed}"
    );
}

#[test]
fn tls_upstreams_are_checked_against_the_route_ca_and_name() {
    let dir = tempfile::tempdir().unwrap();
    let peers = Peers::start_with(&["--tls-dir", dir.path().to_str().unwrap()]);
    let url = peers.get("lambda_tls_url").to_string();
    let ca = peers.get("ca_file").to_string();
    let signed = r#"    service: lambda
    region: us-east-1
"#;
    let cases = [
        (format!("{signed}    tls: {{ ca_file: {ca} }}\n"), 200),
        // The system's roots do not know the test CA.
        (signed.to_string(), 502),
        (
            format!("{signed}    tls: {{ ca_file: {ca}, server_name: tls.sigproxy.test }}\n"),
            200,
        ),
        (
            format!("{signed}    tls: {{ ca_file: {ca}, server_name: other.sigproxy.test }}\n"),
            502,
        ),
        (
            format!("{signed}    tls: {{ insecure_skip_verify: true }}\n"),
            200,
        ),
    ];
    for (extra, status) in &cases {
        let proxy = Proxy::start_ready(&route(&peers, &url, extra), &peers.caller_env());
        let before = peers.stats()["verified"].as_u64().unwrap();
        let r = proxy.get("/x");
        assert_eq!(r.status, *status, "{extra}: {}", r.text());
        let after = peers.stats()["verified"].as_u64().unwrap();
        assert_eq!(after - before, u64::from(*status == 200), "{extra}");
        if *status == 502 {
            assert_eq!(r.error_code(), "upstream_unreachable");
        }
        if extra.contains("insecure_skip_verify") {
            assert!(
                proxy.log().contains("tls.insecure_skip_verify"),
                "{}",
                proxy.log()
            );
        }
    }
}

/// A CA of its own (not the one that signed the stand-in's certificate) in `dir`/ca.pem.
fn other_ca(dir: &std::path::Path) -> String {
    tls_tool(&[serde_json::json!({"op": "ca", "dir": dir})]);
    dir.join("ca.pem").to_str().unwrap().to_string()
}

#[test]
fn a_reload_that_changes_the_ca_leaves_no_request_on_a_connection_the_old_one_checked() {
    let dir = tempfile::tempdir().unwrap();
    let peers = Peers::start_with(&["--tls-dir", dir.path().to_str().unwrap()]);
    let url = peers.get("lambda_tls_url").to_string();
    let ca = peers.get("ca_file").to_string();
    let other_dir = tempfile::tempdir().unwrap();
    let other = other_ca(other_dir.path());
    let with_ca = |ca: &str| {
        let extra = format!(
            "    service: lambda\n    region: us-east-1\n    upstream_idle_timeout: 10m\n    tls: {{ ca_file: {ca} }}\n"
        );
        route(&peers, &url, &extra)
    };
    let proxy = Proxy::start_ready(&with_ca(&ca), &peers.caller_env());
    assert_eq!(proxy.get("/x").status, 200);
    // The connection that answered is kept for the next request: the operator now trusts
    // another CA only (the old one was compromised, say).
    std::fs::write(proxy.config_path(), with_ca(&other)).unwrap();
    proxy.signal("HUP");
    proxy.wait_for("the reload", || {
        proxy.metric("sigproxy_config_reloads_total", &[("result", "success")]) == Some(1.0)
    });
    let before = peers.stats()["verified"].as_u64().unwrap();
    let r = proxy.get("/x");
    assert_eq!(
        r.status,
        502,
        "went on the old CA's connection: {}",
        r.text()
    );
    assert_eq!(r.error_code(), "upstream_unreachable");
    assert_eq!(peers.stats()["verified"].as_u64().unwrap(), before);
}
