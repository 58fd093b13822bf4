use super::*;
use crate::service::{Payload, Service};
use std::time::Duration;

fn flags(args: &[&str]) -> Flags {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        flags: Flags,
    }
    let mut argv = vec!["sigproxy"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap().flags
}

fn error(args: &[&str]) -> String {
    Config::from_flags(&flags(args)).unwrap_err().to_string()
}

#[test]
fn the_flags_build_one_route_and_one_credential_set() {
    let c = Config::from_flags(&flags(&[
        "--host",
        "127.0.0.1:9000",
        "--upstream-url-scheme",
        "http",
        "--name",
        "aps",
        "--region",
        "us-west-2",
        "--role-arn",
        "arn:aws:iam::123456789012:role/prom",
        "--sign-host",
        "aps-workspaces.us-west-2.amazonaws.com",
        "--custom-headers",
        "x-a=1,x-b = 2",
        "-s",
        "x-remove",
        "--strip-header",
        "x-too",
        "--duplicate-headers",
        "user-agent",
        "--no-verify-ssl",
        "--transport.idle-conn-timeout",
        "90s",
        "--port",
        ":8005",
    ]))
    .unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8005");
    // aws-sigv4-proxy has no admin listener: none unless --admin-listen names one.
    assert_eq!(c.admin_listen, None);
    let route = &c.routes[0];
    assert_eq!(route.upstream.authority(), "127.0.0.1:9000");
    assert!(!route.upstream.tls());
    assert_eq!(
        route.sign_host.as_deref(),
        Some("aps-workspaces.us-west-2.amazonaws.com")
    );
    let signing = route.signing.as_ref().unwrap();
    assert_eq!(
        (&signing.service, signing.region.as_str()),
        (&Service::from("aps"), "us-west-2")
    );
    assert_eq!(signing.payload, Payload::Signed);
    assert_eq!(route.header_edits.add.len(), 2);
    assert_eq!(route.header_edits.add[1].1, "2");
    assert_eq!(route.header_edits.remove.len(), 2);
    assert_eq!(route.header_edits.duplicate[0].1, "x-original-user-agent");
    assert!(route.tls.insecure_skip_verify);
    assert_eq!(route.upstream_idle_timeout, Duration::from_secs(90));
    let set = &c.credentials[&signing.credentials];
    assert_eq!(
        set.assume_role[0].role_arn,
        "arn:aws:iam::123456789012:role/prom"
    );
    assert_eq!(set.assume_role[0].sts_region.as_deref(), Some("us-west-2"));
}

#[test]
fn defaults_follow_aws_sigv4_proxy() {
    let c = Config::from_flags(&flags(&[
        "--host",
        "search-logs-abc.eu-west-3.es.amazonaws.com",
    ]))
    .unwrap();
    let route = &c.routes[0];
    assert!(route.upstream.tls());
    assert_eq!(route.upstream_idle_timeout, Duration::from_secs(40));
    let signing = route.signing.as_ref().unwrap();
    assert_eq!(
        (&signing.service, signing.region.as_str()),
        (&Service::from("es"), "eu-west-3")
    );
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    // --unsigned-payload is taken for any service, as aws-sigv4-proxy takes it.
    let c = Config::from_flags(&flags(&[
        "--host",
        "aps-workspaces.us-west-2.amazonaws.com",
        "--unsigned-payload",
    ]))
    .unwrap();
    assert_eq!(
        c.routes[0].signing.as_ref().unwrap().payload,
        Payload::Unsigned
    );
    // Without --host the Host picks the upstream.
    let c = Config::from_flags(&flags(&["--port", "8080"])).unwrap();
    assert!(c.routes[0].from_host.is_some());
    assert!(c.access.browser.aws_endpoints);
}

