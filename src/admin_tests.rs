//! `/healthz` and `/readyz` answered in process: a request written into an in-memory pipe,
//! read by pingora's HTTP/1 session, answered by `AdminApp`.

use super::*;
use crate::config::Config;
use crate::credentials::CredentialStore;
use crate::reload::Snapshot;
use aws_credential_types::Credentials;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

/// Two sets, both used by a route, and one no route uses.
const CONFIG: &str = r#"
credentials:
  app:
    source: default
  other:
    source: default
  unused:
    source: default
routes:
  - name: a
    match: { path_prefix: /a/ }
    upstream: https://abc.lambda-url.us-east-1.on.aws
    credentials: app
  - name: b
    upstream: https://s3.us-east-1.amazonaws.com
    credentials: other
"#;

/// The admin app over a snapshot of `CONFIG`, and the live handle its credentials are set in.
fn app() -> (AdminApp, Live) {
    let config = Config::parse(CONFIG, Path::new("admin-test.yaml")).unwrap();
    let live = Snapshot::new(&config, CredentialStore::new(&config)).live();
    let drain = Drain::new(Duration::ZERO, Duration::ZERO);
    (AdminApp::new(live.clone(), drain), live)
}

fn valid() -> Credentials {
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    Credentials::new("AKIDADMIN", "admin-secret", None, Some(expiry), "test")
}

/// The answer to `GET path` with the given headers, and its JSON body.
async fn get(app: &AdminApp, path: &str, headers: &str) -> (StatusCode, serde_json::Value) {
    let (mut client, server) = tokio::io::duplex(64 * 1024);
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:9901\r\n{headers}\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    let mut session = ServerSession::new_http1(Box::new(server));
    assert!(session.read_request().await.unwrap(), "request read");
    let response = app.response(&mut session).await;
    let body = serde_json::from_slice(response.body()).unwrap();
    (response.status(), body)
}

#[tokio::test]
async fn healthz_answers_whether_or_not_credentials_are_loaded() {
    let (app, store) = app();
    let (status, body) = get(&app, "/healthz", "").await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, serde_json::json!({ "status": "ok" }))
    );
    store.load().store.get("app").unwrap().store(valid());
    assert_eq!(get(&app, "/healthz", "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn readyz_waits_for_every_set_a_route_uses_and_names_those_not_ready() {
    let (app, store) = app();
    let (status, body) = get(&app, "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
    assert_eq!(body["credentials"]["app"]["ready"], false);
    // A caller whose address is unknown (this in-memory pipe) is told which sets fail, not why.
    assert!(body["credentials"]["app"].get("reason").is_none(), "{body}");
    assert_eq!(
        body["credentials"]["app"]["state"],
        "they are still being fetched"
    );
    assert!(body["detail"].as_str().unwrap().contains("this machine"));
    let (_, detailed) = app.readiness(true);
    assert!(
        detailed["credentials"]["app"]["reason"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );
    // A set no route signs with does not count, and is not listed.
    assert!(body["credentials"].get("unused").is_none(), "{body}");

    store.load().store.get("app").unwrap().store(valid());
    let (status, body) = get(&app, "/readyz", "").await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "`other` is still empty"
    );
    assert_eq!(
        body["credentials"]["app"],
        serde_json::json!({ "ready": true })
    );
    assert_eq!(body["credentials"]["other"]["ready"], false);

    store.load().store.get("other").unwrap().store(valid());
    let (status, body) = get(&app, "/readyz", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["ready"], true);
}

#[tokio::test]
async fn expired_credentials_make_readyz_fail_again() {
    let (app, store) = app();
    for name in ["app", "other"] {
        store.load().store.get(name).unwrap().store(valid());
    }
    assert_eq!(get(&app, "/readyz", "").await.0, StatusCode::OK);
    let past = SystemTime::now() - Duration::from_secs(1);
    let expired = Credentials::new("AKIDOLD", "old-secret", None, Some(past), "test");
    store.load().store.get("other").unwrap().store(expired);
    let (status, body) = get(&app, "/readyz", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["credentials"]["other"]["ready"], false);
    let text = body.to_string();
    assert!(
        !text.contains("old-secret") && !text.contains("AKIDOLD"),
        "{text}"
    );
}

#[tokio::test]
async fn web_pages_and_unknown_paths_get_json_errors() {
    let (app, _) = app();
    let (status, body) = get(&app, "/readyz", "Origin: https://evil.example\r\n").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["code"].is_string(), "{body}");
    let (status, body) = get(&app, "/nothing", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[test]
fn only_callers_on_this_machine_are_told_why() {
    use pingora::protocols::l4::socket::SocketAddr;
    let inet = |a: &str| SocketAddr::Inet(a.parse().unwrap());
    for local in [
        "127.0.0.1:5000",
        "127.3.2.1:1",
        "[::1]:80",
        "[::ffff:127.0.0.1]:80",
    ] {
        assert!(shows_detail(Some(&inet(local))), "{local}");
    }
    // kubelet's probes and a scraper arrive from the pod network.
    for stranger in [
        "10.1.2.3:5000",
        "192.168.0.9:1",
        "[fd00::1]:80",
        "[::ffff:10.0.0.1]:80",
    ] {
        assert!(!shows_detail(Some(&inet(stranger))), "{stranger}");
    }
    assert!(!shows_detail(None));
}
