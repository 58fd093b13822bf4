//! MFA-protected sessions against an STS that checks `SerialNumber` and `TokenCode` (the
//! `--mfa-dir` front of tests/peers/aws_peers.py; moto alone accepts any code): the code comes
//! from `token_command`, is sent once, a refusal stops the command for a TOTP window, and the
//! code never reaches the log.

mod common;

use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The peers with the MFA front, and a directory holding the codes it accepts (`codes`), what
/// the token command prints (`code`) and a line per run of it (`runs`).
struct Mfa {
    peers: Peers,
    dir: tempfile::TempDir,
}

impl Mfa {
    fn start(accepted: &str, printed: &str) -> Mfa {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("codes"), format!("{accepted}\n")).unwrap();
        std::fs::write(dir.path().join("code"), format!("{printed}\n")).unwrap();
        std::fs::write(
            dir.path().join("token.sh"),
            format!(
                "echo run >> '{0}/runs'\ncat '{0}/code'\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let peers = Peers::start_with(&["--mfa-dir", dir.path().to_str().unwrap()]);
        Mfa { peers, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("runs")).map_or(0, |s| s.lines().count())
    }

    fn calls(&self) -> Vec<serde_json::Value> {
        self.peers.stats()["mfa_calls"].as_array().unwrap().clone()
    }

    fn mfa_yaml(&self, indent: &str) -> String {
        format!(
            "{indent}mfa:\n{indent}  serial_number: {}\n{indent}  token_command: [/bin/sh, '{}']\n",
            self.peers.get("mfa_serial"),
            self.path("token.sh").display()
        )
    }

    fn session_token_config(&self) -> String {
        format!(
            "credentials:\n  dev:\n    session_token:\n      sts_endpoint: {}\n      sts_region: us-east-1\n{}{}",
            self.peers.get("mfa_sts_endpoint"),
            self.mfa_yaml("      "),
            self.route()
        )
    }

    fn route(&self) -> String {
        format!(
            "routes:\n  - name: fn\n    match: {{ path_prefix: /fn/ }}\n    strip_prefix: true\n    upstream: {}\n    service: lambda\n    region: us-east-1\n    credentials: dev\n",
            self.peers.get("lambda_url")
        )
    }

    fn proxy(&self, config: &str) -> Proxy {
        Proxy::start(config, &self.peers.caller_env())
    }
}

fn wait_until(proxy: &Proxy, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; log:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `-c` file the process runs with.
fn config_path(proxy: &Proxy) -> PathBuf {
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", proxy.pid())).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let at = args.iter().position(|a| *a == b"-c").unwrap();
    PathBuf::from(String::from_utf8(args[at + 1].to_vec()).unwrap())
}

fn assert_not_logged(proxy: &Proxy, code: &str) {
    let log = proxy.log();
    assert!(!log.contains(code), "the MFA code is in the log:\n{log}");
}

#[test]
fn session_token_with_mfa_signs_and_survives_a_reload() {
    let mfa = Mfa::start("482913", "482913");
    let proxy = mfa.proxy(&mfa.session_token_config());
    proxy.wait_ready();
    let r = proxy.get("/fn/hello");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["role_arn"], "session-token");
    let calls = mfa.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["action"], "GetSessionToken");
    assert_eq!(calls[0]["serial"], mfa.peers.get("mfa_serial"));
    assert_eq!(calls[0]["code"], "482913");
    assert_eq!(calls[0]["accepted"], true);
    assert_eq!(mfa.runs(), 1);

    // A reload that leaves the set as it was keeps its session: no new code is asked for.
    let path = config_path(&proxy);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        format!("{text}  - name: other\n    match: {{ path_prefix: /other/ }}\n    upstream: http://127.0.0.1:9\n"),
    )
    .unwrap();
    proxy.signal("HUP");
    wait_until(&proxy, "the reload", || {
        proxy.metric("sigproxy_config_reloads_total", &[("result", "success")]) == Some(1.0)
    });
    assert_eq!(proxy.get("/fn/again").status, 200);
    assert_eq!(mfa.runs(), 1, "the reload asked for a new code");
    assert_eq!(mfa.calls().len(), 1);
    assert_not_logged(&proxy, "482913");
}

