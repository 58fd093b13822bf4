//! `access.clients` and `per_client` credential sets against moto's STS (auth enforced) and the
//! verifying Lambda stand-in: each client signs with its own STS session, named for it, and
//! only on its own routes.

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;

const ALPHA: &str = "alpha-token-5d1e0c9b7a3f";
const BETA: &str = "beta-token-8e2f4a6c0b1d";

fn tokens() -> Vec<(String, String)> {
    [("ALPHA_TOKEN", ALPHA), ("BETA_TOKEN", BETA)]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
}

/// One client entry (a YAML list item under `access.clients`).
fn client(name: &str, env: &str, routes: &str) -> String {
    format!("    - name: {name}\n      token_env: {env}\n      routes: [{routes}]\n")
}

/// The set `app`, one session per client assuming the test role.
fn per_client_role(peers: &Peers) -> String {
    format!(
        "credentials:\n  app:\n    per_client: true\n    assume_role:\n      role_arn: {}\n      external_id: {}\n      sts_endpoint: {}\n      sts_region: us-east-1\n",
        peers.get("role_arn"),
        peers.get("external_id"),
        peers.get("sts_endpoint"),
    )
}

/// Two signed Lambda routes, `fn` under /fn/ and `other` under /other/.
fn routes(peers: &Peers) -> String {
    let url = peers.get("lambda_url");
    let fn_route = route(
        "fn",
        url,
        "lambda",
        "    match: { path_prefix: /fn/ }\n    strip_prefix: true\n",
    );
    let other = route(
        "other",
        url,
        "lambda",
        "    match: { path_prefix: /other/ }\n    strip_prefix: true\n",
    );
    format!("routes:\n{fn_route}{other}")
}

fn config(peers: &Peers, clients: &str) -> String {
    format!(
        "access:\n  clients:\n{clients}{}{}",
        per_client_role(peers),
        routes(peers)
    )
}

fn as_client(proxy: &Proxy, path: &str, token: &str) -> Response {
    proxy.send(
        "GET",
        path,
        &[("Authorization", &format!("Bearer {token}"))],
        b"",
    )
}

/// The role session name the stand-in saw the request signed with.
fn session_of(proxy: &Proxy, path: &str, token: &str) -> String {
    let r = as_client(proxy, path, token);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), proxy.log());
    r.json()["session_name"].as_str().unwrap().to_string()
}

fn denied_count(proxy: &Proxy, client: &str) -> Option<f64> {
    proxy.metric("sigproxy_client_denied_total", &[("client", client)])
}

/// sigproxy with two clients: `alpha` (routes `fn` and `other`) and `beta` (`fn` only).
fn alpha_and_beta(peers: &Peers) -> Proxy {
    let clients = format!(
        "{}{}",
        client("alpha", "ALPHA_TOKEN", "fn, other"),
        client("beta", "BETA_TOKEN", "fn")
    );
    let mut env = peers.caller_env();
    env.extend(tokens());
    Proxy::start_ready(&config(peers, &clients), &env)
}

