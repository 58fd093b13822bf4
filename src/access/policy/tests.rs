//! Allow rules against real request shapes: the bypasses they must close.

use super::*;
use http::HeaderValue;

fn pat(p: &str) -> PathPattern {
    PathPattern::parse(p).unwrap()
}

fn methods(list: &[Method], paths: &[&str]) -> AllowRule {
    AllowRule {
        methods: Some(list.to_vec()),
        actions: None,
        paths: Some(paths.iter().map(|p| pat(p)).collect()),
    }
}

fn actions(list: &[&str], paths: &[&str]) -> AllowRule {
    AllowRule {
        methods: None,
        actions: Some(
            list.iter()
                .map(|a| ActionPattern::parse(a).unwrap())
                .collect(),
        ),
        paths: Some(paths.iter().map(|p| pat(p)).collect()),
    }
}

fn space(layout: BucketLayout, base: &str) -> Service {
    Service::S3(S3Space {
        layout,
        base: base.as_bytes().to_vec(),
        layout_known: true,
    })
}

fn s3(rules: Vec<AllowRule>) -> Policy {
    Policy::new(rules, space(BucketLayout::PathStyle, ""))
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn check(
    p: &Policy,
    method: Method,
    target: &str,
    h: &[(&'static str, &'static str)],
) -> Result<(), Refusal> {
    p.check(&method, target, &headers(h))
        .map(|pending| assert!(pending.is_none(), "{target}"))
}

const DENIED_ACTION: Result<(), Refusal> = Err(Refusal::Denied(Denied::Action));

#[test]
fn methods_only_rules_grant_plain_object_operations_and_nothing_more() {
    let p = s3(vec![methods(
        &[Method::GET, Method::PUT, Method::POST, Method::DELETE],
        &["/my-bucket/incoming/**", "/my-bucket/*"],
    )]);
    assert_eq!(
        check(&p, Method::PUT, "/my-bucket/incoming/a.csv", &[]),
        Ok(())
    );
    assert_eq!(
        check(
            &p,
            Method::GET,
            "/my-bucket/incoming/a.csv?versionId=3",
            &[]
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &p,
            Method::PUT,
            "/my-bucket/incoming/a.csv?partNumber=1&uploadId=u",
            &[]
        ),
        Ok(())
    );
    assert_eq!(
        check(&p, Method::POST, "/my-bucket/incoming/a.csv?uploads", &[]),
        Ok(())
    );
    // The bypasses of a path-and-method rule.
    for (method, target, h) in [
        (
            Method::PUT,
            "/my-bucket/incoming/a.csv?acl",
            vec![("x-amz-acl", "public-read")],
        ),
        (
            Method::PUT,
            "/my-bucket/incoming/a.csv",
            vec![("x-amz-acl", "public-read")],
        ),
        (
            Method::PUT,
            "/my-bucket/incoming/a.csv",
            vec![(
                "x-amz-grant-read",
                "uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"",
            )],
        ),
        (Method::PUT, "/my-bucket/incoming/a.csv?tagging", vec![]),
        (
            Method::POST,
            "/my-bucket/incoming/a.csv?select&select-type=2",
            vec![],
        ),
        (Method::PUT, "/my-bucket/?policy", vec![]),
        (Method::PUT, "/my-bucket?policy", vec![]),
        (Method::GET, "/my-bucket/?list-type=2", vec![]),
        (Method::DELETE, "/my-bucket/?publicAccessBlock", vec![]),
        (Method::PUT, "/my-bucket/x?unknown-feature", vec![]),
    ] {
        assert_eq!(
            check(&p, method.clone(), target, &h),
            DENIED_ACTION,
            "{method} {target} {h:?}"
        );
    }
    // POST ?delete waits for its body, and only an action rule grants its keys.
    let pending = p
        .check(&Method::POST, "/my-bucket/?delete", &headers(&[]))
        .unwrap()
        .unwrap();
    let body = b"<Delete><Object><Key>incoming/a.csv</Key></Object></Delete>";
    assert_eq!(p.check_body(pending, body), DENIED_ACTION);
}

#[test]
fn action_rules_grant_what_they_name_where_they_say() {
    let p = s3(vec![
        actions(
            &["s3:GetObject", "s3:PutObject*"],
            &["/my-bucket/incoming/**"],
        ),
        actions(&["s3:ListBucket"], &["/my-bucket"]),
        actions(&["s3:DeleteObject"], &["/my-bucket/tmp/**"]),
    ]);
    assert_eq!(
        check(
            &p,
            Method::PUT,
            "/my-bucket/incoming/a",
            &[("x-amz-acl", "private")]
        ),
        Ok(())
    );
    assert_eq!(
        check(&p, Method::PUT, "/my-bucket/incoming/a?tagging", &[]),
        Ok(())
    );
    assert_eq!(
        check(
            &p,
            Method::GET,
            "/my-bucket/?list-type=2&prefix=incoming%2F",
            &[]
        ),
        Ok(())
    );
    assert_eq!(
        check(&p, Method::GET, "/my-bucket/incoming/a?acl", &[]),
        DENIED_ACTION
    );
    assert_eq!(
        check(&p, Method::PUT, "/my-bucket/other/a", &[]),
        Err(Refusal::Denied(Denied::Path))
    );
    let delete = |body: &[u8]| {
        let pending = p
            .check(&Method::POST, "/my-bucket/?delete", &headers(&[]))
            .unwrap()
            .unwrap();
        p.check_body(pending, body)
    };
    assert_eq!(
        delete(
            b"<Delete><Object><Key>tmp/a</Key></Object><Object><Key>tmp/b</Key></Object></Delete>"
        ),
        Ok(())
    );
    // One key outside the grant refuses the whole request.
    assert_eq!(
        delete(b"<Delete><Object><Key>tmp/a</Key></Object><Object><Key>incoming/b</Key></Object></Delete>"),
        Err(Refusal::Denied(Denied::Path))
    );
    assert!(matches!(
        delete(b"<Delete><Object><Key><![CDATA[tmp/a]]></Key></Object></Delete>"),
        Err(Refusal::Ambiguous(_))
    ));
}

#[test]
fn a_copy_needs_a_read_of_its_source() {
    let p = s3(vec![methods(&[Method::GET, Method::PUT], &["/bkt/pub/**"])]);
    assert_eq!(
        check(
            &p,
            Method::PUT,
            "/bkt/pub/x",
            &[("x-amz-copy-source", "bkt/pub/y")]
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &p,
            Method::PUT,
            "/bkt/pub/x",
            &[("x-amz-copy-source", "/bkt/secret/y?versionId=1")]
        ),
        Err(Refusal::Denied(Denied::Path))
    );
    assert_eq!(
        check(
            &p,
            Method::PUT,
            "/bkt/pub/x",
            &[("x-amz-copy-source", "other-bucket/pub/y")]
        ),
        Err(Refusal::Denied(Denied::Path))
    );
    // On a bucket upstream, a source in another bucket cannot be in the route's space.
    let vhost = Policy::new(
        vec![methods(&[Method::GET, Method::PUT], &["/**"])],
        space(
            BucketLayout::VirtualHosted {
                bucket: Some("bkt".into()),
            },
            "",
        ),
    );
    assert_eq!(
        check(&vhost, Method::PUT, "/x", &[("x-amz-copy-source", "bkt/y")]),
        Ok(())
    );
    assert_eq!(
        check(
            &vhost,
            Method::PUT,
            "/x",
            &[("x-amz-copy-source", "someone-elses/y")]
        ),
        Err(Refusal::Denied(Denied::CopySource))
    );
    // Two sources: S3 would pick one, so the request is refused, allow list or not.
    let two = [
        ("x-amz-copy-source", "bkt/pub/y"),
        ("x-amz-copy-source", "bkt/secret/y"),
    ];
    assert!(matches!(
        check(&p, Method::PUT, "/bkt/pub/x", &two),
        Err(Refusal::Ambiguous(_))
    ));
    assert!(matches!(
        check(&s3(vec![]), Method::PUT, "/bkt/pub/x", &two),
        Err(Refusal::Ambiguous(_))
    ));
}

#[test]
fn json_and_query_protocol_actions() {
    let p = Policy::new(
        vec![actions(
            &["dynamodb:GetItem", "dynamodb:Query"],
            &["/**", "/"],
        )],
        Service::Other(Some("dynamodb".into())),
    );
    let json = |target: &'static str, body: &[u8]| {
        let h = [
            ("x-amz-target", target),
            ("content-type", "application/x-amz-json-1.0"),
        ];
        let pending = p.check(&Method::POST, "/", &headers(&h))?.unwrap();
        p.check_body(pending, body)
    };
    assert_eq!(json("DynamoDB_20120810.GetItem", b"{}"), Ok(()));
    assert_eq!(json("DynamoDB_20120810.DeleteTable", b"{}"), DENIED_ACTION);
    // The body read as a form by a lenient server would name another operation.
    assert!(matches!(
        json("DynamoDB_20120810.GetItem", b"Action=DeleteTable"),
        Err(Refusal::Ambiguous(_))
    ));
    assert_eq!(check(&p, Method::POST, "/", &[]), DENIED_ACTION);
    // A target on a request that is not a JSON-protocol POST names nothing to trust.
    let text = [
        ("x-amz-target", "DynamoDB_20120810.GetItem"),
        ("content-type", "text/plain"),
    ];
    assert!(matches!(
        check(&p, Method::POST, "/", &text),
        Err(Refusal::Ambiguous(_))
    ));

    let sqs = Policy::new(
        vec![actions(&["sqs:SendMessage"], &["/**"])],
        Service::Other(Some("sqs".into())),
    );
    assert_eq!(
        check(&sqs, Method::GET, "/123/q?Action=SendMessage", &[]),
        Ok(())
    );
    assert_eq!(
        check(&sqs, Method::GET, "/123/q?Action=DeleteQueue", &[]),
        DENIED_ACTION
    );
    let form = [
        (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        ),
        ("content-length", "30"),
    ];
    let pending = sqs
        .check(&Method::POST, "/123/q", &headers(&form))
        .unwrap()
        .unwrap();
    assert_eq!(
        sqs.check_body(pending, b"Action=DeleteQueue&QueueUrl=x"),
        DENIED_ACTION
    );
    let pending = sqs
        .check(&Method::POST, "/123/q", &headers(&form))
        .unwrap()
        .unwrap();
    assert_eq!(
        sqs.check_body(pending, b"Action=SendMessage&MessageBody=a+b"),
        Ok(())
    );
    // Query and body naming different actions: refused as ambiguous.
    let pending = sqs
        .check(&Method::POST, "/123/q?Action=SendMessage", &headers(&form))
        .unwrap()
        .unwrap();
    assert!(matches!(
        sqs.check_body(pending, b"Action=DeleteQueue"),
        Err(Refusal::Ambiguous(_))
    ));
}

