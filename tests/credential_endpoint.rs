//! The credential endpoint, used by real SDKs (boto3, the AWS CLI) with the container-
//! credentials variables, against moto's STS: they act as the role session sigproxy holds.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const TOKEN: &str = "endpoint-token-3f9a1c7e5b2d";

/// sigproxy with the set `app` (the test role), a Lambda route, and the endpoint serving `set`
/// on `port` with the token in `token_file`.
fn start(peers: &Peers, set: &str, port: u16, token_file: &Path) -> Proxy {
    // No trailing newline: botocore sends the file's bytes as they are.
    std::fs::write(token_file, TOKEN).unwrap();
    let bad = peers.credentials_yaml("bad", "wrong-external-id");
    let base =
        peers
            .lambda_config("")
            .replacen("credentials:\n", &format!("credentials:\n{bad}"), 1);
    let config = format!(
        "credential_endpoint:\n  listen: 127.0.0.1:{port}\n  credentials: {set}\n  authorization_token_file: {}\n{base}",
        token_file.display(),
    );
    // Everything at trace: a log line holding the endpoint's token would hand out the role.
    let mut env = peers.caller_env();
    env.push(("RUST_LOG".into(), "trace,pingora_core::apps=trace".into()));
    Proxy::start(&config, &env)
}

/// sigproxy serving the set `app` on its endpoint, ready; with the peers and the directory of
/// the token file, which must live as long (bind `_peers` and `dir`: a field left to `..` is
/// dropped at once).
struct Running {
    _peers: Peers,
    dir: tempfile::TempDir,
    token_file: std::path::PathBuf,
    proxy: Proxy,
    endpoint: std::net::SocketAddr,
}

fn running() -> Running {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token_file = dir.path().join("token");
    let proxy = start(&peers, "app", port, &token_file);
    proxy.wait_ready();
    Running {
        _peers: peers,
        dir,
        token_file,
        proxy,
        endpoint: format!("127.0.0.1:{port}").parse().unwrap(),
    }
}

/// A command with nothing of the machine's AWS setup, pointed at the endpoint.
fn sdk(program: &Path, home: &Path, port: u16) -> Command {
    let mut cmd = Command::new(program);
    isolate_aws_env(&mut cmd, home);
    cmd.env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("http://127.0.0.1:{port}/credentials"),
    )
    .env("AWS_DEFAULT_REGION", "us-east-1")
    .stdin(Stdio::null());
    cmd
}

