//! The command line: `--check` over every shipped configuration, and clear refusals.

mod common;

use common::poll;
use std::process::Command;
use std::time::Duration;

fn sigproxy(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(args)
        // The gateway overlay reads its bearer token from a Secret at run time, and
        // config/clients.yaml its clients' tokens from the environment.
        .env("SIGPROXY_BEARER_TOKEN", "check-only-stand-in-token")
        .env("SIGPROXY_ORDERS_TOKEN", "check-only-orders-token")
        .env("SIGPROXY_REPORTS_TOKEN", "check-only-reports-token")
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
fn check_prints_what_each_route_signs_with() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(
        &path,
        r#"credentials:
  app:
    source: default
routes:
  - name: reports
    match: { path_prefix: /r/ }
    upstream: https://s3.eu-west-1.amazonaws.com
    credentials: app
  - name: api
    match: { path_prefix: /api/ }
    upstream: https://abc.execute-api.us-east-2.amazonaws.com/prod/
    credentials: app
  - name: open
    upstream: http://127.0.0.1:9000
"#,
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let out = sigproxy(&["--check", "-c", path]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("{path}: OK (3 routes, 1 credential sets)").as_str(),
            "route reports: https://s3.eu-west-1.amazonaws.com service=s3 region=eu-west-1 payload=unsigned credentials=app",
            "route api: https://abc.execute-api.us-east-2.amazonaws.com/prod service=execute-api region=us-east-2 payload=signed credentials=app",
            "route open: http://127.0.0.1:9000 unsigned (pass-through)",
        ]
    );
}

#[test]
fn signing_for_aws_over_plain_http_is_warned_about_whatever_the_host_reached() {
    // A tunnel reached over http (`--host 127.0.0.1:4443`) that is signed for an AWS name: the
    // signed request and its session token cross that hop in clear text.
    let warned = |args: &[&str]| {
        let out = sigproxy(&[&["--check", "--upstream-url-scheme", "http"], args].concat());
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).contains("in clear text")
    };
    let aws = "vpc-logs-abc123.eu-west-1.es.amazonaws.com";
    assert!(warned(&["--host", "127.0.0.1:4443", "--sign-host", aws]));
    assert!(warned(&["--host", aws]));
    let plain = [
        "--host",
        "127.0.0.1:4443",
        "--name",
        "es",
        "--region",
        "eu-west-1",
    ];
    assert!(!warned(&plain));
}

#[test]
fn verbose_alone_says_where_a_configuration_comes_from() {
    // aws-sigv4-proxy users run `-v` with their flags; `-v` alone names no configuration.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .arg("-v")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config/sigproxy.yaml") && stderr.contains("aws-sigv4-proxy's flags"),
        "{stderr}"
    );
}

#[test]
fn invalid_config_is_refused_by_check_and_by_the_server_alike() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"routes:
  - name: orders
    upstream: https://abc.lambda-url.us-east-1.on.aws
    credentials: missing
"#,
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
        format!(
            r#"listen: {addr}
admin_listen: 127.0.0.1:{}
routes:
  - upstream: http://127.0.0.1:1
"#,
            common::free_port()
        ),
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

/// Another process grabs the traffic port while sigproxy starts, over and over from the moment
/// it is spawned. sigproxy must either hold the port itself or exit saying it cannot listen:
/// never run with `/healthz` saying 200 while a stranger answers on its traffic port. (It used
/// to bind the port once to check it, release it, and let pingora bind it again later.)
#[test]
fn a_port_taken_while_starting_is_never_left_to_a_stranger() {
    use std::net::TcpListener;
    use std::time::Instant;
    let mut grabbed_first = 0;
    for attempt in 0..12u64 {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (common::free_port(), common::free_port());
        if port == admin {
            continue;
        }
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            format!(
                "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\n\
                 routes:\n  - upstream: http://127.0.0.1:1\n"
            ),
        )
        .unwrap();
        let log = dir.path().join("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sigproxy"))
            .args(["-c", path.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let child = &mut child.0;
        std::thread::sleep(Duration::from_millis(attempt * 2));
        // Until sigproxy holds the port (then nobody else can take it), or 2 s.
        let started = Instant::now();
        let mut tries = 0u32;
        let grab = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => break Some(listener),
                Err(_) if started.elapsed() > Duration::from_secs(2) => break None,
                Err(_) => tries += 1,
            }
            if tries % 64 == 0 && common::listened_on_by(child.id(), port) {
                break None;
            }
        };
        let healthy = || {
            common::try_request(
                format!("127.0.0.1:{admin}").parse().unwrap(),
                "GET",
                "/healthz",
                &[],
                b"",
            )
            .is_some_and(|r| r.status == 200)
        };
        let mut exited = None;
        poll(Duration::from_secs(10), || {
            exited = child.try_wait().unwrap();
            exited.is_some() || healthy()
        });
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        match (&grab, exited) {
            (Some(_), Some(status)) => {
                grabbed_first += 1;
                assert_eq!(status.code(), Some(1), "{log}");
                // Normally the traffic port; the admin port if another test took it first.
                assert!(log.contains("cannot listen on 127.0.0.1:"), "{log}");
            }
            (Some(_), None) => panic!(
                "attempt {attempt}: a stranger holds the traffic port of a running sigproxy \
                 (healthz 200: {}); log:\n{log}",
                healthy()
            ),
            (None, _) => assert!(
                common::listened_on_by(child.id(), port),
                "attempt {attempt}: nobody could take the port, yet sigproxy does not \
                 hold it; log:\n{log}"
            ),
        }
    }
    eprintln!("the port was taken before sigproxy bound it in {grabbed_first} of 12 starts");
}