#[test]
fn method_rules_outside_s3_work_as_before() {
    let p = Policy::new(
        vec![
            methods(&[Method::GET, Method::HEAD], &["/reports/**"]),
            methods(&[Method::PUT], &["/uploads/*.csv"]),
        ],
        Service::Other(Some("lambda".into())),
    );
    assert_eq!(check(&p, Method::GET, "/reports/a", &[]), Ok(()));
    assert_eq!(
        check(&p, Method::PUT, "/reports/a", &[]),
        Err(Refusal::Denied(Denied::Path))
    );
    assert_eq!(
        check(&p, Method::DELETE, "/reports/a", &[]),
        Err(Refusal::Denied(Denied::Method))
    );
    assert_eq!(
        check(&p, Method::GET, "/secret/..%2Freports/x", &[]),
        Err(Refusal::Denied(Denied::Path))
    );
    assert_eq!(
        check(
            &Policy::new(vec![], Service::Other(None)),
            Method::DELETE,
            "/x",
            &[]
        ),
        Ok(())
    );
}

#[test]
fn policy_path_decodes_and_refuses_what_an_upstream_could_split() {
    let p = |t| policy_path(t, true);
    assert_eq!(
        p("/reports/a%20b?x=1").as_deref(),
        Some(&b"/reports/a b"[..])
    );
    assert_eq!(p("/a/b/").as_deref(), Some(&b"/a/b/"[..]));
    // Read as one segment here, as two (or a climb) by some upstreams: refused.
    assert_eq!(p("/secret/..%2Freports/x"), None);
    assert_eq!(p("/reports%2Fx"), None);
    assert_eq!(p("/reports%5C..%5Csecret"), None);
    // A Java server drops the path parameter and climbs.
    assert_eq!(p("/prod/app/..;/secret"), None);
    assert_eq!(p("/prod/app/..;x=1/secret"), None);
    // S3 keys are literal: dots stay, escapes are decoded.
    assert_eq!(
        policy_path("/b/r/%2E%2E/k", false).as_deref(),
        Some(&b"/b/r/../k"[..])
    );
    assert_eq!(
        policy_path("/b/r%2Fk", false).as_deref(),
        Some(&b"/b/r/k"[..])
    );
}

