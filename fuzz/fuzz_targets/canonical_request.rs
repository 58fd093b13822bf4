//! Request canonicalisation: whatever path and query a client sends, the upstream target is
//! either refused (400) or a fixed point of canonicalisation (rewriting it again changes
//! nothing, so what is signed is what is sent), and signing it never fails or panics.
#![no_main]

use aws_credential_types::Credentials;
use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;
use sigproxy::config::{Algorithm, Payload, SigningConfig};
use sigproxy::credentials::CredentialSet;
use sigproxy::service::PathRules;
use sigproxy::sign::Signer;
use sigproxy::target::upstream_target;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn signer(service: &str) -> Signer {
    let config = SigningConfig {
        service: service.into(),
        region: "us-east-1".into(),
        credentials: "app".into(),
        payload: Payload::Signed,
        algorithm: Algorithm::SigV4,
    };
    let set = CredentialSet::new(sigproxy::config::CredentialsConfig {
        name: "app".into(),
        source: sigproxy::config::Source::Default,
        assume_role: vec![],
        sts_token: None,
        refresh_before_expiry: Duration::from_secs(300),
        per_client: None,
        client: None,
    });
    Signer::new(&config, Arc::new(set))
}

fuzz_target!(|input: (&str, &str, bool, &str, &str)| {
    let (path, query, s3, header_name, header_value) = input;
    let rules = if s3 {
        PathRules::S3
    } else {
        PathRules::Normalized
    };
    let query = (!query.is_empty()).then_some(query);
    let Ok(target) = upstream_target(path, query, None, "", rules) else {
        return;
    };
    let (p, q) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target.as_str(), None),
    };
    let again = upstream_target(p, q, None, "", rules).expect("a target is a valid input");
    assert_eq!(again, target, "canonicalisation is not a fixed point");

    let mut req = RequestHeader::build("GET", target.as_bytes(), None).expect("valid target");
    req.insert_header("host", "example.amazonaws.com").unwrap();
    if let (Ok(name), Ok(value)) = (
        http::HeaderName::from_bytes(header_name.as_bytes()),
        http::HeaderValue::from_str(header_value),
    ) {
        let _ = req.append_header(name, value);
    }
    let creds = Credentials::new("AKIDFUZZ", "secret", Some("token".into()), None, "fuzz");
    let signer = signer(if s3 { "s3" } else { "lambda" });
    let _ = signer.sign(
        &mut req,
        &creds,
        sigproxy::sign::EMPTY_SHA256,
        SystemTime::UNIX_EPOCH,
    );
});
