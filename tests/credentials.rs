//! Credentials from moto's STS (auth enforced): refresh, failures, readiness, secrecy.

mod common;

use common::upstream::Upstream;
use common::*;
use std::time::{Duration, Instant};

#[test]
fn short_lived_credentials_are_refreshed_in_the_background_without_failed_requests() {
    // STS hands out credentials that live 6 s; the stand-in rejects expired ones.
    let peers = Peers::start_with(&["--short-credentials", "6"]);
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());

    let started = Instant::now();
    let mut requests = 0;
    while started.elapsed() < Duration::from_secs(16) {
        let (method, body) = if requests % 2 == 0 {
            ("GET", &b""[..])
        } else {
            ("POST", &b"refresh"[..])
        };
        let r = proxy.send(method, "/fn/tick", &[], body);
        assert_eq!(
            r.status,
            200,
            "request {requests} at {:?} failed: {}",
            started.elapsed(),
            r.text()
        );
        requests += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let stats = peers.stats();
    let keys = stats["keys_seen"].as_array().unwrap().len();
    let calls = stats["assume_role_calls"].as_u64().unwrap();
    assert!(
        keys >= 4,
        "only {keys} distinct credentials signed requests in 16 s: {stats}"
    );
    assert!(calls >= 4, "only {calls} AssumeRole calls: {stats}");
    assert_eq!(stats["rejected"], 0, "{stats}");
    assert!(requests > 50, "{requests}");
}

#[test]
fn sts_access_denied_means_503_and_not_ready_with_a_reason_naming_the_role() {
    let peers = Peers::start();
    let config = format!(
        "credentials:\n{}routes:\n{}",
        peers.credentials_yaml("app", "wrong-external-id"),
        route("fn", peers.get("lambda_url"), "lambda", "")
    );
    let proxy = Proxy::start(&config, &peers.caller_env());
    let ready = || {
        let r = proxy.admin_get("/readyz");
        let reason = r.json()["credentials"]["app"]["reason"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (r, reason)
    };
    poll(Duration::from_secs(15), || {
        ready().1.contains("AccessDenied")
    });
    let (r, reason) = ready();
    assert_eq!(r.status, 503);
    assert!(reason.contains(peers.get("role_arn")), "{reason}");
    assert!(reason.contains("AccessDenied"), "{reason}");

    for (method, body) in [("GET", &b""[..]), ("POST", &b"x"[..])] {
        let r = proxy.send(method, "/anything", &[], body);
        assert_eq!(r.status, 503, "{method}");
        assert_eq!(r.error_code(), "credentials_unavailable");
        // Whoever reaches the traffic port learns that, and no more: the role, its account,
        // the STS endpoint and STS's own words stay in the log and /readyz.
        let body = r.text().to_string();
        for secret in [
            peers.get("role_arn"),
            "AccessDenied",
            peers.get("sts_endpoint"),
            "123456789012",
            "arn:",
        ] {
            assert!(!body.contains(secret), "{secret} in {body}");
        }
        assert!(body.contains("fetching them failed"), "{body}");
    }
    assert_eq!(peers.stats()["verified"], 0, "nothing reached the upstream");
}

/// The set `app` assuming the test role, with more `role` keys, and one route to the stand-in.
fn assume_role_config(peers: &Peers, role: &str) -> String {
    let app = format!(
        r#"  app:
    assume_role:
      role_arn: {}
{role}"#,
        peers.get("role_arn")
    );
    let fn_route = route("fn", peers.get("lambda_url"), "lambda", "");
    format!("credentials:\n{app}routes:\n{fn_route}")
}

#[test]
fn unreachable_sts_at_start_leaves_the_proxy_up_but_not_ready() {
    let peers = Peers::start();
    let closed = free_port();
    let role = format!(
        r#"      sts_endpoint: http://127.0.0.1:{closed}
      sts_region: us-east-1
"#
    );
    let config = assume_role_config(&peers, &role);
    let proxy = Proxy::start(&config, &peers.caller_env());
    assert_eq!(proxy.admin_get("/healthz").status, 200, "alive");
    let r = proxy.admin_get("/readyz");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["ready"], false);
    // Traffic is accepted once the first fetch has failed (at most 10 s), then answered 503.
    let mut r = None;
    wait_until(Duration::from_secs(15), "the traffic port", || {
        r = try_request(proxy.addr, "GET", "/x", &[], b"");
        r.is_some()
    });
    let r = r.unwrap();
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "credentials_unavailable")
    );
}

