use super::*;
use crate::config::MfaConfig;

/// A device of its own: gates of one serial number share their state, and tests run at once.
fn serial() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("arn:aws:iam::123456789012:mfa/test-{n}")
}

fn gate_of(serial: &str, argv: &[&str]) -> Gate {
    Gate::new(MfaConfig {
        serial_number: serial.into(),
        token_command: Some(argv.iter().map(|s| s.to_string()).collect()),
        withheld_env: Vec::new(),
    })
}

fn gate(argv: &[&str]) -> Gate {
    gate_of(&serial(), argv)
}

/// A command printing `code` and appending a line to `runs` each time it runs.
fn counting(dir: &tempfile::TempDir, code: &str) -> (Gate, std::path::PathBuf) {
    let runs = dir.path().join("runs");
    let script = format!("echo run >> '{}'; echo {code}", runs.display());
    (gate(&["sh", "-c", &script]), runs)
}

fn runs(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |s| s.lines().count())
}

#[test]
fn codes_are_six_digits_and_never_shown() {
    assert_eq!(Code::parse(" 123456\n").unwrap().expose(), "123456");
    for bad in ["12345", "1234567", "12345a", "", "123 456", "１２３４５６"] {
        assert!(Code::parse(bad).is_none(), "{bad}");
    }
    let code = Code::parse("654321").unwrap();
    assert!(!format!("{code:?}").contains("654321"));
}

#[test]
fn refusals_wait_a_window_then_back_off() {
    let waits: Vec<u64> = (1..=7).map(|n| refusal_wait(n).as_secs()).collect();
    assert_eq!(waits, [30, 30, 300, 600, 1200, 2400, 3600]);
    assert_eq!(refusal_wait(1000), MAX_BACKOFF);
}

#[tokio::test]
async fn a_refused_code_stops_the_command_for_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, ran) = counting(&dir, "123456");
    let code = gate.code().await.unwrap();
    assert_eq!(code.expose(), "123456");
    assert!(!gate.needed());
    gate.refused(true, "AccessDenied");
    assert!(gate.needed());
    let no = gate.code().await.unwrap_err();
    assert!(
        no.reason.contains("STS refused the MFA code"),
        "{}",
        no.reason
    );
    assert!(
        no.retry_after > Duration::from_secs(25),
        "{:?}",
        no.retry_after
    );
    assert!(gate.retry_after() > Duration::from_secs(25));
    assert_eq!(runs(&ran), 1, "the command ran again within the window");
}

#[tokio::test]
async fn the_same_code_is_never_sent_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, ran) = counting(&dir, "123456");
    gate.code().await.unwrap();
    gate.accepted();
    // The next renewal comes within the same TOTP window: the command prints the same code.
    let no = gate.code().await.unwrap_err();
    assert!(no.reason.contains("already sent"), "{}", no.reason);
    assert_eq!(runs(&ran), 2);
}

#[tokio::test]
async fn garbage_and_failures_are_reported_without_the_output() {
    let g = gate(&["echo", "secret-looking 99999"]);
    let no = g.code().await.unwrap_err();
    assert!(no.reason.contains("no 6-digit code"), "{}", no.reason);
    assert!(!no.reason.contains("99999"), "{}", no.reason);
    assert!(g.needed());

    let g = gate(&[
        "sh",
        "-c",
        "echo 123456; echo 'token expired\nmore detail' >&2; exit 3",
    ]);
    let no = g.code().await.unwrap_err();
    assert!(no.reason.contains("token expired"), "{}", no.reason);
    assert!(!no.reason.contains("more detail"), "{}", no.reason);
    assert!(!no.reason.contains("123456"), "{}", no.reason);

    let g = gate(&["/nonexistent/ykman"]);
    let no = g.code().await.unwrap_err();
    assert!(no.reason.contains("could not be started"), "{}", no.reason);
}

