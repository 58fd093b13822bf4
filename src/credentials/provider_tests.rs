//! Provider setup against a capturing STS stand-in on 127.0.0.1:0: what the SDK sends for each
//! kind of credential set (action, parameters, region, signing key), and that the answer
//! becomes the credentials.

use super::*;
use crate::config::StsTokenConfig;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

/// Answers every request as STS would for its `Action`, and passes each request (head and
/// body as text) to the receiver.
fn capture_sts() -> (String, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            while reader.read_line(&mut head).is_ok_and(|n| n > 2) {}
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let body = String::from_utf8(body).unwrap();
            let action = body
                .split('&')
                .find_map(|p| p.strip_prefix("Action="))
                .unwrap_or("")
                .to_string();
            let xml = format!(
                "<{action}Response xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><{action}Result>\
                 <Credentials><AccessKeyId>ASIACAPTURED</AccessKeyId><SecretAccessKey>captured-secret</SecretAccessKey>\
                 <SessionToken>captured-token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                 </{action}Result><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{action}Response>"
            );
            let _ = write!(
                &conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\r\n{xml}",
                xml.len()
            );
            let _ = tx.send(format!("{head}{body}"));
        }
    });
    (url, rx)
}

fn source() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "AKIDSOURCE",
        "source-secret",
        None,
        None,
        "test",
    ))
}

fn captured(rx: &mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("a request reached STS")
}

fn assert_issued(creds: &Credentials) {
    assert_eq!(creds.access_key_id(), "ASIACAPTURED");
    assert_eq!(creds.session_token(), Some("captured-token"));
    assert!(creds.expiry().is_some());
}

#[tokio::test]
async fn assume_role_sends_the_role_its_session_and_external_id_signed_by_the_source() {
    let (url, rx) = capture_sts();
    let role = AssumeRoleConfig {
        role_arn: "arn:aws:iam::123456789012:role/orders".into(),
        session_name: "sigproxy-orders".into(),
        external_id: Some("ext-42".into()),
        duration: Duration::from_secs(900),
        sts_region: Some("eu-west-1".into()),
        sts_endpoint: Some(url),
        mfa: None,
    };
    let provider = assume_role(&role, source()).await;
    assert_issued(&provider.provide_credentials().await.unwrap());
    let request = captured(&rx);
    for part in [
        "Action=AssumeRole",
        "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Forders",
        "RoleSessionName=sigproxy-orders",
        "ExternalId=ext-42",
        "DurationSeconds=900",
        "Credential=AKIDSOURCE/",
        "/eu-west-1/sts/aws4_request",
    ] {
        assert!(request.contains(part), "{part} missing:\n{request}");
    }
}

#[tokio::test]
async fn session_and_federation_tokens_are_asked_for_with_their_parameters() {
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    let cases = [
        (StsTokenKind::Session, vec!["Action=GetSessionToken"]),
        (
            StsTokenKind::Federation {
                name: "orders-broker".into(),
                policy: Some(policy.into()),
            },
            vec![
                "Action=GetFederationToken",
                "Name=orders-broker",
                "Policy=%7B%22Version",
            ],
        ),
    ];
    for (kind, parts) in cases {
        let (url, rx) = capture_sts();
        let config = StsTokenConfig {
            kind,
            duration: Duration::from_secs(1800),
            sts_region: Some("us-west-2".into()),
            sts_endpoint: Some(url),
            mfa: None,
        };
        let provider = StsTokenProvider::new(&config, source(), None).await;
        assert_issued(&provider.provide_credentials().await.unwrap());
        let request = captured(&rx);
        let common = [
            "DurationSeconds=1800",
            "Credential=AKIDSOURCE/",
            "/us-west-2/sts/aws4_request",
        ];
        for part in parts.iter().chain(&common) {
            assert!(request.contains(part), "{part} missing:\n{request}");
        }
    }
}
