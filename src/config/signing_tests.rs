//! Unit tests of the signing keys' checks (`signing.rs`).

use super::super::Config;
use super::*;
use std::path::Path;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    Config::parse(yaml, Path::new("conf/test.yaml"))
}

fn error(yaml: &str) -> String {
    parse(yaml).unwrap_err().to_string()
}

#[test]
fn service_and_region_come_from_the_endpoint_table_or_the_route() {
    let route = |upstream: &str, extra: &str| {
        format!("credentials:\n  a: {{}}\nroutes:\n  - upstream: {upstream}\n    credentials: a\n{extra}")
    };
    let signing = |yaml: String| {
        let c = parse(&yaml).unwrap();
        let s = c.routes[0].signing.clone().unwrap();
        (s.service, s.region)
    };
    let es = "https://search-logs-abc123.eu-west-3.es.amazonaws.com";
    assert_eq!(
        signing(route(es, "")),
        (Service::from("es"), "eu-west-3".into())
    );
    let aps = "https://aps-workspaces.eu-west-1.amazonaws.com";
    assert_eq!(
        signing(route(aps, "")),
        (Service::from("aps"), "eu-west-1".into())
    );
    // The route's own keys win; a host of AWS's shape still gives the region.
    let named = route(aps, "    service: execute-api\n");
    assert_eq!(
        signing(named),
        (Service::from("execute-api"), "eu-west-1".into())
    );
    let odd = route(
        "https://newsvc.eu-west-1.amazonaws.com",
        "    service: newsvc\n",
    );
    assert_eq!(signing(odd), (Service::from("newsvc"), "eu-west-1".into()));
    let both = route(
        "http://127.0.0.1:9000",
        "    service: s3\n    region: garage\n",
    );
    assert_eq!(signing(both), (Service::S3, "garage".into()));

    let cases = [
        (route("https://foo.example.com", ""), "conf/test.yaml: routes[0].upstream: 'foo.example.com' is not an AWS endpoint sigproxy knows; set service and region"),
        (route("https://newsvc.us-east-1.amazonaws.com", ""), "routes[0].upstream: 'newsvc.us-east-1.amazonaws.com' names the endpoint prefix 'newsvc', which no AWS service model has"),
        (route("https://b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com", "    service: s3\n    region: us-east-1\n"), "routes[0].upstream: 'b--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com': S3 Express One Zone endpoints are not supported yet: they authorise requests with session credentials"),
        (route("https://example.com", "    service: s3\n"), "routes[0].region: cannot be inferred from upstream host 'example.com'"),
        (route("https://aps-workspaces.eu-west-1.amazonaws.com", "    payload: unsigned\n"), "routes[0].payload: 'unsigned' payloads are for S3 only; aps needs 'signed'"),
    ];
    for (yaml, want) in cases {
        let got = error(&yaml);
        assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
    }
}