#[test]
fn each_client_signs_with_its_own_role_session_on_its_own_routes_only() {
    let peers = Peers::start();
    let proxy = alpha_and_beta(&peers);

    // CloudTrail (here: the stand-in, from moto's record of the session) names the client.
    assert_eq!(session_of(&proxy, "/fn/x", ALPHA), "alpha");
    assert_eq!(session_of(&proxy, "/fn/x", BETA), "beta");
    assert_eq!(session_of(&proxy, "/other/x", ALPHA), "alpha");
    let r = as_client(&proxy, "/fn/x", ALPHA).json();
    assert!(
        r["role_arn"]
            .as_str()
            .unwrap()
            .ends_with(":role/lambda-invoker"),
        "{r}"
    );
    // The client's token is sigproxy's: it never goes upstream.
    assert!(r["headers"]["authorization"]
        .as_str()
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256"));

    // beta may not use `other`: 403, counted for beta, and the answer names no route.
    assert_eq!(denied_count(&proxy, "beta"), Some(0.0));
    for path in ["/other/x", "/nowhere"] {
        let r = as_client(&proxy, path, BETA);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert_eq!(r.error_code(), "forbidden");
        let body = r.text();
        for name in ["other", "\"fn\"", "alpha"] {
            assert!(
                !body.contains(name),
                "{path}: the refusal names {name}: {body}"
            );
        }
    }
    assert_eq!(denied_count(&proxy, "beta"), Some(2.0));
    assert_eq!(denied_count(&proxy, "alpha"), Some(0.0));
    assert_eq!(
        proxy.metric(
            "sigproxy_denied_requests_total",
            &[("route", "other"), ("reason", "client_route")]
        ),
        Some(1.0)
    );

    // No token, or one no client holds: 401, as with the single token.
    assert_eq!(proxy.get("/fn/x").status, 401);
    assert_eq!(
        as_client(&proxy, "/fn/x", "gamma-token-000000000000").status,
        401
    );

    // Readiness and the expiry gauge list each client's session.
    let ready = proxy.admin_get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let sets = &ready.json()["credentials"];
    for name in ["alpha", "beta"] {
        assert_eq!(sets["app"]["clients"][name]["ready"], true, "{sets}");
        let expiry = [("credentials", "app"), ("client", name)];
        assert!(
            proxy
                .metric("sigproxy_credentials_expiry_timestamp_seconds", &expiry)
                .is_some_and(|at| at > 1.0e9),
            "no expiry for {name}"
        );
    }
    // The access log says which client asked.
    let log = proxy.log();
    assert!(
        log.lines()
            .any(|l| l.contains("status=403") && l.contains("client=\"beta\"")),
        "{log}"
    );
    for secret in [ALPHA, BETA] {
        assert!(!log.contains(secret), "the log holds a client's token");
    }
}

#[test]
fn a_federation_token_per_client_carries_the_clients_name_and_policy() {
    let peers = Peers::start();
    let own = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunctionUrl","Resource":"arn:aws:lambda:us-east-1:123456789012:function:alpha-*"}]}"#;
    let shared = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"lambda:InvokeFunctionUrl","Resource":"*"}]}"#;
    let sets = format!(
        "credentials:\n  app:\n    per_client: true\n    federation_token:\n      policy: '{shared}'\n      client_policies:\n        alpha: '{own}'\n      sts_endpoint: {}\n      sts_region: us-east-1\n",
        peers.get("sts_endpoint"),
    );
    let clients = format!(
        "{}{}",
        client("alpha", "ALPHA_TOKEN", "fn"),
        client("beta", "BETA_TOKEN", "fn")
    );
    let text = format!("access:\n  clients:\n{clients}{sets}{}", routes(&peers));
    let mut env = peers.caller_env();
    env.extend(tokens());
    let proxy = Proxy::start_ready(&text, &env);
    // moto hands every federated user the same example keys: the stand-in knows them as such.
    assert_eq!(session_of(&proxy, "/fn/x", ALPHA), "federation-token");
    assert_eq!(session_of(&proxy, "/fn/x", BETA), "federation-token");

    // What STS received: one call per client, its name and its policy.
    let calls = peers.stats()["federation_calls"].clone();
    let call_of = |name: &str| -> Value {
        calls
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no GetFederationToken for {name}: {calls}"))
    };
    assert_eq!(call_of("alpha")["policy"], own);
    assert_eq!(call_of("beta")["policy"], shared);
    let ready = proxy.admin_get("/readyz").json();
    assert_eq!(
        ready["credentials"]["app"]["clients"]["beta"]["ready"],
        true
    );
}

#[test]
fn a_reload_adds_and_removes_clients_and_their_sessions() {
    let peers = Peers::start();
    let mut env = peers.caller_env();
    env.extend(tokens());
    let proxy = Proxy::start_ready(&config(&peers, &client("alpha", "ALPHA_TOKEN", "fn")), &env);
    assert_eq!(session_of(&proxy, "/fn/x", ALPHA), "alpha");
    assert_eq!(as_client(&proxy, "/fn/x", BETA).status, 401);

    let path = proxy.config_path();
    let text = std::fs::read_to_string(path).unwrap();
    let both = text.replace(
        "  clients:\n",
        &format!("  clients:\n{}", client("beta", "BETA_TOKEN", "fn")),
    );
    std::fs::write(path, &both).unwrap();
    proxy.wait_for("beta's session", || {
        as_client(&proxy, "/fn/x", BETA).status == 200
    });
    assert_eq!(session_of(&proxy, "/fn/x", BETA), "beta");
    assert_eq!(session_of(&proxy, "/fn/x", ALPHA), "alpha");
    assert_eq!(denied_count(&proxy, "beta"), Some(0.0));

    // alpha removed: its token is refused, its session's series and counters are gone.
    let alpha = client("alpha", "ALPHA_TOKEN", "fn");
    std::fs::write(path, both.replace(&alpha, "")).unwrap();
    proxy.wait_for("alpha refused", || {
        as_client(&proxy, "/fn/x", ALPHA).status == 401
    });
    assert_eq!(session_of(&proxy, "/fn/x", BETA), "beta");
    let expiry = |name: &str| {
        proxy.metric(
            "sigproxy_credentials_expiry_timestamp_seconds",
            &[("credentials", "app"), ("client", name)],
        )
    };
    assert!(expiry("alpha").is_none());
    assert!(expiry("beta").is_some());
    assert!(denied_count(&proxy, "alpha").is_none());
    let ready = proxy.admin_get("/readyz").json();
    assert!(
        ready["credentials"]["app"]["clients"]["alpha"].is_null(),
        "{ready}"
    );
}

