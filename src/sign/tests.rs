//! Unit tests of [`super`]: the signatures equal aws-sigv4's own `sign()`.

use super::*;
use crate::config::CredentialsConfig;
use crate::target::upstream_target;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn empty_hash_constant_is_right() {
    assert_eq!(sha256_hex(b""), EMPTY_SHA256);
}

#[test]
fn only_stable_headers_are_signed() {
    for name in [
        "host",
        "content-type",
        "content-md5",
        "content-encoding",
        "x-amz-meta-a",
        "x-amz-target",
    ] {
        assert!(is_signed(name), "{name}");
    }
    for name in [
        "user-agent",
        "x-forwarded-for",
        "x-amzn-trace-id",
        "traceparent",
        "accept",
        "content-length",
    ] {
        assert!(!is_signed(name), "{name}");
    }
}

fn signer(service: &str) -> Signer {
    signer_for(service, Algorithm::SigV4, "eu-west-1")
}

/// A signer with `algorithm`; `region` is the region set with SigV4A.
fn signer_for(service: &str, algorithm: Algorithm, region: &str) -> Signer {
    let set = Arc::new(CredentialSet::new(CredentialsConfig::default_chain("t")));
    let config = SigningConfig {
        service: service.into(),
        region: region.into(),
        credentials: "t".into(),
        payload: Payload::Signed,
        algorithm,
    };
    Signer::new(&config, set)
}

