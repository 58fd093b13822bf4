//! aws-sigv4-proxy's flags against the real peers: the verifying stand-in (botocore checks every
//! signature, for the service and region it is started with), moto S3 and STS. No file.

mod common;

use common::upstream::Upstream;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The caller's keys, and STS at the local moto (what `--role-arn` assumes through).
fn env(peers: &Peers) -> Vec<(String, String)> {
    let mut env = peers.caller_env();
    env.push((
        "AWS_ENDPOINT_URL_STS".into(),
        peers.get("sts_endpoint").into(),
    ));
    env
}

fn host_port(url: &str) -> &str {
    url.split("://").nth(1).unwrap()
}

/// One request with this exact `Host` (the harness's own helper always sends the address).
fn with_host(proxy: &Proxy, host: &str, path: &str) -> Response {
    let head = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\n");
    proxy
        .raw(format!("{head}Connection: close\r\n\r\n{{}}"))
        .expect("a response")
}

#[test]
fn every_route_flag_reaches_the_upstream_signed() {
    let peers = Peers::start();
    let role = peers.get("plain_role_arn").to_string();
    let host = host_port(peers.get("lambda_url")).to_string();
    #[rustfmt::skip]
    let args = [
        "--host", &host, "--upstream-url-scheme", "http", "--name", "lambda",
        "--region", "us-east-1", "--role-arn", &role,
        "--sign-host", "abc.lambda-url.us-east-1.on.aws",
        "--custom-headers", "x-a=1,x-b=2", "--strip", "x-remove", "-s", "x-gone",
        "--duplicate-headers", "user-agent", "--transport.idle-conn-timeout", "90s", "-v",
        // aws-sigv4-proxy's README strips what clients that sign themselves send.
        "-s", "Authorization", "-s", "X-Amz-Security-Token",
    ];
    let proxy = Proxy::start_flags(&args, &env(&peers));
    let r = proxy.send(
        "POST",
        "/invoke",
        &[
            ("User-Agent", "prometheus/2.53"),
            ("X-Remove", "1"),
            ("X-Gone", "1"),
            ("X-A", "mine"),
            ("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"),
            ("X-Amz-Security-Token", "the-clients-own"),
        ],
        b"{}",
    );
    // The stand-in (botocore) checked the signature: the client's own headers did not go.
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.log());
    let seen = r.json();
    assert_eq!(
        seen["role_arn"],
        role.as_str(),
        "signed with the assumed role"
    );
    let h = &seen["headers"];
    assert_eq!(h["host"], "abc.lambda-url.us-east-1.on.aws");
    assert_eq!(
        (h["x-a"].as_str(), h["x-b"].as_str()),
        (Some("1"), Some("2"))
    );
    assert!(
        h.get("x-remove").is_none() && h.get("x-gone").is_none(),
        "{h}"
    );
    assert_eq!(h["x-original-user-agent"], "prometheus/2.53");
    assert!(h["authorization"]
        .as_str()
        .unwrap()
        .contains("/us-east-1/lambda/aws4_request"));
    assert_ne!(h["x-amz-security-token"], "the-clients-own");
    // The same admin endpoints and metrics as a file's configuration.
    // (Counted once the response is logged, just after the client has it.)
    proxy.wait_for_metric(
        "sigproxy_requests_total",
        &[("route", "proxy"), ("code", "200")],
    );
}

