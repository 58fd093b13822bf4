//! The command line: `--check` over every shipped configuration, and clear refusals.

mod common;

use std::process::Command;

fn sigproxy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(args)
        // The gateway overlay reads its bearer token from a Secret, at run time.
        .env("SIGPROXY_BEARER_TOKEN", "check-only-stand-in-token")
        .output()
        .expect("run sigproxy")
}

#[test]
fn every_shipped_config_passes_check() {
    let root = common::repo_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.push(root.join("deploy/kubernetes/base/sigproxy.yaml"));
    files.push(root.join("deploy/kubernetes/overlays/gateway/sigproxy.yaml"));
    let mut checked = 0;
    for path in files {
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = sigproxy(&["--check", "-c", path.to_str().unwrap()]);
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} configs checked");
}

#[test]
fn invalid_config_is_refused_by_check_and_by_the_server_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "routes:\n  - name: orders\n    upstream: https://abc.lambda-url.us-east-1.on.aws\n    credentials: missing\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let want = format!("{path}: routes[0].credentials: no credential set named 'missing'");
    for args in [vec!["--check", "-c", path], vec!["-c", path]] {
        let out = sigproxy(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
}

#[test]
fn busy_port_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!("listen: {addr}\nadmin_listen: 127.0.0.1:{}\nroutes:\n  - upstream: http://127.0.0.1:1\n", common::free_port()),
    )
    .unwrap();
    let out = sigproxy(&["-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (listen)")),
        "{stderr}"
    );
}