#[test]
fn sigv4a_signs_for_a_region_set_and_is_what_mrap_hosts_take() {
    let route = |upstream: &str, extra: &str| {
        format!("credentials:\n  a: {{}}\nroutes:\n  - upstream: {upstream}\n    credentials: a\n{extra}")
    };
    let signing = |yaml: String| parse(&yaml).unwrap().routes[0].signing.clone().unwrap();
    let v4a = |service: Service, region: &str, payload| SigningConfig {
        service,
        region: region.into(),
        credentials: "a".into(),
        payload,
        algorithm: Algorithm::SigV4a,
    };
    let mrap = "m.mrap.accesspoint.s3-global.amazonaws.com";
    let local = "http://127.0.0.1:9000";
    let cases = [
        (route(&format!("https://{mrap}"), ""), v4a(Service::S3, "*", Payload::Unsigned)),
        (
            route(&format!("https://{mrap}"), "    region_set: [us-east-1, eu-west-1]\n    payload: signed\n"),
            v4a(Service::S3, "us-east-1,eu-west-1", Payload::Signed),
        ),
        // Connected to a stand-in, signed for the MRAP name: SigV4A still, and over plain
        // HTTP the body is hashed whole (no SigV4A chunk signatures).
        (route(local, &format!("    sign_host: {mrap}\n")), v4a(Service::S3, "*", Payload::Signed)),
        (
            route(local, "    signing: sigv4a\n    service: s3\n    region_set: [\"*\"]\n    payload: unsigned\n"),
            v4a(Service::S3, "*", Payload::Unsigned),
        ),
        // Without a region_set, the region the host names.
        (
            route("https://b.s3.eu-west-2.amazonaws.com", "    signing: sigv4a\n"),
            v4a(Service::S3, "eu-west-2", Payload::Unsigned),
        ),
        (
            route("https://abc.execute-api.us-east-1.amazonaws.com", "    signing: sigv4a\n    region_set: [us-east-1, us-west-2]\n"),
            v4a(Service::from("execute-api"), "us-east-1,us-west-2", Payload::Signed),
        ),
    ];
    for (yaml, want) in cases {
        assert_eq!(signing(yaml.clone()), want, "{yaml}");
    }
    let plain = signing(route(
        "https://b.s3.eu-west-2.amazonaws.com",
        "    signing: sigv4\n",
    ));
    assert_eq!(plain.algorithm, Algorithm::SigV4);
    assert_eq!(plain.region, "eu-west-2");
}

#[test]
fn sigv4a_mistakes_name_the_key_and_the_reason() {
    let route = |upstream: &str, extra: &str| {
        format!("credentials:\n  a: {{}}\nroutes:\n  - upstream: {upstream}\n    credentials: a\n{extra}")
    };
    let local = "http://127.0.0.1:9000";
    let s3 = "https://b.s3.eu-west-2.amazonaws.com";
    let mrap = "https://m.mrap.accesspoint.s3-global.amazonaws.com";
    let v4a = "    signing: sigv4a\n    service: s3\n";
    let cases = [
        (route(s3, "    signing: sigv5\n"), "conf/test.yaml: routes[0].signing: unknown signing 'sigv5'; expected sigv4 or sigv4a"),
        (route(s3, "    region_set: [us-east-1]\n"), "routes[0].region_set: is for SigV4A routes (signing: sigv4a)"),
        (route(s3, "    signing: sigv4a\n    region: us-east-1\n"), "routes[0].region: a SigV4A route signs for a set of regions: name them in region_set"),
        (route(local, &format!("{v4a}    region_set: []\n")), "routes[0].region_set: must name at least one region"),
        (route(local, &format!("{v4a}    region_set: [us-east-1, \"*\"]\n")), "routes[0].region_set[1]: '*' already covers every region: list it alone"),
        (route(local, &format!("{v4a}    region_set: [\"US East\"]\n")), "routes[0].region_set[0]: 'US East' is not a region name"),
        (route(local, &format!("{v4a}    region_set: [us-east-1, us-east-1]\n")), "routes[0].region_set[1]: 'us-east-1' is listed twice"),
        (route(local, v4a), "routes[0].region_set: is required with signing: sigv4a, as '127.0.0.1' names no region"),
        (route(local, "    signing: sigv4a\n    region_set: [\"*\"]\n"), "routes[0].upstream: '127.0.0.1' is not an AWS endpoint sigproxy knows; set service"),
        (route(local, &format!("{v4a}    region_set: [\"*\"]\n    payload: streaming\n")), "routes[0].payload: 'streaming' cannot be signed with SigV4A"),
        (route(mrap, "    payload: streaming\n"), "routes[0].payload: 'streaming' cannot be signed with SigV4A"),
        (route(mrap, "    signing: sigv4\n"), "routes[0].signing: 'm.mrap.accesspoint.s3-global.amazonaws.com' is an S3 Multi-Region Access Point, which accepts SigV4A only"),
        ("credentials:\n  a: {}\nroutes:\n  - upstream: http://h\n    region_set: [\"*\"]\n".into(), "routes[0].credentials: is required when service, region, payload, signing or region_set is set"),
    ];
    for (yaml, want) in cases {
        let got = error(&yaml);
        assert!(got.contains(want), "\nwant: {want}\ngot:  {got}");
    }
}