/// The Helm sidecar recipes for Amazon Managed Prometheus and OpenSearch, with the stand-in
/// (started to accept that service and region) in AWS's place: `--sign-host` is AWS's name.
#[test]
fn the_amp_and_opensearch_sidecar_recipes_sign_for_their_service_and_region() {
    for (service, region, sign_host, named) in [
        (
            "aps",
            "us-west-2",
            "aps-workspaces.us-west-2.amazonaws.com",
            true,
        ),
        (
            "es",
            "eu-west-1",
            "search-logs-abc123.eu-west-1.es.amazonaws.com",
            false,
        ),
    ] {
        let peers = Peers::start_with(&["--service", service, "--region", region]);
        let role = peers.get("plain_role_arn").to_string();
        let host = host_port(peers.get("lambda_url")).to_string();
        let mut args = vec![
            "--host",
            &host,
            "--upstream-url-scheme",
            "http",
            "--sign-host",
            sign_host,
            "--role-arn",
            &role,
        ];
        // AMP's recipe names service and region; OpenSearch's leaves them to the host.
        if named {
            args.extend(["--name", service, "--region", region]);
        }
        let proxy = Proxy::start_flags(&args, &env(&peers));
        let r = proxy.send(
            "POST",
            "/workspaces/ws-1/api/v1/remote_write",
            &[],
            b"snappy",
        );
        assert_eq!(r.status, 200, "{service}: {}", r.text());
        let auth = r.json()["headers"]["authorization"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            auth.contains(&format!("/{region}/{service}/aws4_request")),
            "{auth}"
        );
    }
}

/// aws-sigv4-proxy's `--region` without `--name` is STS's region only: what is signed for is
/// read from the host (here `--sign-host`), as it was there.
#[test]
fn a_lone_region_is_sts_region_and_the_host_names_the_signing_region() {
    let peers = Peers::start_with(&["--service", "aps", "--region", "us-west-2"]);
    let role = peers.get("plain_role_arn").to_string();
    let host = host_port(peers.get("lambda_url")).to_string();
    #[rustfmt::skip]
    let args = [
        "--host", &host, "--upstream-url-scheme", "http",
        "--sign-host", "aps-workspaces.us-west-2.amazonaws.com",
        "--role-arn", &role, "--region", "eu-central-1",
    ];
    let proxy = Proxy::start_flags(&args, &env(&peers));
    let r = proxy.send("POST", "/api/v1/remote_write", &[], b"snappy");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.log());
    let auth = r.json()["headers"]["authorization"].to_string();
    assert!(auth.contains("/us-west-2/aps/aws4_request"), "{auth}");
    assert!(
        proxy
            .log()
            .contains("--region without --name: as in aws-sigv4-proxy"),
        "{}",
        proxy.log()
    );
}

#[test]
fn unsigned_payload_goes_to_s3_and_is_signed_as_such_for_any_service() {
    let peers = Peers::start();
    let role = peers.get("plain_role_arn").to_string();
    let moto = host_port(peers.get("sts_endpoint")).to_string();
    #[rustfmt::skip]
    let s3 = Proxy::start_flags(
        &["--host", &moto, "--upstream-url-scheme", "http", "--name", "s3", "--region", "us-east-1",
          "--role-arn", &role, "--unsigned-payload"],
        &env(&peers),
    );
    assert_eq!(
        s3.send("PUT", "/compat-bucket", &[], b"").status,
        200,
        "{}",
        s3.log()
    );
    let put = s3.send("PUT", "/compat-bucket/greeting.txt", &[], b"hello");
    assert_eq!(put.status, 200, "{}", put.text());
    let get = s3.get("/compat-bucket/greeting.txt");
    assert_eq!((get.status, get.body.as_slice()), (200, &b"hello"[..]));

    // Lambda too gets UNSIGNED-PAYLOAD, as aws-sigv4-proxy sends it; the stand-in (which
    // wants the body's hash) says so.
    let host = host_port(peers.get("lambda_url")).to_string();
    #[rustfmt::skip]
    let lambda = Proxy::start_flags(
        &["--host", &host, "--upstream-url-scheme", "http", "--name", "lambda", "--region",
          "us-east-1", "--role-arn", &role, "--unsigned-payload"],
        &env(&peers),
    );
    let r = lambda.send("POST", "/", &[], b"{}");
    assert_eq!(r.status, 403);
    let body = r.text();
    assert!(
        body.contains("X-Amz-Content-Sha256 does not match the body"),
        "{body}"
    );
}

