//! Unit tests of [`super`]: both line formats, as written.

use super::*;
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn header_dumping_modules_are_held_at_info() {
    use tracing::callsite::Identifier;
    use tracing::metadata::Kind;
    struct Site;
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unimplemented!()
        }
    }
    static SITE: Site = Site;
    static NO_FIELDS: &[&str] = &[];
    let meta = |target: &'static str, level: Level| {
        let fields = tracing::field::FieldSet::new(NO_FIELDS, Identifier(&SITE));
        tracing::Metadata::new("e", target, level, None, None, None, fields, Kind::EVENT)
    };
    assert!(!may_log(&meta("pingora_proxy", Level::DEBUG)));
    assert!(!may_log(&meta("pingora_proxy::proxy_h1", Level::TRACE)));
    assert!(!may_log(&meta(
        "pingora_core::protocols::http::v1::client",
        Level::DEBUG
    )));
    assert!(may_log(&meta("pingora_proxy::proxy_h1", Level::INFO)));
    assert!(may_log(&meta("pingora_proxy", Level::WARN)));
    // The credential endpoint's token was printed here (pingora's HTTP app, at trace).
    assert!(!may_log(&meta(
        "pingora_core::apps::http_app",
        Level::TRACE
    )));
    assert!(!may_log(&meta("pingora_core::server", Level::DEBUG)));
    assert!(!may_log(&meta("pingora", Level::DEBUG)));
    assert!(may_log(&meta("pingora_core::server", Level::INFO)));
    assert!(may_log(&meta("pingoraish", Level::DEBUG)));
    assert!(may_log(&meta("sigproxy::proxy", Level::TRACE)));
}

/// The lines `Line` writes for a few events, in one format.
fn lines(json: bool, emit: impl FnOnce()) -> Vec<String> {
    use std::sync::{Arc, Mutex};
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer(Arc::default());
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .event_format(Line { json })
        .finish();
    tracing::subscriber::with_default(subscriber, emit);
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_string).collect()
}

fn emit() {
    let error = Wrapped(std::io::Error::other("root cause"));
    tracing::info!(
        target: "access",
        route = "orders",
        method = %http::Method::GET,
        path = "/a\"b\nc",
        status = 200u16,
        duration_ms = 1.25,
        ratio = f64::NAN,
        ok = true,
        error = &error as &(dyn std::error::Error + 'static),
        "request"
    );
    tracing::warn!("forged\nline");
}

#[derive(Debug)]
struct Wrapped(std::io::Error);
impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outer")
    }
}
impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn plain_lines_have_the_message_then_key_values() {
    let lines = lines(false, emit);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (time, rest) = lines[0].split_once(' ').unwrap();
    assert_eq!(time.len(), 27);
    assert_eq!(
        rest,
        " INFO access: request route=\"orders\" method=GET path=\"/a\\\"b\\nc\" \
         status=200 duration_ms=1.25 ratio=NaN ok=true error=\"outer: root cause\""
    );
    assert!(lines[1].ends_with("  WARN sigproxy::logging::tests: forged\\nline"));
}

#[test]
fn json_lines_are_objects_with_every_field() {
    let lines = lines(true, emit);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["target"], "access");
    assert_eq!(v["message"], "request");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/a\"b\nc");
    assert_eq!(v["status"], 200);
    assert_eq!(v["duration_ms"], 1.25);
    assert!(v["ratio"].is_null());
    assert_eq!(v["ok"], true);
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    let v: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(v["message"], "forged\nline");
}

#[test]
fn timestamps_are_rfc3339_utc_with_microseconds() {
    let mut s = String::new();
    timestamp(
        UNIX_EPOCH + Duration::from_micros(1_795_000_000_000_042),
        &mut s,
    );
    assert_eq!(s, "2026-11-18T11:06:40.000042Z");
}

#[test]
fn strings_are_escaped_only_when_they_need_it() {
    let quote = |s: &str| {
        let mut out = String::new();
        quoted(&mut out, s);
        out
    };
    assert_eq!(quote("/orders/1"), "\"/orders/1\"");
    assert_eq!(quote("a\"b\nc"), "\"a\\\"b\\nc\"");
    assert_eq!(quote("é"), "\"é\"");
    let json = |s: &str| {
        let mut out = String::new();
        json_str(&mut out, s);
        out
    };
    assert_eq!(json("GET"), "\"GET\"");
    for s in ["a\"b\\c", "line\nbreak\u{1b}[31m", "é ü", ""] {
        let back: String = serde_json::from_str(&json(s)).unwrap();
        assert_eq!(back, s);
    }
    let mut out = String::new();
    push_escaped(&mut out, "forged\nline \u{1b}[2J");
    assert_eq!(out, "forged\\nline \\u{1b}[2J");
}

#[test]
fn the_sdks_raw_responses_and_named_credentials_are_withheld() {
    let debug = r#"STS returned an error: response error: ServiceError { raw: Response { status: 200, body: SdkBody { inner: Once(Some(b"<SecretAccessKey>s3cr3t</SecretAccessKey>")) } } }"#;
    let cut = withhold_credentials(debug);
    assert!(cut.starts_with("STS returned an error: response error: ServiceError { "));
    assert!(
        !cut.contains("s3cr3t") && cut.ends_with("[the rest withheld: it may hold credentials]")
    );
    let json = r#"credential_process: bad output {"Version": 1, "SecretAccessKey": "s3cr3t"}"#;
    assert!(!withhold_credentials(json).contains("s3cr3t"));
    let process =
        "external process exited with code 1. Stderr: export AWS_SECRET_ACCESS_KEY=s3cr3t";
    assert!(!withhold_credentials(process).contains("s3cr3t"));
    let snake = r#"bad output {"secret_access_key": "s3cr3t", "session_token": "t0k3n"}"#;
    let cut = withhold_credentials(snake);
    assert!(!cut.contains("s3cr3t") && !cut.contains("t0k3n"), "{cut}");
    let plain = "no providers in chain provided credentials";
    assert_eq!(withhold_credentials(plain), plain);
}