/// aws-sigv4's own `sign()`, configured as sigproxy used it before the fast path: the
/// reference every signature must equal.
fn reference(
    service: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    creds: &Credentials,
    payload: &str,
    time: SystemTime,
) -> String {
    let mut settings = SigningSettings::default();
    let kind = Service::from(service);
    if kind.path_rules() == PathRules::S3 {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    if kind.sends_content_sha256() {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let signed: Vec<(&str, &str)> = headers
        .iter()
        .copied()
        .filter(|(n, _)| is_signed(n))
        .collect();
    let request = SignableRequest::new(
        method,
        target,
        signed.into_iter(),
        SignableBody::Precomputed(payload.into()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let authorization = instructions
        .headers()
        .find(|(n, _)| *n == "authorization")
        .map(|(_, v)| v.to_string())
        .unwrap();
    authorization
}

#[test]
fn signatures_equal_aws_sigv4_sign_for_every_shape_of_request() {
    let with_token = Credentials::new(
        "ASIAEXAMPLE1",
        "secret/with+chars=",
        Some("token+/=".repeat(40)),
        None,
        "t",
    );
    let without_token = Credentials::new("AKIAEXAMPLE2", "another-secret", None, None, "t");
    let paths = [
        "/",
        "/orders/42",
        "/a%20b/c%2Fd/caf%C3%A9",
        "/x//y/./z/../w/",
        "/sub-delims!$&'()*+,;=:@",
        "/bucket/dots/../x//y",
        "",
    ];
    let queries = [
        None,
        Some("b=2&a=1&a=0"),
        Some("q=a+b%20c&empty=&flag"),
        Some("prefix=dir%2F&delimiter=%2F&list-type=2"),
        Some("uploads"),
        Some("partNumber=1&uploadId=abc%2B%3D"),
    ];
    let header_sets: [&[(&str, &str)]; 3] = [
        &[("host", "abc.lambda-url.eu-west-1.on.aws")],
        &[
            ("host", "s3.eu-west-1.amazonaws.com"),
            ("content-type", "  application/json;  charset=utf-8 "),
            ("x-amz-meta-b", "two"),
            ("x-amz-meta-a", "one  spaced   value"),
            ("x-amz-meta-a", "second"),
            ("user-agent", "not signed"),
            ("content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="),
        ],
        &[
            ("host", "127.0.0.1:9000"),
            ("x-amz-copy-source", "/bucket/key%20with%20space"),
            ("x-amz-checksum-crc32", "AAAAAA=="),
        ],
    ];
    let payloads = [
        EMPTY_SHA256,
        UNSIGNED_PAYLOAD,
        crate::aws_chunked::STREAMING_PAYLOAD,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    ];
    let times = [
        UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        UNIX_EPOCH + Duration::from_secs(1_795_086_399),
        UNIX_EPOCH + Duration::from_secs(1_795_086_400),
    ];
    let mut checked = 0;
    for service in ["lambda", "s3", "execute-api"] {
        let signer = signer(service);
        let rules = signer.service().path_rules();
        for (i, path) in paths.iter().enumerate() {
            for query in queries {
                let target = upstream_target(path, query, None, "", rules).unwrap();
                let headers = header_sets[(i + checked) % header_sets.len()];
                let creds = if checked % 2 == 0 {
                    &with_token
                } else {
                    &without_token
                };
                let payload = payloads[checked % payloads.len()];
                let time = times[checked % times.len()];
                let method = ["GET", "PUT", "POST"][checked % 3];

                let mut req = RequestHeader::build(method, target.as_bytes(), None).unwrap();
                for (name, value) in headers {
                    req.append_header(name.to_string(), *value).unwrap();
                }
                signer.sign(&mut req, creds, payload, time).unwrap();
                let ours = req.headers["authorization"].to_str().unwrap();
                let want = reference(service, method, &target, headers, creds, payload, time);
                assert_eq!(ours, want, "{service} {method} {target} {headers:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * paths.len() * queries.len());
}

#[test]
fn the_day_s_signing_key_follows_the_credentials() {
    let signer = signer("lambda");
    let time = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let first = Credentials::new("AKID1", "secret-one", None, None, "t");
    let second = Credentials::new("AKID2", "secret-two", None, None, "t");
    for creds in [&first, &second, &first] {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("host", "h").unwrap();
        signer.sign(&mut req, creds, EMPTY_SHA256, time).unwrap();
        let want = reference(
            "lambda",
            "GET",
            "/",
            &[("host", "h")],
            creds,
            EMPTY_SHA256,
            time,
        );
        assert_eq!(req.headers["authorization"].to_str().unwrap(), want);
    }
    assert!(!format!("{signer:?}").contains("secret"), "{signer:?}");
}

/// aws-sigv4's own `sign()` with SigV4A parameters. RFC 6979 makes the ECDSA signature
/// deterministic, so the whole `authorization` header can be compared. (The signature's
/// validity is checked independently of aws-sigv4 by tests/sigv4a.rs's Python verifier.)
fn reference_v4a(
    service: &str,
    region_set: &str,
    target: &str,
    headers: &[(&str, &str)],
    creds: &Credentials,
    payload: &str,
    time: SystemTime,
) -> Vec<(String, String)> {
    let mut settings = SigningSettings::default();
    if Service::from(service).path_rules() == PathRules::S3 {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let identity = creds.clone().into();
    let params = v4a::SigningParams::builder()
        .identity(&identity)
        .region_set(region_set)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let request = SignableRequest::new(
        "PUT",
        target,
        headers.iter().copied(),
        SignableBody::Precomputed(payload.into()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    instructions
        .headers()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn sigv4a_signatures_equal_aws_sigv4_sign() {
    let with_token = Credentials::new(
        "ASIAEXAMPLE1",
        "secret/with+chars=",
        Some("token".into()),
        None,
        "t",
    );
    let without_token = Credentials::new("AKIAEXAMPLE2", "another-secret", None, None, "t");
    let time = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
    let mut checked = 0;
    for (service, region_set) in [
        ("s3", "*"),
        ("s3", "us-east-1,us-west-2"),
        ("lambda", "eu-west-1"),
    ] {
        let signer = signer_for(service, Algorithm::SigV4a, region_set);
        let rules = signer.service().path_rules();
        for creds in [&with_token, &without_token] {
            let target =
                upstream_target("/bucket/a%20b//c", Some("b=2&a=1"), None, "", rules).unwrap();
            let headers = [
                ("host", "m.mrap.accesspoint.s3-global.amazonaws.com"),
                ("x-amz-meta-a", "one"),
            ];
            let mut req = RequestHeader::build("PUT", target.as_bytes(), None).unwrap();
            for (name, value) in headers {
                req.append_header(name, value).unwrap();
            }
            signer
                .sign(&mut req, creds, UNSIGNED_PAYLOAD, time)
                .unwrap();
            let want = reference_v4a(
                service,
                region_set,
                &target,
                &headers,
                creds,
                UNSIGNED_PAYLOAD,
                time,
            );
            for (name, value) in &want {
                assert_eq!(
                    req.headers.get(name.as_str()).map(|v| v.to_str().unwrap()),
                    Some(value.as_str()),
                    "{service} {region_set} {name}"
                );
            }
            let authorization = req.headers["authorization"].to_str().unwrap();
            assert!(
                authorization.starts_with("AWS4-ECDSA-P256-SHA256 Credential="),
                "{authorization}"
            );
            assert!(
                authorization.contains("x-amz-region-set"),
                "{authorization}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 6);
}

#[test]
fn the_sigv4a_key_is_derived_once_per_access_key() {
    let signer = signer_for("s3", Algorithm::SigV4a, "*");
    let first = Credentials::new("AKID1", "secret-one", None, None, "t");
    let second = Credentials::new("AKID2", "secret-two", None, None, "t");
    let day = |secs| UNIX_EPOCH + Duration::from_secs(secs);
    let key = |creds: &Credentials, time| signer.key(creds, &canonical::amz_date(time)[..8], time);
    let a = key(&first, day(1_795_000_000));
    // Another day, the same access key: the same key, not derived again.
    assert!(Arc::ptr_eq(&a, &key(&first, day(1_795_200_000))));
    let b = key(&second, day(1_795_200_000));
    assert_ne!(a, b);
    assert!(!Arc::ptr_eq(&a, &key(&first, day(1_795_200_000))));
    // The published test vector (aws-signing-test-suite's v4a public key belongs to it).
    let akid = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "t",
    );
    assert_eq!(
        hex::encode(key(&akid, day(1_795_000_000))),
        "7efc8c0e65a324242818c5a50c891c6060b6a00717b7ba3cbe3c5d765be9259c"
    );
    assert!(!format!("{signer:?}").contains("7efc8c"), "{signer:?}");
}

#[test]
fn a_sigv4_route_drops_a_client_region_set() {
    let signer = signer("lambda");
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("host", "h").unwrap();
    req.insert_header("x-amz-region-set", "*").unwrap();
    let creds = Credentials::new("AKID1", "secret-one", None, None, "t");
    signer
        .sign(&mut req, &creds, EMPTY_SHA256, UNIX_EPOCH)
        .unwrap();
    assert!(req.headers.get("x-amz-region-set").is_none());
    assert!(!req.headers["authorization"]
        .to_str()
        .unwrap()
        .contains("region-set"));
}
