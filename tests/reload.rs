//! Reload without restart: SIGHUP and file changes (a Kubernetes ConfigMap's symlink swap)
//! under steady traffic, credential sets kept, started and stopped, files refused.

mod common;

use common::reload::*;
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

fn assume_role_calls(peers: &Peers) -> u64 {
    peers.stats()["assume_role_calls"].as_u64().unwrap()
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
