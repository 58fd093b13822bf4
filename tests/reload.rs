//! Reload without restart: SIGHUP and file changes (a Kubernetes ConfigMap's symlink swap)
//! under steady traffic, credential sets kept, started and stopped, files refused.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The file's directory laid out as kubelet mounts a ConfigMap: `sigproxy.yaml ->
/// ..data/sigproxy.yaml`, `..data -> ..<timestamp>`; an update writes a new timestamped
/// directory and swaps `..data` with a rename.
struct Mounted {
    dir: PathBuf,
    name: String,
    generation: usize,
}

impl Mounted {
    /// Turns the plain file into the mounted layout, with the same content.
    fn convert(path: &Path) -> Mounted {
        let text = std::fs::read_to_string(path).unwrap();
        let mut m = Mounted {
            dir: path.parent().unwrap().to_owned(),
            name: path.file_name().unwrap().to_str().unwrap().to_string(),
            generation: 0,
        };
        m.publish(&text);
        let link = m.dir.join(format!("{}.tmp", m.name));
        std::os::unix::fs::symlink(format!("..data/{}", m.name), &link).unwrap();
        std::fs::rename(&link, path).unwrap();
        m
    }

    fn publish(&mut self, text: &str) {
        self.generation += 1;
        let version = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation, self.generation
        );
        std::fs::create_dir(self.dir.join(&version)).unwrap();
        std::fs::write(self.dir.join(&version).join(&self.name), text).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            let old = format!(
                "..2026_01_01_00_00_{:02}.{}",
                self.generation - 1,
                self.generation - 1
            );
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

/// What `sigproxy_config_hash` says for a file with this content.
fn hash_number(text: &str) -> f64 {
    u64::from_str_radix(&sha256_hex(text.as_bytes())[..12], 16).unwrap() as f64
}

/// Waits until the file with `text` is the configuration in force.
fn wait_in_force(proxy: &Proxy, text: &str) {
    let want = hash_number(text);
    proxy.wait_for("the new configuration in force", || {
        proxy.metric("sigproxy_config_hash", &[]) == Some(want)
    });
}

fn reloads(proxy: &Proxy, result: &str) -> f64 {
    proxy
        .metric("sigproxy_config_reloads_total", &[("result", result)])
        .unwrap_or_else(|| panic!("no sigproxy_config_reloads_total{{result={result}}}"))
}

fn assume_role_calls(peers: &Peers) -> u64 {
    peers.stats()["assume_role_calls"].as_u64().unwrap()
}

fn signed_route(peers: &Peers, name: &str, prefix: &str, base: &str, credentials: &str) -> String {
    format!(
        "  - name: {name}\n    match: {{ path_prefix: {prefix} }}\n    strip_prefix: true\n    upstream: {}{base}\n    service: lambda\n    region: us-east-1\n    credentials: {credentials}\n",
        peers.get("lambda_url")
    )
}

/// Generation `i`'s configuration (without the listen lines): the steady route `fn`, the route
/// `moving` whose upstream path changes, `gen<i>` (the previous one removed), and while
/// `with_b` the set `b` and its route. `invalid`: `gen<i>` names a set that does not exist.
fn generation(peers: &Peers, i: usize, with_b: bool, invalid: bool) -> String {
    let mut text = format!(
        "credentials:\n{}",
        peers.credentials_yaml("app", peers.get("external_id"))
    );
    if with_b {
        text += &peers.credentials_yaml("b", peers.get("external_id"));
    }
    text += "routes:\n";
    text += &signed_route(peers, "fn", "/fn/", "", "app");
    text += &signed_route(peers, "moving", "/moving/", &format!("/v{i}"), "app");
    let set = if invalid { "nope" } else { "app" };
    text += &signed_route(peers, &format!("gen{i}"), &format!("/gen{i}/"), "", set);
    if with_b {
        text += &signed_route(peers, "b", "/b/", "", "b");
    }
    text
}

/// `proxy`'s configuration plus a set `wrong` (and its route) whose role trust policy wants
/// another external id: STS refuses its AssumeRole.
fn with_refused_set(peers: &Peers, proxy: &Proxy) -> String {
    format!(
        "listen: {}\nadmin_listen: {}\nshutdown_grace: 1s\ncredentials:\n{}{}routes:\n{}{}",
        proxy.addr,
        proxy.admin,
        peers.credentials_yaml("app", peers.get("external_id")),
        peers.credentials_yaml("wrong", "not-the-external-id"),
        signed_route(peers, "fn", "/fn/", "", "app"),
        signed_route(peers, "other", "/other/", "", "wrong"),
    )
}

/// The status of a signed GET through `proxy` with `token` as the bearer token.
fn with_token(proxy: &Proxy, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    proxy
        .send("GET", "/fn/x", &[("Authorization", &bearer)], b"")
        .status
}

#[test]
fn twenty_reloads_under_steady_traffic_lose_no_request() {
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&generation(&peers, 0, false, false), &peers.caller_env());
    let head = format!(
        "listen: {}\nadmin_listen: {}\nshutdown_grace: 1s\n",
        proxy.addr, proxy.admin
    );
    // Set at start-up, as Prometheus does: no reload yet is no failure.
    assert!(proxy
        .metric("sigproxy_config_last_reload_success_timestamp_seconds", &[])
        .is_some_and(|t| t > 1.7e9));
    assert_eq!(reloads(&proxy, "success"), 0.0);
    assert_eq!(reloads(&proxy, "failure"), 0.0);
    let mut mount = Mounted::convert(proxy.config_path());
    let calls_before = assume_role_calls(&peers);