#[test]
fn errors_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--host", "x.example", "--name", "lambda", "--region", "us west"], "command line: --region: 'us west' is not a region name"),
        (&["--host", "foo.example.com"], "command line: --host: 'foo.example.com' is not an AWS endpoint sigproxy knows; set --name and --region"),
        (&["--host", "x.example", "--name", "Bad Name", "--region", "us-east-1"], "--name: 'Bad Name' is not an AWS signing name"),
        (&["--host", "https://x.example"], "--host: 'https://x.example' is a host[:port]"),
        (&["--host", "x.example", "--upstream-url-scheme", "ftp"], "--upstream-url-scheme: 'ftp' is not http or https"),
        (&["--upstream-url-scheme", "ftp"], "--upstream-url-scheme: 'ftp' is not http or https"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--role-arn", "nope"], "--role-arn: 'nope' is not an IAM role ARN"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--custom-headers", "x-a"], "--custom-headers: 'x-a' is not name=value"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--custom-headers", "content-encoding=gzip"], "--custom-headers: 'content-encoding' cannot be edited"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "-s", "x-aws-*"], "--strip: 'x-aws-*': wildcards are not supported"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--transport.idle-conn-timeout", "soon"], "--transport.idle-conn-timeout: 'soon' is not a duration"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--port", "nine"], "--port: 'nine' is not a port (:8080)"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--port", "0.0.0.0:8005"], "command line: --port: listen 0.0.0.0:8005 is not loopback, and nothing limits who may use it: anyone who can reach it acts with the routes' AWS credentials. Set --allowed-clients (CIDRs) or --bearer-token-file"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--port", "0.0.0.0:8005", "--allowed-clients", "0.0.0.0/0"], "--port: listen 0.0.0.0:8005 is not loopback, and nothing limits"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--allowed-clients", "ten"], "--allowed-clients: 'ten' is not an address or CIDR"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--allowed-upstream-hosts", "x.internal"], "--allowed-upstream-hosts: is for running without --host"),
        (&["--sign-host", "a.lambda-url.us-east-1.on.aws"], "--sign-host: needs --host"),
        (&["--allowed-upstream-hosts", "fn.internal"], "--allowed-upstream-hosts: 'fn.internal' is not an AWS endpoint sigproxy knows; set --name and --region"),
        (&["--allowed-upstream-hosts", "fn/x"], "--allowed-upstream-hosts: 'fn/x' is not a host name"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--transport.idle-conn-timeout", "-1s"], "--transport.idle-conn-timeout: '-1s' is not a duration"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "-s", "content-encoding"], "--strip: 'content-encoding' cannot be edited"),
        (&["--upstream-url-scheme", "http"], "--upstream-url-scheme: http serves only the hosts --allowed-upstream-hosts lists"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--allowed-hosts", "a/b"], "--allowed-hosts:"),
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--allowed-origins", "localhost"], "--allowed-origins:"),
    ];
    for (args, want) in cases {
        let got = error(args);
        assert!(got.contains(want), "{args:?}\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn a_wide_port_with_a_guard_is_allowed() {
    let c = Config::from_flags(&flags(&[
        "--host",
        "a.lambda-url.us-east-1.on.aws",
        "--port",
        "0.0.0.0:8005",
        "--allowed-clients",
        "10.0.0.0/8,192.168.0.0/16",
        "--admin-listen",
        "0.0.0.0:9901",
    ]))
    .unwrap();
    assert_eq!(c.listen.to_string(), "0.0.0.0:8005");
    assert_eq!(c.admin_listen.unwrap().to_string(), "0.0.0.0:9901");
    assert_eq!(c.access.allowed_clients.len(), 2);
}

/// What aws-sigv4-proxy users strip for clients that sign requests themselves: sigproxy never
/// sends a client's own, so the flag is taken and changes nothing.
#[test]
fn stripping_what_sigproxy_replaces_is_taken_as_done() {
    let c = Config::from_flags(&flags(&[
        "--host",
        "a.lambda-url.us-east-1.on.aws",
        "-s",
        "Authorization",
        "-s",
        "X-Amz-Security-Token",
        "--strip",
        "x-amz-date",
        "-s",
        "X-Amz-Content-Sha256",
        "-s",
        "x-team",
    ]))
    .unwrap();
    let remove = &c.routes[0].header_edits.remove;
    assert_eq!(remove.len(), 1, "{remove:?}");
    assert_eq!(remove[0].as_str(), "x-team");
}

/// As in aws-sigv4-proxy, --name and --region name what is signed for only together; --region
/// alone is STS's region, and the host names the service and region.
#[test]
fn name_and_region_override_the_host_only_together() {
    let signing = |args: &[&str]| {
        let c = Config::from_flags(&flags(args)).unwrap();
        let s = c.routes[0].signing.clone().unwrap();
        let sts = c.credentials[&s.credentials]
            .assume_role
            .first()
            .and_then(|r| r.sts_region.clone());
        (s.service.to_string(), s.region, sts)
    };
    let host = "aps-workspaces.us-east-1.amazonaws.com";
    let role = "arn:aws:iam::123456789012:role/prom";
    assert_eq!(
        signing(&["--host", host, "--region", "us-west-2", "--role-arn", role]),
        ("aps".into(), "us-east-1".into(), Some("us-west-2".into()))
    );
    assert_eq!(
        signing(&["--host", host, "--name", "es"]),
        ("aps".into(), "us-east-1".into(), None)
    );
    assert_eq!(
        signing(&["--host", host, "--name", "es", "--region", "eu-west-1"]),
        ("es".into(), "eu-west-1".into(), None)
    );
    // Without --host, each Host names them: a lone --region does not override it.
    let c = Config::from_flags(&flags(&["--region", "us-west-2"])).unwrap();
    let settled = c.routes[0]
        .for_host("sqs.eu-central-1.amazonaws.com")
        .unwrap()
        .unwrap();
    assert_eq!(settled.signing.unwrap().region, "eu-central-1");
}

/// A gateway behind a Service: the names clients use, and the pages that may call it.
#[test]
fn allowed_hosts_and_origins_have_flags() {
    let c = Config::from_flags(&flags(&[
        "--host",
        "a.lambda-url.us-east-1.on.aws",
        "--port",
        "0.0.0.0:8005",
        "--allowed-clients",
        "10.0.0.0/8",
        "--allowed-hosts",
        "sigv4-proxy.monitoring.svc,sigv4-proxy",
        "--allowed-origins",
        "http://localhost:8005",
    ]))
    .unwrap();
    let browser = &c.access.browser;
    assert!(browser
        .hosts
        .iter()
        .any(|h| h == "sigv4-proxy.monitoring.svc"));
    assert!(browser.hosts.iter().any(|h| h == "sigv4-proxy"));
    assert_eq!(browser.origins.len(), 1, "{:?}", browser.origins);
}

/// An unchecked certificate protects nothing: S3 bodies are signed (as aws-chunks), as they
/// are over plain http, not sent as UNSIGNED-PAYLOAD.
#[test]
fn an_unchecked_certificate_gets_signed_bodies() {
    let payload = |args: &[&str]| {
        let c = Config::from_flags(&flags(args)).unwrap();
        c.routes[0].signing.clone().unwrap().payload
    };
    let host = "s3.eu-west-1.amazonaws.com";
    assert_eq!(payload(&["--host", host]), Payload::Unsigned);
    assert_eq!(
        payload(&["--host", host, "--no-verify-ssl"]),
        Payload::Streaming
    );
    // Asked for in so many words, it stays unsigned.
    assert_eq!(
        payload(&["--host", host, "--no-verify-ssl", "--unsigned-payload"]),
        Payload::Unsigned
    );
    // Without --host, the same for each Host.
    let c = Config::from_flags(&flags(&["--no-verify-ssl"])).unwrap();
    let settled = c.routes[0].for_host(host).unwrap().unwrap();
    assert_eq!(settled.signing.unwrap().payload, Payload::Streaming);
}

/// Over http, only the listed hosts: never an AWS endpoint in clear text.
#[test]
fn plain_http_from_the_host_serves_only_listed_hosts() {
    let c = Config::from_flags(&flags(&[
        "--upstream-url-scheme",
        "http",
        "--allowed-upstream-hosts",
        "minio:9000",
        "--name",
        "s3",
        "--region",
        "us-east-1",
    ]))
    .unwrap();
    let route = &c.routes[0];
    assert!(route.for_host("minio:9000").is_some());
    assert!(route.for_host("s3.us-east-1.amazonaws.com").is_none());
    assert!(!c.access.browser.aws_endpoints);
}

#[test]
fn a_header_stripped_and_duplicated_is_not_copied() {
    // aws-sigv4-proxy strips before it copies: the client's credential a user strips must not
    // reach the upstream as X-Original-Authorization.
    let c = Config::from_flags(&flags(&[
        "--host",
        "a.lambda-url.us-east-1.on.aws",
        "-s",
        "Authorization",
        "--strip-header",
        "X-Team",
        "--duplicate-headers",
        "authorization",
        "--duplicate-headers",
        "x-team",
        "--duplicate-headers",
        "user-agent",
    ]))
    .unwrap();
    let duplicate = &c.routes[0].header_edits.duplicate;
    assert_eq!(duplicate.len(), 1, "{duplicate:?}");
    assert_eq!(duplicate[0].0.as_str(), "user-agent");
}

#[test]
fn body_limits_and_the_upstream_timeout_have_flags() {
    let host = ["--host", "search-x.eu-west-1.es.amazonaws.com"];
    let defaults = Config::from_flags(&flags(&host)).unwrap();
    assert_eq!(defaults.routes[0].max_body_bytes, 6 * 1024 * 1024);
    assert_eq!(defaults.routes[0].read_timeout, Duration::from_secs(60));
    assert_eq!(
        defaults.limits.max_buffered_body_bytes,
        DEFAULT_MAX_BUFFERED_BODY_BYTES
    );

    // A larger body than the default budget holds: the budget grows to hold one.
    let big = [
        &host[..],
        &["--max-body-bytes", "52428800", "--read-timeout", "5m"],
    ]
    .concat();
    let c = Config::from_flags(&flags(&big)).unwrap();
    assert_eq!(c.routes[0].max_body_bytes, 50 * 1024 * 1024);
    assert_eq!(c.routes[0].read_timeout, Duration::from_secs(300));
    assert_eq!(c.limits.max_buffered_body_bytes, 50 * 1024 * 1024);

    let both = [
        &host[..],
        &[
            "--max-body-bytes",
            "8388608",
            "--max-buffered-body-bytes",
            "67108864",
        ],
    ]
    .concat();
    let c = Config::from_flags(&flags(&both)).unwrap();
    assert_eq!(c.limits.max_buffered_body_bytes, 64 * 1024 * 1024);

    // Errors name the flags.
    let e = error(&[&host[..], &["--max-body-bytes", "999999999"]].concat());
    assert!(e.contains("--max-body-bytes"), "{e}");
    let e = error(
        &[
            &host[..],
            &[
                "--max-body-bytes",
                "8388608",
                "--max-buffered-body-bytes",
                "1048576",
            ],
        ]
        .concat(),
    );
    assert!(
        e.contains("--max-buffered-body-bytes") && e.contains("--max-body-bytes"),
        "{e}"
    );
    let e = error(&[&host[..], &["--read-timeout", "soon"]].concat());
    assert!(e.contains("--read-timeout"), "{e}");
}

#[test]
fn the_scheme_is_read_in_any_case() {
    let c = Config::from_flags(&flags(&[
        "--host",
        "127.0.0.1:9000",
        "--upstream-url-scheme",
        "HTTP",
        "--name",
        "es",
        "--region",
        "eu-west-1",
    ]))
    .unwrap();
    assert!(!c.routes[0].upstream.tls());
}

#[test]
fn custom_headers_that_sigproxy_sets_itself_are_ignored_as_before() {
    // aws-sigv4-proxy added them after signing only where absent: a no-op it took silently.
    let c = Config::from_flags(&flags(&[
        "--host",
        "s3.us-east-1.amazonaws.com",
        "--custom-headers",
        "X-Amz-Content-Sha256=UNSIGNED-PAYLOAD,Host=example.com,x-team=orders",
        "--custom-headers",
        "Authorization=Basic eA==",
    ]))
    .unwrap();
    let add = &c.routes[0].header_edits.add;
    assert_eq!(add.len(), 1, "{add:?}");
    assert_eq!(add[0].0.as_str(), "x-team");
    // A pair that is not name=value is still refused.
    let e = error(&[
        "--host",
        "s3.us-east-1.amazonaws.com",
        "--custom-headers",
        "bad",
    ]);
    assert!(
        e.contains("--custom-headers") && e.contains("name=value"),
        "{e}"
    );
}