#[test]
fn secrets_never_appear_in_logs_error_bodies_or_metrics() {
    let peers = Peers::start();
    let mut env = peers.caller_env();
    // Everything at trace, and by name the pingora modules that print whole request headers:
    // a more specific directive must not get past the guard either.
    env.push((
        "RUST_LOG".into(),
        "trace,pingora_proxy::proxy_h1=trace,pingora_core::protocols::http::v1::client=trace"
            .into(),
    ));
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &env);
    let ok = proxy.send("POST", "/fn/x", &[], b"payload");
    assert_eq!(ok.status, 200);
    assert_eq!(proxy.get("/fn/via-pingora-path").status, 200);
    let token = ok.json()["headers"]["x-amz-security-token"]
        .as_str()
        .unwrap()
        .to_string();
    let errors = [
        proxy.get("/missing"),
        proxy.send("POST", "/fn/__sleep?ms=2500", &[], b"x"),
    ];
    let log = proxy.log();
    assert!(
        log.contains("credentials refreshed"),
        "trace log was captured"
    );
    let user_secret = peers.get("secret_access_key");
    assert!(
        !log.contains(user_secret),
        "the caller's secret key was logged"
    );
    let metrics = String::from_utf8(proxy.admin_get("/metrics").body).unwrap();
    assert!(
        metrics.contains("sigproxy_requests_total"),
        "metrics were read"
    );
    assert!(
        !metrics.contains(user_secret) && !metrics.contains(&token),
        "a secret is in the metrics"
    );
    if let Some(at) = log.find(&token) {
        let start = log[..at].rfind('\n').unwrap_or(0);
        panic!(
            "the session token was logged: {}",
            &log[start..(at + 200).min(log.len())]
        );
    }
    for e in errors {
        let body = e.text();
        assert!(
            !body.contains(user_secret) && !body.contains(&token),
            "{body}"
        );
    }
}

#[test]
fn sts_that_comes_back_is_retried_with_backoff_until_ready() {
    let peers = Peers::start();
    // STS is found through AWS_ENDPOINT_URL_STS and AWS_REGION, the standard variables.
    let port = free_port();
    let mut env = peers.caller_env();
    env.push((
        "AWS_ENDPOINT_URL_STS".into(),
        format!("http://127.0.0.1:{port}"),
    ));
    env.push(("AWS_REGION".into(), "us-east-1".into()));
    let role = format!("      external_id: {}\n", peers.get("external_id"));
    let config = assume_role_config(&peers, &role);
    let proxy = Proxy::start(&config, &env);
    let failed = poll(Duration::from_secs(30), || {
        proxy.log().contains("credential refresh failed")
    });
    assert!(failed, "no failed refresh logged:\n{}", proxy.log());
    assert_eq!(
        proxy.admin_get("/readyz").status,
        503,
        "STS is down: not ready"
    );
    assert_eq!(proxy.get("/x").status, 503);

    // STS comes back: the refresher's backoff retries find it without a restart.
    let _relay = Upstream::builder()
        .port(port)
        .relay_to(peers.addr_of("sts_endpoint"))
        .start();
    let came_back = Instant::now();
    proxy.wait_ready();
    assert!(came_back.elapsed() < Duration::from_secs(15));
    let r = proxy.get("/x");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn when_sts_goes_away_cached_credentials_serve_until_near_expiry_then_503() {
    // Credentials live 12 s; STS becomes unreachable right after the first fetch.
    let peers = Peers::start_with(&["--short-credentials", "12"]);
    let sts = Upstream::builder()
        .relay_to(peers.addr_of("sts_endpoint"))
        .start();
    let port = sts.addr.port();
    let role = format!(
        r#"      external_id: {}
      sts_endpoint: http://127.0.0.1:{port}
      sts_region: us-east-1
"#,
        peers.get("external_id")
    );
    let config = assume_role_config(&peers, &role);
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    let fetched = Instant::now();
    sts.refuse(true);

    // Until a second before expiry every request is signed with the cached credentials.
    let mut served = 0;
    while fetched.elapsed() < Duration::from_secs(9) {
        let r = proxy.get("/x");
        assert_eq!(r.status, 200, "at {:?}: {}", fetched.elapsed(), r.text());
        served += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served > 20, "{served}");
    assert!(
        proxy.log().contains("credential refresh failed"),
        "the refresh should have been tried and failed:\n{}",
        proxy.log()
    );
    // After expiry: 503, saying why, and not ready.
    while fetched.elapsed() < Duration::from_secs(13) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = proxy.get("/x");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "credentials_unavailable")
    );
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("expired"), "{message}");
    assert_eq!(proxy.admin_get("/readyz").status, 503);
    assert_eq!(peers.stats()["rejected"], 0, "nothing expired was sent");
}

