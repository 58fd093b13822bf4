//! `--log-signing-process` and `--log-failed-requests` (and their `RUST_LOG` targets): the
//! canonical request and string to sign are logged without the session token, and upstream
//! failures with their status and AWS's error code. Against the botocore-verified Lambda
//! stand-in (403 to a request signed for the wrong region) and moto S3 (403 on a bucket the
//! role may not read).

mod common;

use common::*;

/// The usual Lambda route, one signed for the wrong region, one not signed at all (its answers
/// come through pingora's proxy loop, not the forwarder), and moto S3 under `/s3/`.
fn config(peers: &Peers) -> String {
    peers.lambda_config(&format!(
        r#"  - name: wrong-region
    match: {{ path_prefix: /wrong/ }}
    strip_prefix: true
    upstream: {lambda}
    service: lambda
    region: eu-west-1
    credentials: app
  - name: open
    match: {{ path_prefix: /open/ }}
    strip_prefix: true
    upstream: {lambda}
  - name: s3
    match: {{ path_prefix: /s3/ }}
    strip_prefix: true
    upstream: {s3}
    service: s3
    region: us-east-1
    credentials: app
"#,
        lambda = peers.get("lambda_url"),
        s3 = peers.get("sts_endpoint"),
    ))
}

/// The log's lines from one target.
fn lines<'a>(log: &'a str, target: &str) -> Vec<&'a str> {
    let marker = format!(" {target}: ");
    log.lines().filter(|l| l.contains(&marker)).collect()
}

#[test]
fn signing_and_failures_are_logged_on_request_without_secrets() {
    let peers = Peers::start();
    let flags = ["--log-signing-process", "--log-failed-requests"];
    let proxy = Proxy::start_with_args(&config(&peers), &peers.caller_env(), &flags);
    proxy.wait_ready();

    let ok = proxy.send("POST", "/fn/x?b=2&a=1", &[], b"payload");
    assert_eq!(ok.status, 200, "{}", ok.text());
    let token = ok.json()["headers"]["x-amz-security-token"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = proxy.get("/wrong/y");
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    assert_eq!(proxy.get("/open/z").status, 403);
    let denied = proxy.get(&format!("/s3/{}/secret.txt", peers.get("denied_bucket")));
    assert_eq!(denied.status, 403, "{}", denied.text());

    let log = proxy.log();
    let signing = lines(&log, "sigproxy::signing");
    let ours = signing
        .iter()
        .find(|l| l.contains(r#"canonical_request="POST\n/x\na=1&b=2\n"#))
        .unwrap_or_else(|| panic!("no canonical request for POST /x:\n{log}"));
    for part in [
        r"x-amz-security-token:<redacted>\n",
        r"host;x-amz-content-sha256;x-amz-date;x-amz-security-token\n",
        &common::sha256_hex(b"payload"),
        r#"string_to_sign="AWS4-HMAC-SHA256\n"#,
        r"/us-east-1/lambda/aws4_request\n",
    ] {
        assert!(ours.contains(part), "{part} missing from {ours}");
    }
    assert!(
        signing
            .iter()
            .any(|l| l.contains(r"/eu-west-1/lambda/aws4_request\n")),
        "the wrong region's string to sign:\n{log}"
    );

    let failed = lines(&log, "sigproxy::failed_requests");
    let find = |route: &str| {
        let route = format!("route=\"{route}\"");
        failed
            .iter()
            .find(|l| l.contains(&route))
            .unwrap_or_else(|| panic!("no failed-request line for {route}:\n{log}"))
            .to_string()
    };
    let line = find("wrong-region");
    for part in [
        "method=GET",
        "path=\"/y\"",
        "status=403",
        "code=\"AccessDeniedException\"",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    let line = find("open");
    for part in [
        "path=\"/z\"",
        "status=403",
        "code=\"AccessDeniedException\"",
    ] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    let line = find("s3");
    for part in ["status=403", "code=\"AccessDenied\"", "aws_request_id="] {
        assert!(line.contains(part), "{part} missing from {line}");
    }
    assert_eq!(failed.len(), 3, "only failures are logged:\n{log}");

    let secret = peers.get("secret_access_key");
    for (what, value) in [("session token", token.as_str()), ("secret key", secret)] {
        assert!(!log.contains(value), "the {what} was logged:\n{log}");
    }
    for never in ["Signature=", "authorization:", "Credential="] {
        assert!(!log.contains(never), "{never} was logged:\n{log}");
    }
}

#[test]
fn off_by_default_and_rust_log_turns_on_one_target() {
    let peers = Peers::start();
    let mut env = peers.caller_env();
    env.push(("RUST_LOG".into(), "info,sigproxy::signing=debug".into()));
    let with_env = Proxy::start(&config(&peers), &env);
    let plain = Proxy::start(&config(&peers), &peers.caller_env());
    for proxy in [&with_env, &plain] {
        proxy.wait_ready();
        assert_eq!(proxy.get("/wrong/y").status, 403);
    }
    let log = with_env.log();
    assert!(!lines(&log, "sigproxy::signing").is_empty(), "{log}");
    assert!(lines(&log, "sigproxy::failed_requests").is_empty(), "{log}");
    let log = plain.log();
    assert!(!log.contains("sigproxy::signing"), "{log}");
    assert!(!log.contains("sigproxy::failed_requests"), "{log}");
}
