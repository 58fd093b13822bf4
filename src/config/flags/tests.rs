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
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9901");
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
        (&["--host", "a.lambda-url.us-east-1.on.aws", "--custom-headers", "authorization=x"], "--custom-headers: 'authorization' cannot be edited"),
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
    assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9901");
    assert_eq!(c.access.allowed_clients.len(), 2);
}