#[test]
fn a_request_whose_token_aws_calls_expired_is_signed_afresh_and_sent_once_more() {
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    let key_of = |r: &Response| {
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["access_key_id"].as_str().unwrap().to_string()
    };
    let first = key_of(&proxy.get("/fn/before"));
    let expire = || {
        let r = request(
            peers.lambda_addr(),
            "POST",
            "/__control/expire-keys",
            &[],
            b"",
        );
        assert_eq!(r.status, 200);
    };

    // The stand-in now answers 403 ExpiredTokenException for the key sigproxy holds, as Lambda
    // does when a session token has expired early (revoked sessions, clock skew).
    expire();
    let second = key_of(&proxy.get("/fn/after-expiry"));
    assert_ne!(first, second, "the retry used new credentials");

    // A body is replayed too, byte for byte (its hash is in the new signature).
    expire();
    let body = bytes(4096);
    let r = proxy.send("PUT", "/fn/with-body", &[], &body);
    let third = key_of(&r);
    assert_ne!(second, third);
    assert_eq!(r.json()["body_sha256"], sha256_hex(&body));

    // A POST must not run twice: only AWS's own front end (an AWS name over checked TLS) is
    // believed when it says the credentials were refused; this stand-in is not one, and a
    // handler that ran could say the same words. The refusal goes back to the client.
    expire();
    let r = proxy.send("POST", "/fn/once", &[], b"charge=100");
    assert_eq!(r.status, 403, "{}", r.text());
    // Nor a request a web framework would take for a POST: an override header, `_method`.
    let r = proxy.send(
        "GET",
        "/fn/once",
        &[("X-HTTP-Method-Override", "POST")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = proxy.send("PUT", "/fn/once?_method=PATCH", &[], b"x");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = proxy.send(
        "GET",
        "/fn/once",
        &[("X_HTTP_METHOD_OVERRIDE", "POST")],
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());

    let stats = peers.stats();
    assert_eq!(stats["expired_rejections"], 6, "{stats}");
    let retries = proxy.metric(
        "sigproxy_upstream_retries_total",
        &[("route", "fn"), ("reason", "expired_token")],
    );
    assert_eq!(retries, Some(2.0));
}

/// A stand-in STS answering every call `200` with `body` (XML).
fn sts_answering(body: String) -> Upstream {
    Upstream::builder()
        .answer(move |_| {
            common::upstream::Reply::ok(body.clone()).header("content-type", "text/xml")
        })
        .start()
}

/// The set `app` assuming a role through `sts`, signing route `fn` to `lambda`.
fn assume_role_through(sts: &Upstream, lambda: &Upstream) -> String {
    format!(
        r#"credentials:
  app:
    source: default
    assume_role:
      role_arn: arn:aws:iam::123456789012:role/r
      sts_endpoint: {sts}
      sts_region: us-east-1
routes:
{route}"#,
        sts = sts.url(),
        route = route("fn", &lambda.url(), "lambda", "")
    )
}

#[test]
fn an_sts_answer_that_cannot_be_read_puts_no_secret_in_logs_or_readyz() {
    // An STS (or a proxy in front of it) answering 200 with credentials whose expiry does not
    // parse: the SDK refuses the answer, and its error carries the raw response, body and all.
    const SECRET: &str = "LeakedSecretKey0123456789abcdefghijklmnop";
    const TOKEN: &str = "LeakedSessionToken0123456789abcdefghijklmnop";
    let body = format!(
        r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAUNREADABLE000001</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}</SessionToken><Expiration>not-a-date</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"#
    );
    let sts = sts_answering(body);
    let lambda = Upstream::builder().start();
    let config = assume_role_through(&sts, &lambda);
    let env = static_keys("AKIASOURCEKEY0000001", "source-secret-never-logged");
    let proxy = Proxy::start(&config, &env);
    let failed = poll(Duration::from_secs(30), || {
        proxy.log().contains("credential refresh failed")
    });
    let log = proxy.log();
    assert!(failed, "no failed refresh logged:\n{log}");
    let readyz = proxy.admin_get("/readyz");
    assert_eq!(readyz.status, 503);
    let reason = readyz.text();
    assert!(reason.contains("AssumeRole"), "{reason}");
    for secret in [SECRET, TOKEN, "source-secret-never-logged"] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
        assert!(!reason.contains(secret), "{secret} is in /readyz: {reason}");
    }
}