#[test]
fn assume_role_with_mfa_sends_serial_and_code() {
    let mfa = Mfa::start("731640", "731640");
    let config = format!(
        "credentials:\n  dev:\n    assume_role:\n      role_arn: {}\n      external_id: {}\n      session_name: mfa-session\n      sts_endpoint: {}\n      sts_region: us-east-1\n{}{}",
        mfa.peers.get("role_arn"),
        mfa.peers.get("external_id"),
        mfa.peers.get("mfa_sts_endpoint"),
        mfa.mfa_yaml("      "),
        mfa.route()
    );
    let proxy = mfa.proxy(&config);
    proxy.wait_ready();
    let r = proxy.get("/fn/hello");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["role_arn"], mfa.peers.get("role_arn"));
    assert_eq!(r.json()["session_name"], "mfa-session");
    let calls = mfa.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["action"], "AssumeRole");
    assert_eq!(calls[0]["serial"], mfa.peers.get("mfa_serial"));
    assert_eq!(calls[0]["code"], "731640");
    assert_eq!(calls[0]["accepted"], true);
    assert_not_logged(&proxy, "731640");
}

#[test]
fn a_refused_code_makes_the_set_wait_for_the_next_window() {
    let mfa = Mfa::start("111111", "205938");
    let proxy = mfa.proxy(&mfa.session_token_config());
    wait_until(&proxy, "the refusal in /readyz", || {
        proxy.admin_get("/readyz").status == 503 && !mfa.calls().is_empty()
    });
    let ready = proxy.admin_get("/readyz").json();
    let reason = ready["credentials"]["dev"]["reason"].as_str().unwrap();
    assert!(reason.contains("MFA code needed for dev"), "{reason}");
    assert!(reason.contains("STS refused the MFA code"), "{reason}");
    assert!(!reason.contains("205938"), "{reason}");

    let r = proxy.get("/fn/hello");
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "credentials_unavailable");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("an MFA code is needed"), "{message}");

    // Without the gate, the refresh loop's own backoff (1 s, 2 s) would run it again here.
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(
        mfa.runs(),
        1,
        "the command ran again within the TOTP window"
    );
    let calls = mfa.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["accepted"], false);
    assert_not_logged(&proxy, "205938");
}

#[test]
fn garbage_from_the_command_is_a_clear_reason_without_the_output() {
    let mfa = Mfa::start("111111", "oops 8675309");
    let proxy = mfa.proxy(&mfa.session_token_config());
    wait_until(&proxy, "the failure in /readyz", || {
        proxy.admin_get("/readyz").status == 503 && mfa.runs() > 0
    });
    wait_until(&proxy, "the reason in /readyz", || {
        proxy.admin_get("/readyz").json()["credentials"]["dev"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("printed no 6-digit code"))
    });
    let body = String::from_utf8(proxy.admin_get("/readyz").body).unwrap();
    assert!(body.contains("MFA code needed for dev"), "{body}");
    assert!(!body.contains("8675309"), "{body}");
    assert!(mfa.calls().is_empty(), "garbage went to STS");
    assert_eq!(proxy.get("/fn/x").status, 503);
    assert_not_logged(&proxy, "8675309");
}

fn check(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mfa.yaml");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sigproxy"))
        .args(["--check", "-c", path.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        text.replace(&*path.to_string_lossy(), "mfa.yaml"),
    )
}