#[test]
fn a_copy_never_reaches_outside_the_route_whatever_its_rules() {
    let any = || vec![methods(&[Method::GET, Method::PUT], &["/**"])];
    // A path-style upstream with a base path: `…/my-bucket`.
    for rules in [any(), vec![]] {
        let p = Policy::new(rules, space(BucketLayout::PathStyle, "/my-bucket"));
        let ok = [("x-amz-copy-source", "my-bucket/a.csv")];
        assert_eq!(check(&p, Method::PUT, "/my-bucket/b.csv", &ok), Ok(()));
        for source in ["secret-bucket/payroll.csv", "my-bucket-2/x", "my-bucket"] {
            assert!(
                check(
                    &p,
                    Method::PUT,
                    "/my-bucket/b.csv",
                    &[("x-amz-copy-source", source)]
                )
                .is_err(),
                "{source}"
            );
        }
    }
    // A bucket upstream with a base path: `https://my-bucket.s3…/reports`.
    let vhost = Policy::new(
        any(),
        space(
            BucketLayout::VirtualHosted {
                bucket: Some("my-bucket".into()),
            },
            "/reports",
        ),
    );
    let secret = [("x-amz-copy-source", "my-bucket/secret/payroll.csv")];
    assert_eq!(
        check(&vhost, Method::PUT, "/reports/stolen.csv", &secret),
        Err(Refusal::Denied(Denied::CopySource))
    );
    let fine = [("x-amz-copy-source", "my-bucket/reports/2024.csv")];
    assert_eq!(
        check(&vhost, Method::PUT, "/reports/copy.csv", &fine),
        Ok(())
    );
    // A host whose layout is not known (an S3-compatible service's bucket name could be in its
    // host name): copies cannot be placed, so they are refused.
    let unknown = Policy::new(
        any(),
        Service::S3(S3Space {
            layout: BucketLayout::PathStyle,
            base: Vec::new(),
            layout_known: false,
        }),
    );
    assert_eq!(
        check(
            &unknown,
            Method::PUT,
            "/docs/x",
            &[("x-amz-copy-source", "other/y")]
        ),
        Err(Refusal::Denied(Denied::CopySource))
    );
    assert_eq!(check(&unknown, Method::PUT, "/docs/x", &[]), Ok(()));
}

