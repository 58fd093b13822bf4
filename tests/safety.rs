//! Safe by default: each way a stranger could act with sigproxy's credentials, sent as the exact
//! request bytes an attacker would send, against the real peers (the verifying Lambda stand-in,
//! moto S3 with auth enforced). Each test asserts that nothing reached the upstream.

mod common;

use common::upstream::Upstream;
use common::*;

/// Sends raw request bytes on a fresh connection; the response.
fn raw(proxy: &Proxy, bytes: &str) -> Response {
    proxy.raw(bytes).expect("a response")
}

fn verified(peers: &Peers) -> u64 {
    peers.stats()["verified"].as_u64().unwrap()
}

#[test]
fn a_web_page_cannot_make_the_browser_use_the_proxy() {
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    let port = proxy.addr.port();
    let before = verified(&peers);
    let attacks = [
        // CSRF from a page on attacker.example to the README's setup: its Origin gives it away
        // (whatever its Host, which is checked after the token).
        (
            format!(
                "POST /fn/orders/run HTTP/1.1\r\nHost: attacker.example:{port}\r\nOrigin: http://attacker.example\r\nSec-Fetch-Site: cross-site\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
            403,
        ),
        // DNS rebinding: the page's own name re-pointed at 127.0.0.1, a same-origin read.
        (
            format!(
                "GET /fn/orders/1 HTTP/1.1\r\nHost: attacker.example:{port}\r\nSec-Fetch-Site: same-origin\r\n\r\n"
            ),
            421,
        ),
        // A page that knows to say localhost: its Origin still gives it away.
        (
            format!(
                "POST /fn/orders/run HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://attacker.example\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
            403,
        ),
        (
            format!(
                "POST /fn/orders/run HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: null\r\nContent-Length: 2\r\n\r\n{{}}"
            ),
            403,
        ),
        // An <img> or <script> tag: no Origin, but Sec-Fetch-Site says cross-site.
        (
            format!(
                "GET /fn/orders/1 HTTP/1.1\r\nHost: localhost:{port}\r\nSec-Fetch-Site: cross-site\r\nSec-Fetch-Mode: no-cors\r\n\r\n"
            ),
            403,
        ),
        // A CORS preflight is not forwarded either.
        (
            format!(
                "OPTIONS /fn/orders/run HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://attacker.example\r\nAccess-Control-Request-Method: DELETE\r\n\r\n"
            ),
            403,
        ),
        // An absolute-form target names the host that counts.
        (
            format!(
                "GET http://attacker.example:{port}/fn/orders/1 HTTP/1.1\r\nHost: attacker.example:{port}\r\n\r\n"
            ),
            421,
        ),
    ];
    for (request, status) in &attacks {
        let r = raw(&proxy, request);
        assert_eq!(r.status, *status, "{request}");
        assert!(r.json()["error"].get("route").is_none(), "{request}");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{request}"
        );
    }
    // One that disagrees with its Host is refused by pingora's parser (sigproxy's JSON 400).
    let r = raw(
        &proxy,
        &format!("GET http://attacker.example:{port}/fn/orders/1 HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "bad_request");
    assert_eq!(verified(&peers), before, "an attack reached the upstream");
    proxy.wait_for_metric("sigproxy_denied_requests_total", &[("reason", "origin")]);
    assert_eq!(proxy.denied("fn", "host"), Some(2.0));
    assert_eq!(proxy.denied("fn", "origin"), Some(5.0));

    // curl, SDKs and server-side apps send neither header: served as before, and an
    // upstream's `Access-Control-Allow-Origin: *` does not reach them.
    let r = raw(
        &proxy,
        &format!(
            "GET /fn/orders/1 HTTP/1.1\r\nHost: localhost:{port}\r\nUser-Agent: curl/8\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(verified(&peers), before + 1);
}

#[test]
fn a_listed_origin_gets_cors_answered_by_sigproxy_and_others_still_do_not() {
    let peers = Peers::start();
    let config = format!(
        r#"access:
  allowed_origins: [https://app.example.com]
  allowed_hosts: [sigproxy.tools.svc]
{}"#,
        peers.lambda_config("")
    );
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    // A name that is not loopback, over plain HTTP, without a token: said at start.
    assert!(
        proxy
            .log()
            .contains("a web page can make blind GET requests through sigproxy by those names"),
        "{}",
        proxy.log()
    );
    let before = verified(&peers);
    let preflight = raw(
        &proxy,
        "OPTIONS /fn/orders HTTP/1.1\r\nHost: sigproxy.tools.svc:8080\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: PUT\r\nAccess-Control-Request-Headers: content-type\r\n\r\n",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("content-type")
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("PUT")));
    assert_eq!(verified(&peers), before, "the preflight went upstream");

    let r = raw(
        &proxy,
        "POST /fn/orders HTTP/1.1\r\nHost: sigproxy.tools.svc\r\nOrigin: https://app.example.com\r\nSec-Fetch-Site: cross-site\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "sigproxy's own answer, not the upstream's '*'"
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert!(r.header("vary").is_some_and(|v| v.contains("Origin")));
    assert_eq!(verified(&peers), before + 1);

    // Errors reach the listed page too, so it can read why.
    let r = raw(
        &proxy,
        "GET /nowhere HTTP/1.1\r\nHost: sigproxy.tools.svc\r\nOrigin: https://app.example.com\r\n\r\n",
    );
    assert_eq!((r.status, r.error_code().as_str()), (404, "no_route"));
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );

    for request in [
        "POST /fn/orders HTTP/1.1\r\nHost: sigproxy.tools.svc\r\nOrigin: https://app.example.com.attacker.example\r\nContent-Length: 0\r\n\r\n",
        "POST /fn/orders HTTP/1.1\r\nHost: sigproxy.tools.svc\r\nOrigin: http://app.example.com\r\nContent-Length: 0\r\n\r\n",
    ] {
        assert_eq!(raw(&proxy, request).status, 403, "{request}");
    }
    let r = raw(
        &proxy,
        "GET /fn/orders HTTP/1.1\r\nHost: sigproxy.tools.svc.attacker.example\r\n\r\n",
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (421, "misdirected_request")
    );
    assert_eq!(verified(&peers), before + 1);
}

#[test]
fn a_path_that_leaves_its_prefix_never_matches_that_route() {
    let peers = Peers::start();
    let v1 = "    match: { path_prefix: /v1/ }\n    strip_prefix: true\n";
    let lambda = format!("{}/prod", peers.get("lambda_url"));
    let config = peers.config(&route("v1", &lambda, "lambda", v1));
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    let before = verified(&peers);
    for (request, status, code) in [
        // Today this went out as /prod/other-stage/x.
        (
            "GET /v1/%2E%2E/other-stage/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            404,
            "no_route",
        ),
        (
            "GET /v1/../other-stage/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            404,
            "no_route",
        ),
        (
            "GET /v1/..%2Fother-stage/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            400,
            "bad_request",
        ),
        (
            "GET /v1%2F..%2F..%2Fother-stage/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            400,
            "bad_request",
        ),
    ] {
        let r = raw(&proxy, request);
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (status, code),
            "{request}"
        );
    }
    assert_eq!(verified(&peers), before, "a climb reached the upstream");
    // What stays inside the prefix goes where it should, spelt any way.
    let r = raw(
        &proxy,
        "GET /%76%31/a/./b/../c HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/prod/a/c");
    // The access log names the path that went upstream (written just after the answer).
    let logged = || proxy.log().contains("path=\"/prod/a/c\"");
    poll(std::time::Duration::from_secs(5), logged);
    assert!(logged(), "{}", proxy.log());
}

/// moto S3 behind one unrestricted route, to set up and inspect what the attacks try to touch.
fn s3_route(peers: &Peers, name: &str, prefix: &str, allow: &str) -> String {
    route(
        name,
        peers.get("sts_endpoint"),
        "s3",
        &format!("{prefix}{allow}"),
    )
}

fn s3_proxy(peers: &Peers, routes: &str) -> Proxy {
    Proxy::start_ready(&peers.config(routes), &peers.caller_env())
}

#[test]
fn an_escaped_bucket_name_cannot_skip_a_restrictive_s3_route() {
    let peers = Peers::start();
    let admin = s3_proxy(&peers, &s3_route(&peers, "all", "", ""));
    assert_eq!(admin.send("PUT", "/my-bucket", &[], b"").status, 200);
    let payroll = b"name,salary\nada,1\n";
    let put = admin.send("PUT", "/my-bucket/secret/payroll.csv", &[], payroll);
    assert_eq!(put.status, 200, "{}", put.text());

    let routes = format!(
        "{}{}",
        s3_route(
            &peers,
            "reports",
            "    match: { path_prefix: /my-bucket/ }\n",
            r#"    allow:
      - methods: [GET, HEAD]
"#
        ),
        s3_route(&peers, "all", "", "")
    );
    let proxy = s3_proxy(&peers, &routes);
    for request in [
        "DELETE /%6Dy-bucket/secret/payroll.csv HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "DELETE /my%2Dbucket/secret/payroll.csv HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "DELETE /%6d%79%2d%62%75%63%6b%65%74/secret/payroll.csv HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ] {
        let r = raw(&proxy, request);
        assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"), "{request}");
        assert_eq!(r.json()["error"]["route"], "reports", "{request}");
    }
    let still = admin.get("/my-bucket/secret/payroll.csv");
    assert_eq!(still.status, 200, "the object was deleted");
    assert_eq!(still.body, payroll);
    // Reads are what the route is for, however the bucket is spelt.
    let r = raw(
        &proxy,
        "GET /%6Dy-bucket/secret/payroll.csv HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, payroll);
}

#[test]
fn s3_allow_rules_see_what_a_request_does_not_just_its_path() {
    let peers = Peers::start();
    let admin = s3_proxy(&peers, &s3_route(&peers, "all", "", ""));
    assert_eq!(admin.send("PUT", "/my-bucket", &[], b"").status, 200);
    let payroll = b"name,salary\nada,1\n";
    for (key, body) in [
        ("secret/payroll.csv", &payroll[..]),
        ("incoming/a.csv", b"a"),
        ("tmp/a", b"a"),
        ("tmp/b", b"b"),
    ] {
        let r = admin.send("PUT", &format!("/my-bucket/{key}"), &[], body);
        assert_eq!(r.status, 200, "{key}: {}", r.text());
    }
    // A rule an operator would write to let an app drop files in incoming/.
    let rule = r#"    allow:
      - methods: [GET, PUT, POST, DELETE]
        paths: ["/my-bucket/incoming/**", "/my-bucket/*"]
"#;
    let proxy = s3_proxy(&peers, &s3_route(&peers, "drop", "", rule));
    let delete_body = "<Delete><Object><Key>secret/payroll.csv</Key></Object></Delete>";
    let attacks = [
        (
            "PUT /my-bucket/incoming/a.csv?acl HTTP/1.1\r\nHost: localhost\r\nx-amz-acl: public-read\r\nContent-Length: 0\r\n\r\n".to_string(),
            403,
        ),
        (
            "PUT /my-bucket/incoming/b.csv HTTP/1.1\r\nHost: localhost\r\nx-amz-acl: public-read\r\nContent-Length: 1\r\n\r\nb".to_string(),
            403,
        ),
        (
            "PUT /my-bucket/incoming/a.csv?tagging HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_string(),
            403,
        ),
        (
            "POST /my-bucket/incoming/a.csv?select&select-type=2 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n".to_string(),
            403,
        ),
        (
            "PUT /my-bucket/?policy HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}".to_string(),
            403,
        ),
        (
            "GET /my-bucket/?list-type=2 HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
            403,
        ),
        (
            "DELETE /my-bucket/?publicAccessBlock HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(),
            403,
        ),
        (
            format!(
                "POST /my-bucket/?delete HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{delete_body}",
                delete_body.len()
            ),
            403,
        ),
        // Copying a secret into the allowed prefix needs a read of the secret.
        (
            "PUT /my-bucket/incoming/copy.csv HTTP/1.1\r\nHost: localhost\r\nx-amz-copy-source: my-bucket/secret/payroll.csv\r\nContent-Length: 0\r\n\r\n".to_string(),
            403,
        ),
        // A second source, unchecked before: refused, whatever the first says.
        (
            "PUT /my-bucket/incoming/copy.csv HTTP/1.1\r\nHost: localhost\r\nx-amz-copy-source: my-bucket/incoming/a.csv\r\nx-amz-copy-source: my-bucket/secret/payroll.csv\r\nContent-Length: 0\r\n\r\n".to_string(),
            400,
        ),
    ];
    for (request, status) in &attacks {
        let r = raw(&proxy, request);
        assert_eq!(r.status, *status, "{request}\n{}", r.text());
    }
    // Nothing happened at S3.
    let still = admin.get("/my-bucket/secret/payroll.csv");
    assert_eq!((still.status, still.body.as_slice()), (200, &payroll[..]));
    let acl = String::from_utf8(admin.get("/my-bucket/incoming/a.csv?acl").body).unwrap();
    assert!(!acl.contains("AllUsers"), "{acl}");
    assert_eq!(
        admin.get("/my-bucket?policy").status,
        404,
        "a bucket policy was set"
    );
    assert_eq!(admin.get("/my-bucket/incoming/copy.csv").status, 404);
    assert_eq!(admin.get("/my-bucket/incoming/b.csv").status, 404);
    proxy.wait_for_metric("sigproxy_denied_requests_total", &[("reason", "path")]);
    assert_eq!(proxy.denied("drop", "action"), Some(8.0));
    assert_eq!(proxy.denied("drop", "path"), Some(1.0));
    // What the rule is for still works.
    assert_eq!(
        proxy
            .send("PUT", "/my-bucket/incoming/new.csv", &[], b"n")
            .status,
        200
    );
    assert_eq!(proxy.get("/my-bucket/incoming/new.csv").body, b"n");
    assert_eq!(
        proxy
            .send(
                "PUT",
                "/my-bucket/incoming/copy.csv",
                &[("x-amz-copy-source", "my-bucket/incoming/a.csv")],
                b""
            )
            .status,
        200
    );

    // A rule in IAM's words: DeleteObjects is checked key by key.
    let rules = r#"    allow:
      - actions: [s3:DeleteObject]
        paths: ["/my-bucket/tmp/**"]
"#;
    let cleaner = s3_proxy(&peers, &s3_route(&peers, "cleaner", "", rules));
    let delete = |keys: &[&str]| {
        let objects: String = keys
            .iter()
            .map(|k| format!("<Object><Key>{k}</Key></Object>"))
            .collect();
        let body = format!("<Delete>{objects}</Delete>");
        raw(
            &cleaner,
            &format!(
                "POST /my-bucket/?delete HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let r = delete(&["tmp/a", "secret/payroll.csv"]);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(admin.get("/my-bucket/tmp/a").status, 200);
    assert_eq!(admin.get("/my-bucket/secret/payroll.csv").status, 200);
    let r = delete(&["tmp/a", "tmp/b"]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(admin.get("/my-bucket/tmp/a").status, 404);
    assert_eq!(admin.get("/my-bucket/tmp/b").status, 404);
    assert_eq!(admin.get("/my-bucket/secret/payroll.csv").status, 200);
}

#[test]
fn a_copy_cannot_pull_an_object_from_outside_the_route() {
    let peers = Peers::start();
    let admin = s3_proxy(&peers, &s3_route(&peers, "all", "", ""));
    for bucket in ["/my-bucket", "/secret-bucket"] {
        assert_eq!(admin.send("PUT", bucket, &[], b"").status, 200);
    }
    let payroll = b"name,salary\nada,1000000\n";
    assert_eq!(
        admin
            .send("PUT", "/secret-bucket/payroll.csv", &[], payroll)
            .status,
        200
    );
    // A route confined to one bucket by its upstream's base path, with a methods-only rule.
    let routes = format!(
        r#"  - name: files
    match: {{ path_prefix: /files/ }}
    strip_prefix: true
    upstream: {}/my-bucket
    service: s3
    region: us-east-1
    credentials: app
    allow:
      - methods: [GET, PUT]
"#,
        peers.get("sts_endpoint")
    );
    let proxy = s3_proxy(&peers, &routes);
    let r = raw(
        &proxy,
        "PUT /files/docs/stolen.csv HTTP/1.1\r\nHost: localhost\r\nx-amz-copy-source: secret-bucket/payroll.csv\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(admin.get("/my-bucket/docs/stolen.csv").status, 404);
    // Copies inside the bucket are what the rule grants.
    assert_eq!(proxy.send("PUT", "/files/a.csv", &[], b"a").status, 200);
    let copy = proxy.send(
        "PUT",
        "/files/b.csv",
        &[("x-amz-copy-source", "my-bucket/a.csv")],
        b"",
    );
    assert_eq!(copy.status, 200, "{}", copy.text());
}

#[test]
fn a_route_whose_bucket_is_named_by_sign_host_keeps_copies_in_that_bucket() {
    // Reached by address (a VPC endpoint, a tunnel), the bucket named by the host S3 reads:
    // `sign_host`. Paths there are keys of that one bucket, and so is every copy's source.
    let peers = Peers::start();
    let admin = s3_proxy(&peers, &s3_route(&peers, "all", "", ""));
    for bucket in ["/my-bucket", "/secret-bucket"] {
        assert_eq!(admin.send("PUT", bucket, &[], b"").status, 200);
    }
    let payroll = b"name,salary\nada,1000000\n";
    let put = admin.send("PUT", "/secret-bucket/payroll.csv", &[], payroll);
    assert_eq!(put.status, 200, "{}", put.text());
    let routes = format!(
        r#"  - name: one
    match: {{ path_prefix: /one/ }}
    strip_prefix: true
    upstream: {}
    sign_host: my-bucket.s3.us-east-1.amazonaws.com
    service: s3
    region: us-east-1
    credentials: app
"#,
        peers.get("sts_endpoint")
    );
    let proxy = s3_proxy(&peers, &routes);
    // The route does reach my-bucket by its host name.
    assert_eq!(proxy.send("PUT", "/one/a.csv", &[], b"a").status, 200);
    assert_eq!(admin.get("/my-bucket/a.csv").text(), "a");
    let stolen = proxy.send(
        "PUT",
        "/one/stolen.csv",
        &[("x-amz-copy-source", "secret-bucket/payroll.csv")],
        b"",
    );
    assert_eq!(stolen.status, 403, "{}", stolen.text());
    assert!(
        stolen.text().contains("x-amz-copy-source"),
        "{}",
        stolen.text()
    );
    assert_eq!(proxy.denied("one", "copy_source"), Some(1.0));
    assert_eq!(admin.get("/my-bucket/stolen.csv").status, 404);
    // A copy inside the bucket is what the route reaches.
    let copy = proxy.send(
        "PUT",
        "/one/b.csv",
        &[("x-amz-copy-source", "my-bucket/a.csv")],
        b"",
    );
    assert_eq!(copy.status, 200, "{}", copy.text());
    assert_eq!(admin.get("/my-bucket/b.csv").text(), "a");
}

#[test]
fn the_admin_port_answers_probes_not_web_pages_and_errors_name_no_route_before_the_token() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let token = "safety-test-token-0123456789";
    std::fs::write(dir.path().join("token"), token).unwrap();
    let config = format!(
        r#"access:
  bearer_token_file: {}
{}"#,
        dir.path().join("token").display(),
        peers.lambda_config("")
    );
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    let admin = |request: &str| {
        let mut conn = Conn::open(proxy.admin);
        conn.write(request.as_bytes());
        conn.read().expect("an answer")
    };
    let port = proxy.admin.port();
    let probe = admin(&format!(
        "GET /readyz HTTP/1.1\r\nHost: 10.1.2.3:{port}\r\nUser-Agent: kube-probe/1.33\r\n\r\n"
    ));
    assert_eq!(probe.status, 200);
    let rebound = admin(&format!(
        "GET /readyz HTTP/1.1\r\nHost: attacker.example:{port}\r\nSec-Fetch-Site: same-origin\r\n\r\n"
    ));
    assert_eq!(rebound.status, 421);
    let page = admin(&format!(
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://attacker.example\r\n\r\n"
    ));
    assert_eq!(page.status, 403);
    assert!(!page.text().contains("sigproxy_"));

    // Without the token, no error names the route, whatever else is wrong with the request.
    for request in [
        "TRACE /fn/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST /fn/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /fn/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
    ] {
        let r = raw(&proxy, request);
        assert!(r.status >= 400, "{request}");
        assert!(r.json()["error"].get("route").is_none(), "{request}");
    }
}

/// On a query- or JSON-protocol API an allow list's action is read only from a request shaped
/// so that the service reads that action and nothing else. moto's STS (auth enforced) runs an
/// `Action` from any body, whatever its content type: a request showing the granted operation
/// in `X-Amz-Target` or the query while its body names another is refused before it is signed.
#[test]
fn a_granted_action_cannot_carry_another_one_to_a_query_protocol_api() {
    let peers = Peers::start();
    let allow = "    match: { path_prefix: /sts/ }\n    strip_prefix: true\n    allow:\n      \
                 - actions: [sts:GetCallerIdentity]\n        paths: [\"/\"]\n";
    let sts = route("sts", peers.get("sts_endpoint"), "sts", allow);
    let config = format!("credentials:\n  app:\n    source: default\nroutes:\n{sts}");
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
    // The granted operation as the AWS CLI sends it: signed, and moto runs it.
    let ok = proxy.send(
        "POST",
        "/sts/",
        &[FORM],
        b"Action=GetCallerIdentity&Version=2011-06-15",
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(
        ok.text().contains("GetCallerIdentityResponse"),
        "{}",
        ok.text()
    );
    let target = (
        "x-amz-target",
        "AWSSecurityTokenServiceV20110615.GetCallerIdentity",
    );
    let granted = "/sts/?Action=GetCallerIdentity&Version=2011-06-15";
    let other = b"Action=GetSessionToken&Version=2011-06-15";
    for (method, path, headers) in [
        (
            "POST",
            "/sts/",
            vec![target, ("content-type", "text/plain")],
        ),
        ("POST", "/sts/", vec![target]),
        (
            "POST",
            "/sts/",
            vec![target, ("content-type", "application/x-amz-json-1.1")],
        ),
        ("GET", granted, vec![FORM]),
        ("PUT", granted, vec![FORM]),
        ("POST", granted, vec![("content-type", "text/plain")]),
        ("POST", granted, vec![("content-type", "text/plain"), FORM]),
    ] {
        let r = proxy.send(method, path, &headers, other);
        let what = format!("{method} {path} {headers:?}");
        assert!(!r.text().contains("SessionToken"), "{what}: {}", r.text());
        assert_eq!(r.status, 400, "{what}: {}", r.text());
    }
}

/// A REST API (EKS here) acts on its method and path: an `Action` or `X-Amz-Target` that names
/// a granted operation does not make `DELETE /clusters/prod` a `DescribeCluster`.
#[test]
fn a_named_action_does_not_grant_a_rest_request() {
    let upstream = Upstream::builder().record().start();
    let allow =
        "    allow:\n      - actions: [eks:DescribeCluster]\n        paths: [\"/clusters/**\"]\n";
    let eks = route("eks", &upstream.url(), "eks", allow);
    let config = format!("credentials:\n  app:\n    source: default\nroutes:\n{eks}");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDEKS", "secret"));
    let json = ("content-type", "application/x-amz-json-1.1");
    for (method, path, headers) in [
        ("DELETE", "/clusters/prod?Action=DescribeCluster", vec![]),
        ("GET", "/clusters/prod?Action=DescribeCluster", vec![]),
        (
            "DELETE",
            "/clusters/prod",
            vec![("x-amz-target", "X.DescribeCluster"), json],
        ),
        (
            "POST",
            "/clusters/prod/updates",
            vec![("x-amz-target", "X.DescribeCluster"), json],
        ),
    ] {
        let r = proxy.send(method, path, &headers, b"");
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text());
    }
    assert_eq!(upstream.requests().len(), 0, "nothing reached the upstream");
}

/// A caller without the token cannot tell a routed host name from another (both `401`), nor
/// can a client with `access.clients` tell another client's route host from an unrouted one
/// (both the same `403`); the owner is served.
#[test]
fn host_names_are_not_revealed_to_a_caller_without_the_right_token() {
    let upstream = Upstream::builder().record().start();
    let dir = tempfile::tempdir().unwrap();
    let token = |name: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{name}-token-0123456789abcdef")).unwrap();
        path.display().to_string()
    };
    let (alpha, beta) = (token("alpha"), token("beta"));
    let url = upstream.url();
    let config = format!(
        "access:\n  allowed_origins: [https://app.example.com]\n  clients:\n    - name: alpha\n      token_file: {alpha}\n      routes: [hidden, open]\n    \
         - name: beta\n      token_file: {beta}\n      routes: [open]\nroutes:\n  - name: hidden\n    \
         match: {{ host: hidden-orders.internal }}\n    upstream: {url}\n  - name: open\n    \
         match: {{ path_prefix: /open/ }}\n    upstream: {url}\n"
    );
    let proxy = Proxy::start_ready(&config, &[]);
    let ask = |host: &str, bearer: Option<&str>| {
        let auth = bearer.map_or(String::new(), |b| {
            format!("Authorization: Bearer {b}-token-0123456789abcdef\r\n")
        });
        raw(
            &proxy,
            &format!("GET /x HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n"),
        )
    };
    let (routed, unrouted) = ("hidden-orders.internal", "other.internal");
    for bearer in [None, Some("nobody")] {
        let (a, b) = (ask(routed, bearer), ask(unrouted, bearer));
        assert_eq!((a.status, b.status), (401, 401), "{bearer:?}");
        assert_eq!(a.body, b.body);
    }
    // A listed page's preflight, which comes without a token, is answered alike too.
    let preflight = |host: &str| {
        raw(
            &proxy,
            &format!(
                "OPTIONS /x HTTP/1.1\r\nHost: {host}\r\nOrigin: https://app.example.com\r\n\
                 Access-Control-Request-Method: GET\r\n\r\n"
            ),
        )
        .status
    };
    assert_eq!((preflight(routed), preflight(unrouted)), (204, 204));
    let (a, b) = (ask(routed, Some("beta")), ask(unrouted, Some("beta")));
    assert_eq!((a.status, b.status), (403, 403));
    assert_eq!(a.body, b.body);
    assert_eq!(upstream.requests().len(), 0, "nothing reached the upstream");
    assert_eq!(ask(routed, Some("alpha")).status, 200);
    assert_eq!(ask(unrouted, Some("alpha")).status, 403);
}

/// A gzip body is read as the service reads it, inflated: a JSON request granted by its
/// `X-Amz-Target` whose compressed body reads as a form naming another `Action` (which moto
/// runs) is refused, and the same request with an innocent body goes through.
#[test]
fn a_compressed_body_cannot_hide_another_action() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let gzip = |text: &str| {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        gz.finish().unwrap()
    };
    let upstream = Upstream::builder().record().start();
    let allow = "    allow:\n      - actions: [sqs:ListQueues]\n";
    let sqs = route("sqs", &upstream.url(), "sqs", allow);
    let config = format!("credentials:\n  app:\n    source: default\nroutes:\n{sqs}");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDSQS", "secret"));
    let send = |encoding: &str, body: &[u8]| {
        let headers = [
            ("x-amz-target", "AmazonSQS.ListQueues"),
            ("content-type", "application/x-amz-json-1.0"),
            ("content-encoding", encoding),
        ];
        proxy.send("POST", "/", &headers, body).status
    };
    assert_eq!(send("gzip", &gzip(r#"{"QueueNamePrefix":"a"}"#)), 200);
    assert_eq!(upstream.requests().len(), 1);
    let hidden = gzip(r#"{"QueueUrl":"http://q/victim","x":"&Action=DeleteQueue&"}"#);
    assert_eq!(send("gzip", &hidden), 400);
    assert_eq!(send("br", b"\x0b\x01\x80{}\x03"), 400);
    assert_eq!(
        upstream.requests().len(),
        1,
        "a refused request reached the upstream"
    );
}

/// A route prefix that ends inside a segment (`/aa` of `/aa..;/secret`) leaves part of one once
/// stripped; joined to the base path it became a segment of its own (`/prod/app/..;/secret`),
/// which the checks of the client's path never saw and an upstream reads as a climb.
#[test]
fn a_prefix_ending_inside_a_segment_cannot_climb_out_of_the_base_path() {
    let peers = Peers::start();
    let open = Upstream::builder().record().start();
    let lambda = format!("{}/prod/app", peers.get("lambda_url"));
    let signed = "    match: { path_prefix: /aa }\n    strip_prefix: true\n    allow:\n      \
                  - methods: [GET]\n        paths: [/prod/app/**]\n";
    let pass = format!(
        "  - name: open\n    match: {{ path_prefix: /open }}\n    strip_prefix: true\n    \
         upstream: {}/internal/app\n",
        open.url()
    );
    let config = format!(
        "{}{pass}",
        peers.config(&route("aa", &lambda, "lambda", signed))
    );
    let proxy = Proxy::start_ready(&config, &peers.caller_env());
    let before = verified(&peers);
    for path in [
        "/aa..;/secret",
        "/aa%2e%2e;/secret",
        "/aa../secret",
        "/aa.;/x",
        "/open../admin",
        "/open..;/admin",
        "/open%2E%2E/admin",
        "/open.",
    ] {
        let r = raw(
            &proxy,
            &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(
            (r.status, r.error_code().as_str()),
            (400, "bad_request"),
            "{path}"
        );
    }
    assert_eq!(
        verified(&peers),
        before,
        "a climb reached the signed upstream"
    );
    assert!(open.requests().is_empty(), "a climb reached the upstream");
    // Inside the base path, a prefix ending inside a segment still goes where it did.
    let r = raw(
        &proxy,
        "GET /aa/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["path"], "/prod/app/x");
    let r = raw(
        &proxy,
        "GET /openx/y HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(open.requests()[0].target, "/internal/app/x/y");
}

/// The body an allow list reads must be the body the upstream reads. A `Connection` header
/// naming `Content-Encoding` had the check inflate a gzip body (`ListUsers`) that went upstream
/// without it, its raw bytes (the gzip header's comment) naming `CreateUser`; and a second gzip
/// member, which standard readers inflate, was never looked at.
#[test]
fn a_gzip_body_checked_is_the_body_sent() {
    use flate2::write::GzEncoder;
    use flate2::GzBuilder;
    use std::io::Write;
    let upstream = Upstream::builder().record().start();
    let allow = "    allow:\n      - actions: [iam:ListUsers]\n";
    let iam = route("iam", &upstream.url(), "iam", allow);
    let config = format!("credentials:\n  app:\n    source: default\nroutes:\n{iam}");
    let proxy = Proxy::start_ready(&config, &static_keys("AKIDIAM", "secret"));
    let listing = b"Action=ListUsers&Version=2010-05-08";
    let member = |text: &[u8], comment: &[u8]| {
        let mut gz = GzBuilder::new()
            .comment(comment)
            .write(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        gz.finish().unwrap()
    };
    let send = |extra: &[(&str, &str)], body: &[u8]| {
        let mut headers = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "gzip"),
        ];
        headers.extend_from_slice(extra);
        proxy.send("POST", "/", &headers, body)
    };
    let plain = member(listing, b"");
    assert_eq!(send(&[], &plain).status, 200);
    assert_eq!(upstream.requests().len(), 1);
    let hidden = member(listing, b"&Action=CreateUser&UserName=pwned&");
    let r = send(&[("connection", "content-encoding")], &hidden);
    assert_eq!((r.status, r.error_code().as_str()), (400, "bad_request"));
    let mut two = member(listing, b"");
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder
        .write_all(b"&Action=CreateUser&UserName=pwned")
        .unwrap();
    two.extend(encoder.finish().unwrap());
    let r = send(&[], &two);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        upstream.requests().len(),
        1,
        "a refused request reached the upstream"
    );
}