#[test]
fn misplaced_or_malformed_mfa_is_refused_naming_file_and_key() {
    let route = "routes:\n  - upstream: http://127.0.0.1:9\n    service: lambda\n    region: us-east-1\n    credentials: m\n";
    let serial = "arn:aws:iam::123456789012:mfa/alice";
    let (ok, text) = check(&format!(
        "credentials:\n  m:\n    session_token:\n      mfa: {{ serial_number: {serial}, token_command: [ykman, oath, accounts, code, -s, aws] }}\n{route}"
    ));
    assert!(ok, "{text}");
    for (set, want) in [
        (
            format!("    federation_token:\n      name: broker\n      mfa: {{ serial_number: {serial} }}\n"),
            "mfa.yaml: credentials.m.federation_token.mfa: STS GetFederationToken takes no MFA code",
        ),
        (
            "    session_token:\n      mfa: { serial_number: 'alice' }\n".to_string(),
            "mfa.yaml: credentials.m.session_token.mfa.serial_number: 'alice' is neither an MFA device ARN",
        ),
    ] {
        let (ok, text) = check(&format!("credentials:\n  m:\n{set}{route}"));
        assert!(!ok, "accepted:\n{set}");
        assert!(text.contains(want), "want: {want}\ngot: {text}");
    }
}

#[test]
fn a_code_is_sent_once_even_when_sts_fails_transiently() {
    // The AWS SDK retries a 503 (and throttling, and timeouts) with the same request: for a
    // call carrying an MFA code that is the same code sent again, which AWS refuses as reused
    // and counts towards locking the device.
    let mfa = Mfa::start("620417", "620417");
    std::fs::write(mfa.path("unavailable"), "").unwrap();
    let proxy = mfa.proxy(&mfa.session_token_config());
    wait_until(&proxy, "the first STS call", || !mfa.calls().is_empty());
    // The SDK's standard retries back off about a second each (jittered), three attempts.
    std::thread::sleep(Duration::from_secs(5));
    let calls = mfa.calls();
    assert_eq!(calls.len(), 1, "the same code went to STS again: {calls:?}");
    assert_eq!(mfa.runs(), 1);
    assert_not_logged(&proxy, "620417");
}

#[test]
fn the_token_command_gets_none_of_sigproxys_aws_credentials() {
    let mfa = Mfa::start("394857", "394857");
    // The command records its environment before printing the code.
    std::fs::write(
        mfa.path("token.sh"),
        format!(
            "env > '{0}/env'\necho run >> '{0}/runs'\ncat '{0}/code'\n",
            mfa.dir.path().display()
        ),
    )
    .unwrap();
    let proxy = mfa.proxy(&mfa.session_token_config());
    proxy.wait_ready();
    let secret = mfa.peers.get("secret_access_key");
    let env = std::fs::read_to_string(mfa.path("env")).unwrap();
    assert!(env.contains("PATH="), "{env}");
    for name in ["AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="] {
        assert!(!env.contains(name), "the command got {name}");
    }
    assert!(!env.contains(secret), "the command got the secret key");
}

#[test]
fn an_upstream_that_says_the_token_expired_spends_no_mfa_code() {
    // Each fetch of an MFA set runs the token command (a prompt, a hardware key's touch) and
    // spends a code. Only AWS's own front end is believed when it says the credentials were
    // refused; this stand-in is not one, so its 403 is relayed and no code is asked for.
    let mfa = Mfa::start("482913", "482913");
    let proxy = mfa.proxy(&mfa.session_token_config());
    proxy.wait_ready();
    assert_eq!(proxy.get("/fn/before").status, 200);
    let runs = mfa.runs();
    let expired = request(
        mfa.peers.lambda_addr(),
        "POST",
        "/__control/expire-keys",
        &[],
        b"",
    );
    assert_eq!(expired.status, 200);
    let r = proxy.get("/fn/after");
    assert_eq!(r.status, 403, "{}", r.text());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        mfa.runs(),
        runs,
        "the token command ran for an upstream's words"
    );
    assert_eq!(mfa.calls().len(), 1, "{:?}", mfa.calls());
}
