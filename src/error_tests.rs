//! Unit tests of [`super`]: statuses, codes and bodies of every error.

use super::*;

#[test]
fn statuses_match_the_documented_table() {
    assert_eq!(ProxyError::NoRoute.status(), 404);
    assert_eq!(ProxyError::BodyTooLarge { limit: 1 }.status(), 413);
    let down = ProxyError::UpstreamUnreachable {
        kind: "connect",
        detail: "x".into(),
    };
    assert_eq!(down.status(), 502);
    assert_eq!(ProxyError::UpstreamTimeout("x".into()).status(), 504);
    let creds = ProxyError::CredentialsUnavailable {
        credentials: "app".into(),
        state: "fetching them failed",
        reason: "AssumeRole arn:aws:iam::123456789012:role/x failed: AccessDenied".into(),
    };
    assert_eq!(creds.status(), 503);
    let body = String::from_utf8(creds.body(None).to_vec()).unwrap();
    assert!(
        !body.contains("arn:") && !body.contains("AccessDenied"),
        "{body}"
    );
    assert!(
        creds.to_string().contains("AccessDenied"),
        "the log keeps the detail"
    );
}

#[test]
fn survives_a_trip_through_pingora() {
    let original = ProxyError::BodyTooLarge { limit: 10 };
    let wrapped = original.clone().into_pingora();
    assert_eq!(ProxyError::from_pingora(&wrapped), original);
}

#[test]
fn pingora_timeouts_become_504() {
    let e = PingoraError::new(ErrorType::ConnectTimedout);
    assert_eq!(ProxyError::from_pingora(&e).status(), 504);
    let e = PingoraError::new(ErrorType::ReadTimedout);
    assert_eq!(ProxyError::from_pingora(&e).status(), 504);
    let mut e = PingoraError::new(ErrorType::ConnectRefused);
    e.esource = ErrorSource::Upstream;
    let mapped = ProxyError::from_pingora(&e);
    assert_eq!(mapped.status(), 502);
    assert_eq!(mapped.upstream_kind(), Some("connect"));
    let mut e = PingoraError::new(ErrorType::ConnectionClosed);
    e.esource = ErrorSource::Upstream;
    assert_eq!(ProxyError::from_pingora(&e).upstream_kind(), Some("reset"));
}

#[test]
fn body_is_json_with_code_and_route() {
    let body = ProxyError::NoRoute.body(Some("orders"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "no_route");
    assert_eq!(v["error"]["route"], "orders");
}

#[test]
fn a_client_that_reads_nothing_is_not_an_upstream_timeout() {
    let stalled = std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        Stalled(std::time::Duration::from_secs(2)),
    );
    let mut e = PingoraError::because(ErrorType::WriteError, "writing the body", stalled);
    e.esource = ErrorSource::Downstream;
    let mapped = ProxyError::from_pingora(&e);
    assert_eq!(mapped.code(), "client_stalled");
    assert_eq!(mapped.upstream_kind(), None);
    assert_eq!(
        mapped.to_string(),
        "the client read none of the response for client_write_timeout (2s)"
    );
}

#[test]
fn a_body_too_slow_is_a_408_of_its_own_not_an_upstream_timeout() {
    let slow = std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        SlowBody {
            grace: std::time::Duration::from_secs(20),
            rate: 500,
        },
    );
    let mut e = PingoraError::because(ErrorType::ReadError, "when reading body", slow);
    e.esource = ErrorSource::Downstream;
    // pingora wraps it again on its way out of the proxy loop.
    let e = e.into_down();
    let mapped = ProxyError::from_pingora(&e);
    assert_eq!(mapped.status(), 408);
    assert_eq!(mapped.code(), "body_too_slow");
    assert_eq!(mapped.upstream_kind(), None);
    assert_eq!(
        mapped.public_message(),
        "the request body arrived slower than min_request_body_rate (500 bytes/s) after request_body_timeout (20s)"
    );
    // It travels through pingora's phases intact.
    assert_eq!(
        ProxyError::from_pingora(&mapped.clone().into_pingora()),
        mapped
    );
}

#[test]
fn a_failed_write_to_the_client_is_the_client_gone_and_a_failed_read_its_body() {
    let failed = |etype| {
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        let mut e = PingoraError::because(etype, "the client", reset);
        e.esource = ErrorSource::Downstream;
        ProxyError::from_pingora(&e)
    };
    let gone = failed(ErrorType::WriteError);
    assert_eq!(gone.code(), "client_gone");
    assert!(gone
        .to_string()
        .starts_with("the client went away during the response"));
    assert_eq!(gone.upstream_kind(), None);
    assert_eq!(failed(ErrorType::ReadError).code(), "body_read_failed");
}