#[test]
fn credentials_that_arrive_expired_are_a_failure_retried_with_backoff() {
    // This host's clock ahead of AWS's by more than the session's lifetime: STS's answer is
    // good, its credentials expired by the time they arrive. Before, each such fetch counted as
    // a success and was repeated twice a second.
    let body = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult><Credentials><AccessKeyId>ASIAEXPIREDONARRIVAL</AccessKeyId><SecretAccessKey>secret-expired-on-arrival</SecretAccessKey><SessionToken>token-expired-on-arrival</SessionToken><Expiration>2001-01-01T00:00:00Z</Expiration></Credentials><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser></AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>"#;
    let sts = sts_answering(body.to_string());
    let lambda = Upstream::builder().start();
    let config = assume_role_through(&sts, &lambda);
    let proxy = Proxy::start(
        &config,
        &static_keys("AKIASOURCEKEY0000002", "source-secret"),
    );
    let refreshes = |result: &str| {
        proxy
            .metric(
                "sigproxy_credential_refreshes_total",
                &[("credentials", "app"), ("result", result)],
            )
            .unwrap_or(0.0)
    };
    proxy.wait_for("a failed refresh", || refreshes("failure") >= 1.0);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        refreshes("success"),
        0.0,
        "expired credentials counted as fetched"
    );
    // Backoff (1 s, 2 s, ...), not twice a second: at most 4 in about 5 s.
    let failures = refreshes("failure");
    assert!((1.0..=4.0).contains(&failures), "{failures} fetches");
    let readyz = proxy.admin_get("/readyz");
    assert_eq!(readyz.status, 503);
    assert!(readyz.text().contains("clock"), "{}", readyz.text());
    assert_eq!(proxy.get("/x").status, 503);
}

#[test]
fn the_sdks_own_warnings_about_an_unreadable_sts_answer_hold_no_secret() {
    // The default chain's web identity provider (IRSA) calling an STS that answers 200 with
    // credentials whose expiry does not parse: aws-config itself logs the error at warn, its
    // raw response (secret key and session token) included, unless sigproxy withholds it.
    const SECRET: &str = "WebIdentityLeakedSecret0123456789abcdefghij";
    const TOKEN: &str = "WebIdentityLeakedToken0123456789abcdefghijk";
    let body = format!(
        r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAWEBIDENTITY00001</AccessKeyId><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}</SessionToken><Expiration>2030-13-45T00:00:00Z</Expiration></Credentials><SubjectFromWebIdentityToken>s</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/r/s</Arn><AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"#
    );
    let sts = sts_answering(body);
    let lambda = Upstream::builder().start();
    let dir = tempfile::tempdir().unwrap();
    let jwt = dir.path().join("token");
    std::fs::write(&jwt, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln").unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_WEB_IDENTITY_TOKEN_FILE", jwt.display().to_string()),
        (
            "AWS_ROLE_ARN",
            "arn:aws:iam::123456789012:role/r".to_string(),
        ),
        ("AWS_ENDPOINT_URL_STS", sts.url()),
        ("AWS_REGION", "us-east-1".to_string()),
    ]
    .map(|(k, v)| (k.to_string(), v))
    .to_vec();
    let config = format!(
        "credentials:\n  app:\n    source: default\nroutes:\n{}",
        route("fn", &lambda.url(), "lambda", "")
    );
    let proxy = Proxy::start(&config, &env);
    proxy.wait_for("a failed refresh", || {
        proxy.log().contains("credential refresh failed")
    });
    let log = proxy.log();
    assert!(
        log.contains("aws_config"),
        "the SDK's own lines were captured:\n{log}"
    );
    let readyz = proxy.admin_get("/readyz").text();
    for secret in [SECRET, TOKEN] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
        assert!(!readyz.contains(secret), "{secret} is in /readyz: {readyz}");
    }
}