#[test]
fn a_method_override_header_is_refused_where_methods_are_checked() {
    let p = Policy::new(
        vec![methods(&[Method::GET], &["/**"])],
        Service::Other(Some("execute-api".into())),
    );
    assert_eq!(check(&p, Method::GET, "/orders", &[]), Ok(()));
    // With `_` for `-` too: CGI, PHP, WSGI and Rack read both as the same variable.
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x_http_method_override",
        "x-http_method-override",
        "x_method-override",
    ] {
        assert!(
            matches!(
                check(&p, Method::GET, "/orders", &[(name, "DELETE")]),
                Err(Refusal::Ambiguous(_))
            ),
            "{name}"
        );
    }
    for target in [
        "/orders?_method=DELETE",
        "/orders?a=1&%5Fmethod=PUT",
        "/orders?_METHOD",
        "/orders?a=1;_method=DELETE",
    ] {
        assert!(
            matches!(
                check(&p, Method::GET, target, &[]),
                Err(Refusal::Ambiguous(_))
            ),
            "{target}"
        );
    }
    assert_eq!(
        check(&p, Method::GET, "/orders?method=x&a_method=y", &[]),
        Ok(())
    );
    let open = Policy::new(vec![], Service::Other(None));
    assert_eq!(
        check(&open, Method::GET, "/x", &[("x-http-method", "DELETE")]),
        Ok(())
    );
}