fn boto3_caller_arn(peers: &Peers, home: &Path, port: u16, token: &str) -> Output {
    sdk(&python(), home, port)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", token)
        .args([
            "-c",
            "import sys, boto3\n\
             sts = boto3.client('sts', endpoint_url=sys.argv[1])\n\
             print(sts.get_caller_identity()['Arn'])",
            peers.get("sts_endpoint"),
        ])
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The role session's ARN prefix: `arn:aws:sts::<account>:assumed-role/<role>/`.
fn session_prefix(peers: &Peers) -> String {
    let role = peers.get("role_arn");
    let (account, name) = role
        .strip_prefix("arn:aws:iam::")
        .and_then(|r| r.split_once(":role/"))
        .unwrap();
    format!("arn:aws:sts::{account}:assumed-role/{name}/")
}

#[test]
fn boto3_and_the_aws_cli_act_as_the_role_session_and_nothing_is_logged() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let token_file = dir.path().join("token");
    let proxy = start(&peers, "app", port, &token_file);
    proxy.wait_ready();

    let out = boto3_caller_arn(&peers, dir.path(), port, TOKEN);
    let arn = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(arn.starts_with(&session_prefix(&peers)), "{arn}");

    let cli = repo_root().join(".venv/bin/aws");
    let out = sdk(&cli, dir.path(), port)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file)
        .args(["sts", "get-caller-identity", "--output", "text"])
        .args([
            "--query",
            "Arn",
            "--endpoint-url",
            peers.get("sts_endpoint"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), arn);

    // What the endpoint serves, by hand: the four fields, no caching.
    let endpoint = format!("127.0.0.1:{port}").parse().unwrap();
    let r = request(
        endpoint,
        "GET",
        "/credentials",
        &[("Authorization", TOKEN)],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let doc = r.json();
    let secret = doc["SecretAccessKey"].as_str().unwrap().to_string();
    let session = doc["Token"].as_str().unwrap().to_string();
    assert!(
        doc["AccessKeyId"].as_str().unwrap().starts_with("ASIA"),
        "{doc}"
    );
    let expiration = doc["Expiration"].as_str().unwrap();
    assert!(
        expiration.len() == 20 && expiration.ends_with('Z') && expiration.as_bytes()[10] == b'T',
        "{expiration}"
    );
    assert!(secret.len() >= 20 && session.len() >= 20, "{doc}");
    assert!(
        proxy.metric(
            "sigproxy_credential_endpoint_requests_total",
            &[("result", "served")]
        ) >= Some(3.0)
    );

    let log = proxy.log();
    assert!(log.contains("credential request"), "{log}");
    for secret in [secret.as_str(), session.as_str(), TOKEN] {
        assert!(!log.contains(secret), "the log holds a secret: {log}");
    }
}

#[test]
fn without_the_token_or_from_a_page_nothing_is_served() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proxy = start(&peers, "app", port, &dir.path().join("token"));
    proxy.wait_ready();
    let endpoint = format!("127.0.0.1:{port}").parse().unwrap();
    let get = |headers: &[(&str, &str)]| request(endpoint, "GET", "/credentials", headers, b"");

    let missing = get(&[]);
    assert_eq!(missing.status, 401, "{}", missing.text());
    assert_eq!(missing.error_code(), "unauthorized");
    let wrong = get(&[("Authorization", "endpoint-token-3f9a1c7e5b2X")]);
    assert_eq!(wrong.status, 403, "{}", wrong.text());
    // The traffic port's scheme is not this protocol's: the token is the whole value.
    let bearer = get(&[("Authorization", &format!("Bearer {TOKEN}"))]);
    assert_eq!(bearer.status, 403);
    // Two Authorization headers: neither counts, whichever comes first.
    let wrong_then_right = get(&[
        ("Authorization", "endpoint-token-3f9a1c7e5b2X"),
        ("Authorization", TOKEN),
    ]);
    assert_eq!(wrong_then_right.status, 400, "{}", wrong_then_right.text());
    let right_then_wrong = get(&[
        ("Authorization", TOKEN),
        ("Authorization", "endpoint-token-3f9a1c7e5b2X"),
    ]);
    assert_eq!(right_then_wrong.status, 400, "{}", right_then_wrong.text());
    for r in [
        &missing,
        &wrong,
        &bearer,
        &wrong_then_right,
        &right_then_wrong,
    ] {
        assert!(!r.text().contains("AccessKeyId"), "{}", r.text());
    }

    // A web page cannot read it, nor a page whose name was re-pointed at 127.0.0.1.
    let page = get(&[
        ("Authorization", TOKEN),
        ("Origin", "http://127.0.0.1:8000"),
    ]);
    assert_eq!(page.status, 403, "{}", page.text());
    let cross = get(&[("Authorization", TOKEN), ("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(cross.status, 403);
    let mut conn = Conn::open(endpoint);
    conn.write(
        format!(
            "GET /credentials HTTP/1.1\r\nHost: attacker.example:{port}\r\nAuthorization: {TOKEN}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    let rebound = conn.read().unwrap();
    assert_eq!(rebound.status, 421, "{}", rebound.text());
    let post = request(
        endpoint,
        "POST",
        "/credentials",
        &[("Authorization", TOKEN)],
        b"",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));

    for (result, count) in [
        ("missing_token", 1.0),
        ("wrong_token", 4.0),
        ("browser", 3.0),
        ("method", 1.0),
        ("served", 0.0),
    ] {
        let labels = [("result", result)];
        let seen = proxy.metric("sigproxy_credential_endpoint_requests_total", &labels);
        assert_eq!(seen, Some(count), "{result}");
    }

    // And the SDKs fail rather than fall back to anything else.
    let out = boto3_caller_arn(&peers, dir.path(), port, "endpoint-token-3f9a1c7e5b2X");
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("403") || text(&out).contains("credentials"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_set_without_credentials_is_503_and_not_ready() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proxy = start(&peers, "bad", port, &dir.path().join("token"));
    let endpoint = format!("127.0.0.1:{port}").parse().unwrap();
    proxy.wait_for("the bad set's first fetch to fail", || {
        let r = request(endpoint, "GET", "/", &[("Authorization", TOKEN)], b"");
        r.status == 503 && r.error_code() == "credentials_unavailable"
    });
    let ready = proxy.admin_get("/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["credentials"]["bad"]["ready"], false);
}

#[test]
fn a_long_running_boto3_client_gets_the_refreshed_credentials() {
    // STS hands out credentials that live 6 s: boto3 asks the endpoint again as each nears
    // expiry, and gets what sigproxy's background refresh holds by then.
    let peers = Peers::start_with(&["--short-credentials", "6"]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let proxy = start(&peers, "app", port, &dir.path().join("token"));
    proxy.wait_ready();
    let out = sdk(&python(), dir.path(), port)
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN", TOKEN)
        .args([
            "-c",
            "import sys, time, boto3\n\
             session = boto3.Session()\n\
             sts = session.client('sts', endpoint_url=sys.argv[1])\n\
             keys = set()\n\
             for _ in range(14):\n\
             \x20   arn = sts.get_caller_identity()['Arn']\n\
             \x20   keys.add(session.get_credentials().get_frozen_credentials().access_key)\n\
             \x20   time.sleep(1)\n\
             print(len(keys), arn)",
            peers.get("sts_endpoint"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let (keys, arn) = stdout.trim().split_once(' ').unwrap();
    assert!(arn.starts_with(&session_prefix(&peers)), "{arn}");
    let keys: usize = keys.parse().unwrap();
    assert!(
        keys >= 2,
        "one access key over 14 s of 6 s credentials: {stdout}"
    );
    let fetched = proxy
        .metric(
            "sigproxy_credential_endpoint_requests_total",
            &[("result", "served")],
        )
        .unwrap();
    assert!(fetched >= 2.0, "{fetched}");
}

#[test]
fn a_rotated_token_file_applies_without_a_restart() {
    let Running {
        _peers,
        dir: _dir,
        token_file,
        proxy,
        endpoint,
    } = running();
    let status = |token: &str| {
        request(
            endpoint,
            "GET",
            "/credentials",
            &[("Authorization", token)],
            b"",
        )
        .status
    };
    assert_eq!(status(TOKEN), 200);
    // A Secret swapped in place: nothing sends SIGHUP, the configuration is unchanged.
    let rotated = "rotated-endpoint-token-8e1d";
    rotate_token_file(&token_file, rotated);
    proxy.wait_for("the rotated token to be in force", || {
        status(rotated) == 200
    });
    assert_eq!(status(TOKEN), 403);
}

/// A reload that removes the endpoint's block leaves its listener answering `503`; one that
/// puts the block back serves again, on the listener the process kept.
#[test]
fn an_endpoint_removed_by_a_reload_serves_again_once_put_back() {
    let Running {
        _peers,
        dir: _dir,
        proxy,
        endpoint,
        ..
    } = running();
    let status = || {
        request(
            endpoint,
            "GET",
            "/credentials",
            &[("Authorization", TOKEN)],
            b"",
        )
    };
    assert_eq!(status().status, 200);
    let with = std::fs::read_to_string(proxy.config_path()).unwrap();
    let block_end = with.find("\ncredentials:").expect("the block comes first") + 1;
    let without = &with[block_end..];
    for (text, want) in [(without, 503), (with.as_str(), 200)] {
        std::fs::write(proxy.config_path(), text).unwrap();
        proxy.signal("HUP");
        proxy.wait_for("the reload to be in force", || status().status == want);
    }
}

/// A head the parser refuses, sent with the endpoint's token (to the endpoint and to the admin
/// port), gets the JSON `400`, and no log line holds the token: pingora's own app logged such a
/// head at error level with its bytes.
#[test]
fn a_malformed_head_is_refused_and_its_token_never_logged() {
    let Running {
        _peers,
        dir: _dir,
        proxy,
        endpoint,
        ..
    } = running();
    for addr in [endpoint, proxy.admin] {
        let mut conn = Conn::open(addr);
        conn.write(
            format!(
                "GET /credentials HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {TOKEN}\r\n\
                 User-Agent: a\x7fb\r\n\r\n"
            )
            .as_bytes(),
        );
        let r = conn.read().expect("an answer");
        assert_eq!(
            (r.status, r.error_code()),
            (400, "bad_request".into()),
            "{addr}"
        );
    }
    let log = proxy.log();
    assert!(!log.contains(TOKEN), "the log holds the token: {log}");
}