#[tokio::test]
async fn a_command_that_hangs_is_stopped() {
    let started = std::time::Instant::now();
    let why = command::run(
        &["sleep".into(), "10".into()],
        &[],
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(why.contains("gave no code within"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn without_a_command_the_typed_code_is_used_once() {
    let g = Gate::new(MfaConfig {
        serial_number: "GAHT12345678".into(),
        token_command: None,
        withheld_env: Vec::new(),
    });
    assert!(g.asks_on_terminal());
    g.typed(Code::parse("111111").unwrap());
    assert_eq!(g.code().await.unwrap().expose(), "111111");
    g.accepted();
    let no = g.code().await.unwrap_err();
    assert!(no.reason.contains("no mfa.token_command"), "{}", no.reason);
    assert!(no.retry_after >= Duration::from_secs(3600));
    assert!(g.needed());
}

#[tokio::test]
async fn a_command_flooding_its_output_is_stopped_at_once() {
    // 50 MB, then it lingers: the output is not all taken in, and the command does not get to
    // run out its time.
    let argv = ["sh", "-c", "head -c 50000000 /dev/zero; exec sleep 30"].map(String::from);
    let why = command::run(&argv, &[], Duration::from_secs(8))
        .await
        .unwrap_err();
    assert!(why.contains("printed more than 4096 bytes"), "{why}");
    let argv = ["sh", "-c", "head -c 50000000 /dev/zero >&2; exit 3"].map(String::from);
    let why = command::run(&argv, &[], Duration::from_secs(8))
        .await
        .unwrap_err();
    assert!(why.contains("failed (exit status: 3)"), "{why}");
}

#[tokio::test]
async fn two_sets_on_one_device_never_send_the_same_code() {
    let dir = tempfile::tempdir().unwrap();
    let serial = serial();
    let runs_file = dir.path().join("runs");
    let script = format!("echo run >> '{}'; echo 424242", runs_file.display());
    let a = gate_of(&serial, &["sh", "-c", &script]);
    let b = gate_of(&serial, &["sh", "-c", &script]);
    let (first, second) = tokio::join!(a.code(), b.code());
    let sent = [&first, &second].iter().filter(|c| c.is_ok()).count();
    assert_eq!(sent, 1, "both sets got the window's code");
    a.accepted();
    let no = b.code().await.unwrap_err();
    assert!(no.reason.contains("already sent"), "{}", no.reason);
}

#[tokio::test]
async fn a_set_changed_after_a_refusal_waits_out_the_device_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let serial = serial();
    let runs_file = dir.path().join("runs");
    let script = format!("echo run >> '{}'; echo 515151", runs_file.display());
    let old = gate_of(&serial, &["sh", "-c", &script]);
    old.code().await.unwrap();
    old.refused(true, "AccessDenied");
    // A reload changed the set: a new gate, while the old set still runs.
    let new = gate_of(&serial, &["sh", "-c", &script]);
    let no = new.code().await.unwrap_err();
    assert!(no.reason.contains("STS refused"), "{}", no.reason);
    assert!(no.retry_after > Duration::from_secs(25));
    assert_eq!(runs(&runs_file), 1, "the changed set ran the command again");
}

#[tokio::test]
async fn the_command_gets_none_of_sigproxys_tokens() {
    // (AWS_* keys are withheld by name, always: not set here, where other tests run too.)
    std::env::set_var("MFA_TEST_CLIENT_TOKEN", "a-client-token-0123456789");
    let argv = [
        "sh",
        "-c",
        "echo ${MFA_TEST_CLIENT_TOKEN:-none} ${PATH:+path}",
    ]
    .map(String::from);
    let withheld = ["MFA_TEST_CLIENT_TOKEN".to_string()];
    let printed = command::run(&argv, &withheld, Duration::from_secs(8)).await;
    assert_eq!(printed.unwrap().trim(), "none path");
    // Only what is named is withheld.
    let printed = command::run(&argv, &[], Duration::from_secs(8)).await;
    assert_eq!(printed.unwrap().trim(), "a-client-token-0123456789 path");
}