#[test]
fn the_credential_endpoint_gives_each_clients_token_its_own_session() {
    let peers = Peers::start();
    let port = free_port();
    let mut alpha = client("alpha", "ALPHA_TOKEN", "fn");
    alpha.push_str("      credential_endpoint: true\n");
    let clients = format!("{alpha}{}", client("beta", "BETA_TOKEN", "fn"));
    let text = format!(
        "credential_endpoint:\n  listen: 127.0.0.1:{port}\n  credentials: app\n{}",
        config(&peers, &clients)
    );
    let mut env = peers.caller_env();
    env.extend(tokens());
    let proxy = Proxy::start_ready(&text, &env);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("alpha-token");
    std::fs::write(&token_file, ALPHA).unwrap();

    let sdk = |program: &Path| {
        let mut cmd = std::process::Command::new(program);
        isolate_aws_env(&mut cmd, dir.path());
        cmd.env(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            format!("http://127.0.0.1:{port}/credentials"),
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)
        .stdin(Stdio::null());
        cmd
    };
    let out = sdk(&repo_root().join(".venv/bin/aws"))
        .args(["sts", "get-caller-identity", "--output", "text"])
        .args([
            "--query",
            "Arn",
            "--endpoint-url",
            peers.get("sts_endpoint"),
        ])
        .output()
        .unwrap();
    let arn = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(arn.ends_with(":assumed-role/lambda-invoker/alpha"), "{arn}");
    let out = sdk(&python())
        .args([
            "-c",
            "import sys, boto3\nprint(boto3.client('sts', endpoint_url=sys.argv[1]).get_caller_identity()['Arn'])",
            peers.get("sts_endpoint"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), arn);

    // beta's token is a client's, but not one the endpoint serves; no token at all is 401.
    let endpoint = format!("127.0.0.1:{port}").parse().unwrap();
    let get = |headers: &[(&str, &str)]| request(endpoint, "GET", "/credentials", headers, b"");
    let beta = get(&[("Authorization", BETA)]);
    assert_eq!(beta.status, 403, "{}", beta.text());
    assert!(!beta.text().contains("AccessKeyId"));
    assert_eq!(get(&[]).status, 401);
    let served = get(&[("Authorization", ALPHA)]);
    assert_eq!(served.status, 200);
    assert!(!proxy
        .log()
        .contains(served.json()["SecretAccessKey"].as_str().unwrap()));
}

#[test]
fn a_clients_rotated_token_file_is_put_in_force() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alpha-token");
    std::fs::write(&file, format!("{ALPHA}\n")).unwrap();
    let alpha = format!(
        "    - name: alpha\n      token_file: {}\n      routes: [fn]\n",
        file.display()
    );
    let proxy = Proxy::start_ready(&config(&peers, &alpha), &peers.caller_env());
    assert_eq!(session_of(&proxy, "/fn/x", ALPHA), "alpha");

    // The Secret is rotated; the configuration file is not touched, no SIGHUP is sent.
    let rotated = "alpha-rotated-token-77c1e9a0";
    std::fs::write(&file, rotated).unwrap();
    proxy.wait_for("the rotated token", || {
        as_client(&proxy, "/fn/x", rotated).status == 200
    });
    assert_eq!(as_client(&proxy, "/fn/x", ALPHA).status, 401);
    assert_eq!(session_of(&proxy, "/fn/x", rotated), "alpha");
}

#[test]
fn a_client_cannot_tell_another_clients_route_from_no_route_by_a_path_it_refuses() {
    let peers = Peers::start();
    let proxy = alpha_and_beta(&peers);

    // `/other%2Fx` spells alpha's route's prefix with an escaped '/': ambiguous, so a client
    // that may use `other` is told so (400); one that may not is refused as for a route that
    // does not exist, or it would learn that a route under /other/ exists.
    let alpha = as_client(&proxy, "/other%2Fx", ALPHA);
    assert_eq!(alpha.status, 400, "{}", alpha.text());
    let nowhere = as_client(&proxy, "/nowhere%2Fx", BETA);
    assert_eq!(nowhere.status, 403, "{}", nowhere.text());
    let other = as_client(&proxy, "/other%2Fx", BETA);
    assert_eq!(
        (other.status, other.text()),
        (nowhere.status, nowhere.text()),
        "beta's answer for alpha's route differs from its answer for no route"
    );
    assert_eq!(denied_count(&proxy, "beta"), Some(2.0));
    // Its own route's ambiguous spelling is still a 400.
    assert_eq!(as_client(&proxy, "/fn%2Fx", BETA).status, 400);
}
