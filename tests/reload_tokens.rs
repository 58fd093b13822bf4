//! Reload without restart, for the tokens clients send: a rotated token file (a Secret
//! updated) is put in force whatever else the configuration file's edit holds: refused, waiting
//! on STS, or made while sigproxy started.

mod common;

use common::reload::*;
use common::*;
use std::time::Duration;

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