#[test]
fn no_verify_ssl_accepts_the_tls_stand_in_only_when_given() {
    let dir = tempfile::tempdir().unwrap();
    let peers = Peers::start_with(&["--tls-dir", dir.path().to_str().unwrap()]);
    let role = peers.get("plain_role_arn").to_string();
    let host = host_port(peers.get("lambda_tls_url")).to_string();
    for (extra, want) in [(None, 502), (Some("--no-verify-ssl"), 200)] {
        let mut args = vec![
            "--host",
            &host,
            "--name",
            "lambda",
            "--region",
            "us-east-1",
            "--role-arn",
            &role,
        ];
        args.extend(extra);
        let proxy = Proxy::start_flags(&args, &env(&peers));
        let r = proxy.send("POST", "/", &[], b"{}");
        assert_eq!(r.status, want, "{extra:?}: {}", r.text());
        if extra.is_some() {
            assert!(
                proxy.log().contains("insecure_skip_verify"),
                "warned at start"
            );
        }
    }
}

#[test]
fn without_host_only_aws_endpoints_and_listed_hosts_are_upstreams() {
    let peers = Peers::start();
    let role = peers.get("plain_role_arn").to_string();
    let listed = host_port(peers.get("lambda_url")).to_string();
    #[rustfmt::skip]
    let proxy = Proxy::start_flags(
        &["--upstream-url-scheme", "http", "--name", "lambda", "--region", "us-east-1",
          "--role-arn", &role, "--allowed-upstream-hosts", &listed],
        &env(&peers),
    );
    let r = with_host(&proxy, &listed, "/listed");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["host"], listed.as_str());
    assert_eq!(r.json()["path"], "/listed");

    let before = peers.stats();
    let other_port = format!("127.0.0.1:{}", free_port());
    for host in [
        "attacker.example",
        "localhost",
        other_port.as_str(),
        "fn.internal",
    ] {
        let r = with_host(&proxy, host, "/x");
        assert_eq!(r.status, 421, "{host}: {}", r.text());
        assert_eq!(r.error_code(), "misdirected_request", "{host}");
    }
    let after = peers.stats();
    assert_eq!(before["verified"], after["verified"], "nothing was sent");
    assert_eq!(before["rejected"], after["rejected"], "nothing was sent");
}

/// sigproxy with its own `--port` (not the harness's), for the listening rules.
fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sigproxy")
}

#[test]
fn a_bare_port_binds_loopback_and_says_how_to_listen_wider() {
    let port = free_port();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
    cmd.args([
        "--host",
        "abc.lambda-url.us-east-1.on.aws",
        "--port",
        &format!(":{port}"),
    ])
    .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
    .stdin(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap());
    isolate_aws_env(&mut cmd, dir.path());
    let mut child = cmd.spawn().unwrap();
    let admin_addr = format!("127.0.0.1:{admin}").parse().unwrap();
    let healthy = poll(Duration::from_secs(20), || {
        try_request(admin_addr, "GET", "/healthz", &[], b"").is_some_and(|r| r.status == 200)
    });
    assert!(healthy, "{}", std::fs::read_to_string(&log).unwrap());
    // The listening socket is 127.0.0.1's, not every interface's.
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let listening: Vec<&str> = tcp
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|local| local.ends_with(&format!(":{port:04X}")))
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(listening, [format!("0100007F:{port:04X}")], "{tcp}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("sigproxy listens on loopback"), "{text}");
    assert!(text.contains(&format!("--port 0.0.0.0:{port}")), "{text}");
}