    // Two clients: one keep-alive connection, one new connection per request.
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let addr = proxy.addr;
    let clients: Vec<_> = (0..2)
        .map(|client| {
            let (stop, failures, served) = (stop.clone(), failures.clone(), served.clone());
            std::thread::spawn(move || {
                let mut conn = (client == 0).then(|| Conn::open(addr));
                for n in 0..100_000 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = match &mut conn {
                        Some(conn) => conn.try_send("GET", "/fn/steady", b""),
                        None => try_request(addr, "GET", "/fn/steady", &[], b""),
                    };
                    match r {
                        Some(r) if r.status == 200 => {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Some(r) => failures.lock().unwrap().push(format!(
                            "client {client} request {n}: {} {}",
                            r.status,
                            r.text()
                        )),
                        None => {
                            failures
                                .lock()
                                .unwrap()
                                .push(format!("client {client} request {n}: no response"));
                            break;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();

    let mut last_valid = 0;
    for i in 1..=20 {
        let with_b = (14..=17).contains(&i);
        if i == 10 {
            // Refused: the old configuration keeps serving, and the failure is counted once.
            mount.publish(&format!("{head}{}", generation(&peers, i, false, true)));
            proxy.wait_for("the invalid file refused", || {
                reloads(&proxy, "failure") == 1.0
            });
            assert_eq!(proxy.get(&format!("/gen{last_valid}/x")).status, 200);
            assert_eq!(proxy.get("/gen10/x").status, 404);
            let log = proxy.log();
            let line = log
                .lines()
                .find(|l| l.contains("configuration reload refused"))
                .expect("a log line for the refused file");
            assert!(line.contains("sigproxy.yaml"), "{line}");
            assert!(line.contains("routes[2].credentials"), "{line}");
            assert!(line.contains("nope"), "{line}");
            continue;
        }
        let text = format!("{head}{}", generation(&peers, i, with_b, false));
        mount.publish(&text);
        if i % 2 == 0 {
            proxy.signal("HUP");
        }
        wait_in_force(&proxy, &text);
        // A new request sees the new routes at once.
        let r = proxy.get(&format!("/gen{i}/x"));
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(proxy.get(&format!("/gen{last_valid}/x")).status, 404);
        assert_eq!(proxy.get("/moving/x").json()["path"], format!("/v{i}/x"));
        // The removed route's series left /metrics with it; the new route's are there.
        let gone = format!("gen{last_valid}");
        let now = format!("gen{i}");
        for family in [
            "sigproxy_requests_total",
            "sigproxy_request_duration_seconds_count",
        ] {
            assert_eq!(
                proxy.metric(family, &[("route", &gone)]),
                None,
                "{family} {gone}"
            );
            assert!(
                proxy.metric(family, &[("route", &now)]).is_some(),
                "{family} {now}"
            );
        }
        // A new set's credentials were fetched before its route went live.
        let b = proxy.get("/b/x").status;
        assert_eq!(b, if with_b { 200 } else { 404 }, "generation {i}");
        last_valid = i;
    }
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(served.load(Ordering::SeqCst) > 100, "too little traffic");
    assert!(reloads(&proxy, "success") >= 19.0);
    assert_eq!(reloads(&proxy, "failure"), 1.0);
    // `app` never changed: no STS call for it. `b` was fetched once when added, kept while its
    // definition stayed the same, and dropped.
    assert_eq!(assume_role_calls(&peers), calls_before + 1);
    assert!(proxy
        .metric(
            "sigproxy_credentials_expiry_timestamp_seconds",
            &[("credentials", "b")]
        )
        .is_none());

    // SIGHUP with the file unchanged reloads it (once: the poll sees no change).
    let before = reloads(&proxy, "success");
    proxy.signal("HUP");
    proxy.wait_for("the SIGHUP reload", || {
        reloads(&proxy, "success") == before + 1.0
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(reloads(&proxy, "success"), before + 1.0);
    assert_eq!(assume_role_calls(&peers), calls_before + 1);
}

#[test]
fn a_removed_credential_set_stops_refreshing() {
    // Credentials live 4 s: the set refreshes every 2 s or so while it exists.
    let peers = Peers::start_with(&["--short-credentials", "4"]);
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    let path = proxy.config_path();
    let first = assume_role_calls(&peers);
    proxy.wait_for("a background refresh", || assume_role_calls(&peers) > first);
    // Only a pass-through route (to the stand-in's unsigned stats), no credential set.
    let text = format!(
        "listen: {}\nadmin_listen: {}\nshutdown_grace: 1s\nroutes:\n  - name: plain\n    upstream: {}\n",
        proxy.addr,
        proxy.admin,
        peers.get("lambda_url")
    );
    std::fs::write(path, &text).unwrap();
    proxy.signal("HUP");
    wait_in_force(&proxy, &text);
    assert_eq!(proxy.get("/__control/stats").status, 200);
    assert_eq!(proxy.admin_get("/readyz").status, 200);
    // A fetch already sent when the task was stopped may still reach STS just after.
    std::thread::sleep(Duration::from_millis(500));
    let calls = assume_role_calls(&peers);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        assume_role_calls(&peers),
        calls,
        "the removed set still refreshes"
    );
    assert!(proxy
        .metric(
            "sigproxy_credentials_expiry_timestamp_seconds",
            &[("credentials", "app")]
        )
        .is_none());
}

#[test]
fn a_new_set_without_credentials_keeps_the_old_configuration() {
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    let path = proxy.config_path();
    let old = std::fs::read_to_string(path).unwrap();
    let text = with_refused_set(&peers, &proxy);
    std::fs::write(path, &text).unwrap();
    proxy.wait_for("the reload refused", || reloads(&proxy, "failure") == 1.0);
    assert_eq!(reloads(&proxy, "success"), 0.0);
    assert_eq!(
        proxy.metric("sigproxy_config_hash", &[]),
        Some(hash_number(&old))
    );
    assert_eq!(proxy.get("/fn/x").status, 200);
    assert_eq!(proxy.get("/other/x").status, 404);
    assert_eq!(proxy.admin_get("/readyz").status, 200);
    assert!(proxy.log().contains("credentials.wrong"), "{}", proxy.log());
}

#[test]
fn changes_that_need_a_restart_are_reported_and_the_rest_applies() {
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    let path = proxy.config_path();
    let base = std::fs::read_to_string(path).unwrap();
    let other_port = free_port();
    assert_eq!(
        proxy.metric("sigproxy_config_restart_required", &[]),
        Some(0.0)
    );

    // A non-loopback listen address without access limits: refused as at start-up.
    let wide = base.replace(
        &format!("listen: {}\n", proxy.addr),
        &format!("listen: 0.0.0.0:{}\n", proxy.addr.port()),
    );
    assert_ne!(wide, base);
    std::fs::write(path, &wide).unwrap();
    proxy.signal("HUP");
    proxy.wait_for("the wide listener refused", || {
        reloads(&proxy, "failure") == 1.0
    });
    assert!(proxy.log().contains("is not a loopback address"));

    // Another loopback port and a smaller connection limit: need a restart; the new route
    // is in force, the listener stays where it is.
    let moved = base.replace(
        &format!("listen: {}\n", proxy.addr),
        &format!("listen: 127.0.0.1:{other_port}\nmax_connections: 7\n"),
    ) + &signed_route(&peers, "extra", "/extra/", "", "app");
    std::fs::write(path, &moved).unwrap();
    proxy.signal("HUP");
    wait_in_force(&proxy, &moved);
    assert_eq!(proxy.get("/extra/x").status, 200);
    assert_eq!(
        proxy.metric("sigproxy_config_restart_required", &[]),
        Some(1.0)
    );
    let log = proxy.log();
    for key in ["listen", "max_connections", "upgrade_socket"] {
        assert!(
            log.contains(&format!("{key} needs a restart")),
            "no needs-a-restart line for {key}:\n{log}"
        );
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", other_port)).is_err());
}

#[test]
fn flag_mode_has_nothing_to_reload_and_survives_sighup() {
    let peers = Peers::start();
    let host = peers
        .get("lambda_url")
        .trim_start_matches("http://")
        .to_string();
    let proxy = Proxy::start_flags(
        &[
            "--host",
            &host,
            "--upstream-url-scheme",
            "http",
            "--name",
            "lambda",
            "--region",
            "us-east-1",
        ],
        &peers.caller_env(),
    );
    proxy.signal("HUP");
    proxy.wait_for("the SIGHUP logged", || {
        proxy.log().contains("command-line flags")
    });
    assert_eq!(proxy.admin_get("/healthz").status, 200);
    assert_eq!(reloads(&proxy, "success"), 0.0);
}

#[test]
fn access_rules_are_swapped_and_a_rotated_bearer_token_is_read_again() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("reload-test-token-old-0123", "reload-test-token-new-4567");
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let body = format!("{access}{}", peers.lambda_config(""));
    let proxy = Proxy::start_ready(&body, &peers.caller_env());
    let path = proxy.config_path();
    let with = |token: &str| with_token(&proxy, token);
    assert_eq!(with(old), 200);
    assert_eq!(proxy.get("/fn/x").status, 401);

    // The file is unchanged, the token file is not: SIGHUP reads both again.
    std::fs::write(&token_file, new).unwrap();
    proxy.signal("HUP");
    proxy.wait_for("the SIGHUP reload", || reloads(&proxy, "success") == 1.0);
    assert_eq!(with(old), 401);
    assert_eq!(with(new), 200);

    // allowed_clients that exclude loopback: this client is refused from the next request on.
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("access:\n", "access:\n  allowed_clients: [10.0.0.0/8]\n");
    std::fs::write(path, &text).unwrap();
    wait_in_force(&proxy, &text);
    assert_eq!(with(new), 403);
}

#[test]
fn sighup_while_an_upgrade_waits_for_the_sockets_does_not_end_it() {
    // `-u` waits (up to about 5 s) in pingora's bootstrap for the old process to hand its
    // sockets over, before any service runs: a SIGHUP then (`systemctl kill --signal=SIGHUP`
    // once MAINPID names the new process, a config tool) must not end it.
    let peers = Peers::start();
    let mut old = Proxy::builder(&peers.lambda_config(""))
        .env(&peers.caller_env())
        .upgradable()
        .start();
    old.wait_ready();
    let mut new = old.upgrade(&peers.caller_env());
    std::thread::sleep(Duration::from_millis(1000));
    new.signal("HUP");
    if let Some(status) = new.wait_exit(Duration::from_millis(300)) {
        panic!(
            "the upgraded process ended on SIGHUP ({status}); log:\n{}",
            new.log()
        );
    }
    old.signal("QUIT");
    assert!(old.wait_exit(Duration::from_secs(20)).is_some());
    new.wait_for("the upgraded process ready", || {
        try_request(new.admin, "GET", "/readyz", &[], b"").is_some_and(|r| r.status == 200)
    });
    assert_eq!(new.get("/fn/x").status, 200);
}

#[test]
fn a_rotated_bearer_token_file_is_read_again_without_sighup() {
    // Kubernetes rotates a mounted Secret by swapping its files; nothing sends SIGHUP and the
    // configuration file stays as it is. A leaked token must stop working all the same.
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        "rotation-test-token-old-0123",
        "rotation-test-token-new-4567",
    );
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let body = format!("{access}{}", peers.lambda_config(""));
    let proxy = Proxy::start(&body, &peers.caller_env());
    proxy.wait_ready();
    let with = |token: &str| with_token(&proxy, token);
    assert_eq!(with(old), 200);
    rotate_token_file(&token_file, new);
    proxy.wait_for("the rotated token in force", || with(new) == 200);
    assert_eq!(with(old), 401);
    assert_eq!(reloads(&proxy, "failure"), 0.0);

    // A token file that holds no usable token is refused once, not at every poll, and the
    // token in force stays.
    std::fs::write(&token_file, "short").unwrap();
    proxy.wait_for("the short token refused", || {
        reloads(&proxy, "failure") == 1.0
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reloads(&proxy, "failure"), 1.0);
    assert_eq!(with(new), 200);
}

#[test]
fn a_rotated_token_is_put_in_force_though_an_edit_in_the_same_file_is_refused() {
    // Rotating a token is how it is revoked. An unrelated edit of the file that is refused
    // (here a route with an upstream that is no URL) must not keep the old token working.
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("refused-edit-token-old-0123", "refused-edit-token-new-4567");
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let body = format!("{access}{}", peers.lambda_config(""));
    let proxy = Proxy::start_ready(&body, &peers.caller_env());
    let with = |token: &str| with_token(&proxy, token);
    assert_eq!(with(old), 200);
    let path = proxy.config_path();
    let refused = format!(
        "{}  - name: broken\n    match: {{ path_prefix: /broken/ }}\n    upstream: not-a-url\n",
        std::fs::read_to_string(path).unwrap()
    );
    std::fs::write(path, &refused).unwrap();
    rotate_token_file(&token_file, new);
    proxy.wait_for("the rotated token in force", || with(new) == 200);
    assert_eq!(with(old), 401);
    assert!(reloads(&proxy, "failure") >= 1.0);
    // The refused file stays refused, once: not tried again at every poll.
    let failures = reloads(&proxy, "failure");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reloads(&proxy, "failure"), failures);
    let bearer = format!("Bearer {new}");
    let broken = proxy.send("GET", "/broken/x", &[("Authorization", &bearer)], b"");
    assert_eq!(broken.status, 404, "the refused edit is not in force");
    // A token file that stops holding a token, the edit still refused: refused once (the
    // file, then its running self with that token file), then quiet; the token stays.
    std::fs::write(&token_file, "").unwrap();
    proxy.wait_for("the emptied token file refused", || {
        reloads(&proxy, "failure") > failures
    });
    std::thread::sleep(Duration::from_secs(1));
    let failures = reloads(&proxy, "failure");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        reloads(&proxy, "failure"),
        failures,
        "refused again and again"
    );
    assert_eq!(with(new), 200);
}

#[test]
fn a_token_rotated_while_sts_refuses_an_edit_keeps_the_edits_retry() {
    // An edit whose new set STS refuses is tried again every 30 s; a token rotated meanwhile is
    // put in force at once, and the edit's retry goes on.
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("sts-retry-token-old-0123456", "sts-retry-token-new-7654321");
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let body = format!("{access}{}", peers.lambda_config(""));
    let proxy = Proxy::start_ready(&body, &peers.caller_env());
    let path = proxy.config_path();
    std::fs::write(
        path,
        format!("{access}{}", with_refused_set(&peers, &proxy)),
    )
    .unwrap();
    proxy.wait_for("the edit refused", || reloads(&proxy, "failure") == 1.0);
    rotate_token_file(&token_file, new);
    proxy.wait_for("the rotated token in force", || {
        reloads(&proxy, "success") == 1.0
    });
    // The edit's next try, 30 s after its last refusal: STS is asked again (moto refuses it
    // before its own counters see it) and the reload refused again.
    let fetches = || {
        let failed = [("credentials", "wrong"), ("result", "failure")];
        proxy
            .metric("sigproxy_credential_refreshes_total", &failed)
            .unwrap_or(0.0)
    };
    let (calls, failures) = (fetches(), reloads(&proxy, "failure"));
    let asked = common::poll(Duration::from_secs(45), || fetches() > calls);
    assert!(asked, "the refused edit was never tried again");
    assert!(reloads(&proxy, "failure") > failures);
}

/// `proxy`'s configuration (with `access`) plus a set `slow` (and its route, under /other/)
/// whose STS is at `sts`.
fn with_set_at(peers: &Peers, proxy: &Proxy, access: &str, sts: &str) -> String {
    let slow = peers
        .credentials_yaml("slow", peers.get("external_id"))
        .replace(peers.get("sts_endpoint"), sts);
    format!(
        "{access}listen: {}\nadmin_listen: {}\nshutdown_grace: 1s\ncredentials:\n{}{slow}routes:\n{}{}",
        proxy.addr,
        proxy.admin,
        peers.credentials_yaml("app", peers.get("external_id")),
        signed_route(peers, "fn", "/fn/", "", "app"),
        signed_route(peers, "other", "/other/", "", "slow"),
    )
}

/// A TCP front for `target` that holds each connection `delay` before relaying it (an STS
/// slow to answer). Its threads end with the test process.
fn slow_front(target: &str, delay: Duration) -> String {
    let target = target
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let target = target.clone();
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                let Ok(server) = std::net::TcpStream::connect(&target) else {
                    return;
                };
                let (mut c, mut s) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c, &mut s);
                    let _ = s.shutdown(std::net::Shutdown::Write);
                });
                let (mut s, mut c) = (server, client);
                let _ = std::io::copy(&mut s, &mut c);
                let _ = c.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_token_rotated_while_an_edit_waits_on_a_silent_sts_is_in_force_at_once() {
    // An edit whose new set's STS never answers waits for it (up to 35 s). Rotating a token is
    // how it is revoked: that must not wait behind an unrelated STS call.
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        "silent-sts-token-old-0123456",
        "silent-sts-token-new-7654321",
    );
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let body = format!("{access}{}", peers.lambda_config(""));
    let proxy = Proxy::start_ready(&body, &peers.caller_env());
    let with = |token: &str| with_token(&proxy, token);
    assert_eq!(with(old), 200);
    // Takes connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://{}", silent.local_addr().unwrap());
    std::fs::write(
        proxy.config_path(),
        with_set_at(&peers, &proxy, &access, &sts),
    )
    .unwrap();
    // The edit is read (two polls) and waits on the silent STS.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reloads(&proxy, "failure"), 0.0);
    rotate_token_file(&token_file, new);
    let rotated = common::poll(Duration::from_secs(6), || with(new) == 200);
    assert!(rotated, "the rotated token waited for the edit's STS call");
    assert_eq!(with(old), 401, "the revoked token still works");
    // The edit's wait ends refused; the rotated token stays in force.
    let refused = common::poll(Duration::from_secs(50), || {
        reloads(&proxy, "failure") >= 1.0
    });
    assert!(refused, "the edit was never refused");
    assert_eq!((with(old), with(new)), (401, 200));
    let bearer = format!("Bearer {new}");
    let other = proxy.send("GET", "/other/x", &[("Authorization", &bearer)], b"");
    assert_eq!(other.status, 404, "the refused edit is not in force");
    drop(silent);
}

#[test]
fn an_edit_whose_sts_answers_after_a_token_rotation_keeps_the_rotated_token() {
    // The edit was checked with the token file as it read before the rotation; when its slow
    // STS answers and it goes in, the revoked token must not come back with it.
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = ("slow-sts-token-old-01234567", "slow-sts-token-new-76543210");
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let body = format!("{access}{}", peers.lambda_config(""));
    let proxy = Proxy::start_ready(&body, &peers.caller_env());
    let with = |token: &str| with_token(&proxy, token);
    let sts = slow_front(peers.get("sts_endpoint"), Duration::from_secs(6));
    std::fs::write(
        proxy.config_path(),
        with_set_at(&peers, &proxy, &access, &sts),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    rotate_token_file(&token_file, new);
    let rotated = common::poll(Duration::from_secs(3), || with(new) == 200);
    assert!(rotated, "the rotated token waited for the edit's STS call");
    // The edit goes in once its STS answers: at that moment, only the rotated token works.
    let bearer = format!("Bearer {new}");
    let other = || {
        proxy
            .send("GET", "/other/x", &[("Authorization", &bearer)], b"")
            .status
    };
    let went_in = common::poll(Duration::from_secs(20), || {
        proxy.metric("sigproxy_config_reloads_total", &[("result", "success")]) >= Some(2.0)
    });
    assert!(went_in, "the edit never went in");
    assert_eq!(with(old), 401, "the edit brought the revoked token back");
    assert_eq!(with(new), 200);
    assert_eq!(other(), 200, "the edit's route");
    assert_eq!(reloads(&proxy, "failure"), 0.0);
}

/// A configuration with clients (name, token file) on an unsigned route `open` to `upstream`,
/// and the credential set `app`; `extra` adds to it (a set under `credentials`, see below).
fn clients_config(peers: &Peers, upstream: &str, clients: &[(&str, &Path)], slow: &str) -> String {
    let mut text = "access:\n  clients:\n".to_string();
    for (name, file) in clients {
        text += &format!(
            "    - name: {name}\n      token_file: {}\n      routes: [open{}]\n",
            file.display(),
            if slow.is_empty() { "" } else { ", other" }
        );
    }
    text += &format!(
        "credentials:\n{}",
        peers.credentials_yaml("app", peers.get("external_id"))
    );
    if !slow.is_empty() {
        let set = peers
            .credentials_yaml("slow", peers.get("external_id"))
            .replace(peers.get("sts_endpoint"), slow);
        text += &set;
    }
    text += &format!(
        "routes:\n  - name: open\n    match: {{ path_prefix: /open/ }}\n    upstream: {upstream}\n"
    );
    if !slow.is_empty() {
        text += &signed_route(peers, "other", "/other/", "", "slow");
    }
    text
}

/// The status of a GET of `path` through `proxy` with `token` as the bearer token.
fn status(proxy: &Proxy, path: &str, token: &str) -> u16 {
    let bearer = format!("Bearer {token}");
    proxy
        .send("GET", path, &[("Authorization", &bearer)], b"")
        .status
}

#[test]
fn a_client_an_edit_adds_starts_with_its_token_as_it_reads_when_the_edit_goes_in() {
    // The edit adds client `cc` and a set whose STS is slow; cc's token file rotates while
    // the edit waits: the edit goes in with the rotated token, never the one it replaced.
    let peers = Peers::start();
    let upstream = common::upstream::Upstream::builder().start();
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = (dir.path().join("a"), dir.path().join("c"));
    let (a_token, c_old, c_new) = (
        "added-client-a-token-0123456",
        "added-client-c-token-old-0123",
        "added-client-c-token-new-4567",
    );
    std::fs::write(&a, a_token).unwrap();
    std::fs::write(&c, c_old).unwrap();
    let url = upstream.url();
    let body = clients_config(&peers, &url, &[("aa", &a)], "");
    let proxy = Proxy::start_ready(&body, &peers.caller_env());
    assert_eq!(status(&proxy, "/open/x", a_token), 200);
    let sts = slow_front(peers.get("sts_endpoint"), Duration::from_secs(6));
    let edit = clients_config(&peers, &url, &[("aa", &a), ("cc", &c)], &sts);
    let edit = format!(
        "listen: {}\nadmin_listen: {}\n{edit}",
        proxy.addr, proxy.admin
    );
    std::fs::write(proxy.config_path(), edit).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    rotate_token_file(&c, c_new);
    let went_in = common::poll(Duration::from_secs(20), || {
        reloads(&proxy, "success") >= 1.0
    });
    assert!(went_in, "the edit never went in");
    assert_eq!(status(&proxy, "/open/x", c_new), 200, "the rotated token");
    assert_eq!(status(&proxy, "/open/x", c_old), 401, "the revoked token");
    assert_eq!(reloads(&proxy, "failure"), 0.0);
}

#[test]
fn a_rotation_refused_while_an_edit_waits_is_counted_once() {
    // During the wait a token file is changed to another client's token (refused: each client
    // needs its own). Refused once, as outside the wait, not at every look.
    let peers = Peers::start();
    let upstream = common::upstream::Upstream::builder().start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let (a_token, b_token) = ("refused-rotation-a-0123456", "refused-rotation-b-0123456");
    std::fs::write(&a, a_token).unwrap();
    std::fs::write(&b, b_token).unwrap();
    let url = upstream.url();
    let clients = [("aa", a.as_path()), ("bb", b.as_path())];
    let proxy = Proxy::start_ready(
        &clients_config(&peers, &url, &clients, ""),
        &peers.caller_env(),
    );
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let sts = format!("http://{}", silent.local_addr().unwrap());
    let edit = clients_config(&peers, &url, &clients, &sts);
    let edit = format!(
        "listen: {}\nadmin_listen: {}\n{edit}",
        proxy.addr, proxy.admin
    );
    std::fs::write(proxy.config_path(), edit).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    rotate_token_file(&a, b_token);
    proxy.wait_for("the shared token refused", || {
        reloads(&proxy, "failure") >= 1.0
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(reloads(&proxy, "failure"), 1.0, "refused again and again");
    assert_eq!(status(&proxy, "/open/x", a_token), 200, "the token kept");
    drop(silent);
}

#[test]
fn a_token_rotates_after_the_file_changed_while_sigproxy_started() {
    // The file is edited (a mistake: refused) while sigproxy waits for its first credentials at
    // start-up. A token rotated later must still go in: it is read with the file as it was
    // when sigproxy started, whatever the file holds now.
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        "start-edit-token-old-0123456",
        "start-edit-token-new-7654321",
    );
    let (token_file, access) = bearer_token_file(dir.path(), old);
    let sts = slow_front(peers.get("sts_endpoint"), Duration::from_secs(4));
    let body =
        format!("{access}{}", peers.lambda_config("")).replace(peers.get("sts_endpoint"), &sts);
    let proxy = Proxy::start(&body, &peers.caller_env());
    std::thread::sleep(Duration::from_millis(1500));
    let path = proxy.config_path();
    let mistake = format!("{}bogus_key: 1\n", std::fs::read_to_string(path).unwrap());
    std::fs::write(path, mistake).unwrap();
    proxy.wait_ready();
    assert_eq!(with_token(&proxy, old), 200);
    rotate_token_file(&token_file, new);
    proxy.wait_for("the rotated token in force", || {
        with_token(&proxy, new) == 200
    });
    assert_eq!(with_token(&proxy, old), 401);
}

#[test]
fn repeated_sighups_do_not_repeat_a_refused_sts_call_at_once() {
    // A tool that sends SIGHUP every few seconds whether or not anything changed, while the
    // file has a set STS refuses: one AssumeRole per SIGHUP would load the account's STS.
    let peers = Peers::start();
    let proxy = Proxy::start_ready(&peers.lambda_config(""), &peers.caller_env());
    let path = proxy.config_path();
    let text = with_refused_set(&peers, &proxy);
    std::fs::write(path, &text).unwrap();
    proxy.signal("HUP");
    proxy.wait_for("the reload refused", || reloads(&proxy, "failure") == 1.0);
    // Each fetch of the refused set asks STS (moto refuses it before its counters see it).
    let fetches = || {
        proxy
            .metric(
                "sigproxy_credential_refreshes_total",
                &[("credentials", "wrong"), ("result", "failure")],
            )
            .unwrap_or(0.0)
    };
    let calls = fetches();
    for _ in 0..10 {
        proxy.signal("HUP");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let more = fetches() - calls;
    assert!(
        more <= 1.0,
        "{more} STS calls for 10 SIGHUPs within a second"
    );
    assert!(reloads(&proxy, "failure") <= 2.0);
    assert_eq!(proxy.get("/fn/x").status, 200);
}

#[test]
fn one_token_file_that_gives_no_token_does_not_stop_another_clients_rotation() {
    // Two clients, each with its own token file (a Secret each). One file goes (deleted, or
    // emptied): that client's token in force stays, loudly. The other's rotation, which is how
    // a leaked token is revoked, must go in all the same.
    let upstream = common::upstream::Upstream::builder().start();
    let dir = tempfile::tempdir().unwrap();
    let (orders, reports) = (dir.path().join("orders"), dir.path().join("reports"));
    let (orders_old, orders_new, reports_token) = (
        "orders-token-old-0123456789",
        "orders-token-new-9876543210",
        "reports-token-0123456789ab",
    );
    std::fs::write(&orders, orders_old).unwrap();
    std::fs::write(&reports, reports_token).unwrap();
    let config = format!(
        r#"access:
  clients:
    - name: orders
      token_file: {}
      routes: [open]
    - name: reports
      token_file: {}
      routes: [open]
routes:
  - name: open
    upstream: {}
"#,
        orders.display(),
        reports.display(),
        upstream.url()
    );
    let proxy = Proxy::start_ready(&config, &[]);
    let status = |token: &str| {
        let bearer = format!("Bearer {token}");
        proxy
            .send("GET", "/x", &[("Authorization", &bearer)], b"")
            .status
    };
    assert_eq!((status(orders_old), status(reports_token)), (200, 200));

    std::fs::remove_file(&reports).unwrap();
    proxy.wait_for("the missing token file reported", || {
        reloads(&proxy, "failure") == 1.0
    });
    rotate_token_file(&orders, orders_new);
    proxy.wait_for("the rotated token in force", || status(orders_new) == 200);
    assert_eq!(status(orders_old), 401, "the revoked token still works");
    assert_eq!(status(reports_token), 200, "the kept token");
    let log = proxy.log();
    assert!(
        log.contains("access.clients[1].token_file") && log.contains("cannot read"),
        "{log}"
    );
    // Each further state of the file without a token is reported in turn, once.
    let failures = reloads(&proxy, "failure");
    std::fs::write(&reports, "short").unwrap();
    proxy.wait_for("the short token reported", || {
        reloads(&proxy, "failure") > failures
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(reloads(&proxy, "failure"), failures + 1.0);
    assert_eq!(status(reports_token), 200);
    // The file holds a token again: it is in force.
    rotate_token_file(&reports, "reports-token-new-abcdef0123");
    proxy.wait_for("the restored file's token", || {
        status("reports-token-new-abcdef0123") == 200
    });
    assert_eq!(status(reports_token), 401);

    // The file goes again, in the same edit as a new client: one reload, reported once.
    let audit = dir.path().join("audit");
    std::fs::write(&audit, "audit-token-0123456789abcd").unwrap();
    std::fs::remove_file(&reports).unwrap();
    let (failures, successes) = (reloads(&proxy, "failure"), reloads(&proxy, "success"));
    let text = std::fs::read_to_string(proxy.config_path()).unwrap();
    let edited = text.replace(
        "routes:\n  - name: open",
        &format!(
            "    - name: audit\n      token_file: {}\n      routes: [open]\nroutes:\n  - name: open",
            audit.display()
        ),
    );
    assert_ne!(edited, text);
    std::fs::write(proxy.config_path(), edited).unwrap();
    proxy.wait_for("the new client", || {
        status("audit-token-0123456789abcd") == 200
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(reloads(&proxy, "failure"), failures + 1.0);
    assert_eq!(reloads(&proxy, "success"), successes + 1.0);
    // An edit refused for a reason of its own is that one failure, the kept token not again.
    let text = std::fs::read_to_string(proxy.config_path()).unwrap();
    std::fs::write(
        proxy.config_path(),
        format!("{text}  - name: broken\n    upstream: not-a-url\n"),
    )
    .unwrap();
    proxy.wait_for("the refused edit", || {
        reloads(&proxy, "failure") == failures + 2.0
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(reloads(&proxy, "failure"), failures + 2.0);
    assert_eq!(reloads(&proxy, "success"), successes + 1.0);
    assert_eq!(
        status("reports-token-new-abcdef0123"),
        200,
        "the kept token"
    );
}