/// A child process that does not outlive a failed assertion.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_upgrade_socket_where_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let path = dir.path().join("c.yaml");
    let config_with_socket = |socket: &std::path::Path| {
        std::fs::write(
            &path,
            format!(
                r#"listen: 127.0.0.1:{}
admin_listen: 127.0.0.1:{}
upgrade_socket: {}
routes:
  - upstream: http://127.0.0.1:1
"#,
                common::free_port(),
                common::free_port(),
                socket.display()
            ),
        )
        .unwrap();
    };
    config_with_socket(&shared.join("sigproxy.sock"));
    // It must refuse to start (not serve with a socket another user could answer on).
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(["-c", path.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = None;
    poll(Duration::from_secs(10), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "it started anyway");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("can be written by other users (mode 1777)"),
        "{stderr}"
    );
    // A directory of its own is created private.
    let private = dir.path().join("run/sigproxy");
    config_with_socket(&private.join("s.sock"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(["-c", path.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    poll(Duration::from_secs(10), || private.exists());
    let _ = child.kill();
    let _ = child.wait();
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

/// sigproxy asks for an MFA code on its terminal before it starts (up to 30 s per set). While it
/// asks, its ports must refuse connections, not take them into a listen queue nobody answers:
/// a TCP probe would pass and every client hang. (`script` gives it a terminal nobody types at.)
#[test]
fn no_port_listens_while_an_mfa_code_is_asked_for() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (common::free_port(), common::free_port());
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:{admin}\ncredentials:\n  dev:\n    \
             source: default\n    session_token:\n      sts_endpoint: http://127.0.0.1:1\n      \
             sts_region: us-east-1\n      mfa:\n        serial_number: \
             arn:aws:iam::123456789012:mfa/alice\nroutes:\n  - upstream: http://127.0.0.1:1\n    \
             credentials: dev\n    service: lambda\n    region: us-east-1\n"
        ),
    )
    .unwrap();
    let command = format!("{} -c {}", env!("CARGO_BIN_EXE_sigproxy"), path.display());
    let mut terminal = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script(1), from util-linux, gives sigproxy a terminal");
    let script_pid = terminal.id();
    let sigproxy = || {
        std::fs::read_to_string(format!("/proc/{script_pid}/task/{script_pid}/children"))
            .ok()
            .and_then(|c| c.split_whitespace().next()?.parse::<u32>().ok())
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut out = terminal.stdout.take().unwrap();
    let writer = seen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok(n @ 1..) = out.read(&mut buf) {
            writer
                .lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let asked = poll(Duration::from_secs(20), || {
        seen.lock()
            .unwrap()
            .contains("MFA code for credential set 'dev'")
    });
    let pid = sigproxy();
    let refused = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_err();
    let (traffic_refused, admin_refused) = (refused(port), refused(admin));
    // SIGHUP (the terminal closing) means reload to sigproxy: stop it by its pid.
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let _ = terminal.kill();
    let _ = terminal.wait();
    assert!(asked, "no prompt; terminal:\n{}", seen.lock().unwrap());
    assert!(pid.is_some(), "sigproxy not found under script");
    assert!(
        traffic_refused,
        "the traffic port took a connection during the prompt"
    );
    assert!(
        admin_refused,
        "the admin port took a connection during the prompt"
    );
}