#[test]
fn a_wide_port_needs_a_guard_and_a_file_excludes_the_flags() {
    let port = format!("0.0.0.0:{}", free_port());
    let open = run(&["--host", "abc.lambda-url.us-east-1.on.aws", "--port", &port]);
    assert_eq!(open.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&open.stderr);
    assert!(
        stderr.contains(&format!(
            "command line: --port: listen {port} is not loopback"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("Set --allowed-clients (CIDRs) or --bearer-token-file"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a-token-of-enough-length").unwrap();
    #[rustfmt::skip]
    let guarded = run(&["--check", "--host", "abc.lambda-url.us-east-1.on.aws", "--port", &port,
                        "--bearer-token-file", token.to_str().unwrap()]);
    assert!(
        guarded.status.success(),
        "{}",
        String::from_utf8_lossy(&guarded.stderr)
    );
    let stdout = String::from_utf8_lossy(&guarded.stdout);
    assert!(
        stdout.contains("command line: OK (1 routes, 1 credential sets)"),
        "{stdout}"
    );

    let both = run(&[
        "-c",
        "config/lambda.yaml",
        "--host",
        "abc.lambda-url.us-east-1.on.aws",
    ]);
    assert_eq!(both.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&both.stderr);
    assert!(stderr.contains("use one or the other"), "{stderr}");
}

/// With `--name` and `--region` and no `--host`, a `Host` whose right end is an AWS name but
/// whose URL host is another (`127.0.0.1#.s3.amazonaws.com`) must not turn sigproxy into an open
/// relay carrying its credentials: a listener standing in for that other host sees nothing.
#[test]
fn a_host_that_only_ends_in_an_aws_name_reaches_nothing() {
    let listener = Upstream::builder().silent().start();
    let port = listener.addr.port();
    #[rustfmt::skip]
    let proxy = Proxy::start_flags(
        &["--name", "s3", "--region", "us-east-1"],
        &static_keys("AKIDRELAYTEST", "relay-test-secret"),
    );
    let hosts = [
        "127.0.0.1#.s3.amazonaws.com".to_string(),
        "127.0.0.1/.s3.amazonaws.com".to_string(),
        format!("[127.0.0.1:{port}/.s3.amazonaws.com]"),
        format!("[localhost:{port}/.execute-api.us-east-1.amazonaws.com]"),
        "localhost/.s3.amazonaws.com".to_string(),
    ];
    for host in &hosts {
        let r = with_host(&proxy, host, "/k");
        assert!(r.status >= 400, "{host}: {}", r.status);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        listener.connections(),
        0,
        "sigproxy connected to the host hidden in the Host header"
    );
}

/// Two aws-sigv4-proxy sidecars in one pod (say AMP and OpenSearch), switched to sigproxy by the
/// image alone: aws-sigv4-proxy has no admin port, so neither opens one, and the second starts.
/// A forward proxy in the environment is said to go unused, its value (a password) unsaid.
#[test]
fn two_flag_sidecars_start_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut children = Vec::new();
    let mut logs = Vec::new();
    let ports = [free_port(), free_port()];
    for (i, (port, host)) in ports
        .iter()
        .zip([
            "aps-workspaces.us-west-2.amazonaws.com",
            "search-logs-abc123.eu-west-1.es.amazonaws.com",
        ])
        .enumerate()
    {
        let log = dir.path().join(format!("log{i}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigproxy"));
        cmd.args(["--host", host, "--port", &format!(":{port}")])
            .env(
                "HTTPS_PROXY",
                "http://proxy-user:proxy-secret@127.0.0.1:3128",
            )
            .stdin(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        isolate_aws_env(&mut cmd, dir.path());
        children.push(cmd.spawn().unwrap());
        logs.push(log);
    }
    let listening = |port: u16| {
        try_request(
            format!("127.0.0.1:{port}").parse().unwrap(),
            "GET",
            "/",
            &[],
            b"",
        )
        .is_some()
    };
    let both = poll(Duration::from_secs(20), || {
        ports.iter().all(|p| listening(*p))
    });
    let alive: Vec<bool> = children
        .iter_mut()
        .map(|c| c.try_wait().unwrap().is_none())
        .collect();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text: Vec<String> = logs
        .iter()
        .map(|l| std::fs::read_to_string(l).unwrap())
        .collect();
    assert!(
        both && alive == [true, true],
        "{alive:?}\n{}",
        text.join("\n")
    );
    for t in &text {
        assert!(t.contains("admin=none (no --admin-listen)"), "{t}");
        assert!(
            t.contains("HTTPS_PROXY is set, but sigproxy does not go through"),
            "{t}"
        );
        assert!(!t.contains("proxy-secret"), "{t}");
    }
}
