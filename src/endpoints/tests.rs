use super::*;

/// What a host must resolve to: its signing name and region, or (`Err`) words of its error.
type Want = Result<(&'static str, &'static str), &'static str>;

/// One row per host shape.
#[rustfmt::skip]
const SHAPES: &[(&str, Want)] = &[
    // Lambda Function URLs.
    ("abc123.lambda-url.eu-west-1.on.aws",                         Ok(("lambda", "eu-west-1"))),
    ("lambda.us-east-2.amazonaws.com",                             Ok(("lambda", "us-east-2"))),
    // API Gateway, public and private (PrivateLink): `<api-id>-<vpce-id>` and the vpce host.
    ("abc.execute-api.us-east-1.amazonaws.com",                    Ok(("execute-api", "us-east-1"))),
    ("a1b2c3-vpce-0123456789abcdef0.execute-api.eu-west-1.amazonaws.com", Ok(("execute-api", "eu-west-1"))),
    ("vpce-0123456789abcdef0-abcd1234.execute-api.eu-west-1.vpce.amazonaws.com", Ok(("execute-api", "eu-west-1"))),
    // S3: path style, virtual host, global, legacy, dual-stack, FIPS.
    ("s3.eu-west-1.amazonaws.com",                                 Ok(("s3", "eu-west-1"))),
    ("my-bucket.s3.eu-west-1.amazonaws.com",                       Ok(("s3", "eu-west-1"))),
    ("my.dotted.bucket.s3.eu-west-1.amazonaws.com",                Ok(("s3", "eu-west-1"))),
    ("s3.amazonaws.com",                                           Ok(("s3", "us-east-1"))),
    ("my-bucket.s3.amazonaws.com",                                 Ok(("s3", "us-east-1"))),
    ("s3-external-1.amazonaws.com",                                Ok(("s3", "us-east-1"))),
    ("my-bucket.s3-us-west-2.amazonaws.com",                       Ok(("s3", "us-west-2"))),
    ("s3.dualstack.ap-south-1.amazonaws.com",                      Ok(("s3", "ap-south-1"))),
    ("my-bucket.s3.dualstack.ap-south-1.amazonaws.com",            Ok(("s3", "ap-south-1"))),
    ("my-bucket.s3-fips.us-east-2.amazonaws.com",                  Ok(("s3", "us-east-2"))),
    ("s3-fips.dualstack.us-west-2.amazonaws.com",                  Ok(("s3", "us-west-2"))),
    // S3 access points, Object Lambda, Outposts, Control.
    ("reports-123456789012.s3-accesspoint.eu-west-1.amazonaws.com", Ok(("s3", "eu-west-1"))),
    ("reports-123456789012.s3-accesspoint.dualstack.eu-west-1.amazonaws.com", Ok(("s3", "eu-west-1"))),
    ("redact-123456789012.s3-object-lambda.us-east-1.amazonaws.com", Ok(("s3-object-lambda", "us-east-1"))),
    ("ap-123456789012.op-01ac5d28a6a232904.s3-outposts.us-west-2.amazonaws.com", Ok(("s3-outposts", "us-west-2"))),
    ("123456789012.s3-control.us-east-1.amazonaws.com",            Ok(("s3", "us-east-1"))),
    // S3 over PrivateLink: path style, virtual host, access point.
    ("bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com",  Ok(("s3", "us-east-1"))),
    ("my-bucket.bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com", Ok(("s3", "us-east-1"))),
    ("accesspoint.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com", Ok(("s3", "us-east-1"))),
    // S3 endpoints that cannot be signed for (yet).
    ("my-bucket--use1-az4--x-s3.s3express-use1-az4.us-east-1.amazonaws.com", Err("S3 Express One Zone endpoints are not supported yet")),
    ("s3express-control.us-east-1.amazonaws.com",                  Err("S3 Express One Zone endpoints are not supported yet")),
    // Multi-Region Access Points: SigV4A for every region (`s3_mrap_hosts_sign_with_sigv4a`).
    ("mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com",     Ok(("s3", "*"))),
    ("Mfzwi23gnjvgw.MRAP.accesspoint.s3-global.amazonaws.com.",    Ok(("s3", "*"))),
    ("mrap.accesspoint.s3-global.amazonaws.com",                   Err("is not an AWS endpoint sigproxy knows")),
    ("a.b.mrap.accesspoint.s3-global.amazonaws.com",               Err("is not an AWS endpoint sigproxy knows")),
    ("m.mrap.accesspoint.s3-global.amazonaws.com.cn",              Err("is not an AWS endpoint sigproxy knows")),
    ("x.s3-global.amazonaws.com",                                  Err("is not an AWS endpoint sigproxy knows")),
    ("my-bucket.s3-website-us-east-1.amazonaws.com",               Err("S3 website endpoints")),
    ("my-bucket.s3-website.eu-west-2.amazonaws.com",               Err("S3 website endpoints")),
    // OpenSearch Service domains (public and VPC) and Serverless collections.
    ("search-logs-abc123def456.eu-central-1.es.amazonaws.com",     Ok(("es", "eu-central-1"))),
    ("vpc-logs-abc123def456.eu-central-1.es.amazonaws.com",        Ok(("es", "eu-central-1"))),
    ("es.eu-central-1.amazonaws.com",                              Ok(("es", "eu-central-1"))),
    ("1a2b3c4d5e6f.us-west-2.aoss.amazonaws.com",                  Ok(("aoss", "us-west-2"))),
    // Services whose host prefix is not their signing name.
    ("aps-workspaces.us-east-1.amazonaws.com",                     Ok(("aps", "us-east-1"))),
    ("bedrock-runtime.us-west-2.amazonaws.com",                    Ok(("bedrock", "us-west-2"))),
    ("bedrock-runtime-fips.us-east-1.amazonaws.com",               Ok(("bedrock", "us-east-1"))),
    ("runtime.sagemaker.eu-west-1.amazonaws.com",                  Ok(("sagemaker", "eu-west-1"))),
    ("email.eu-west-1.amazonaws.com",                              Ok(("ses", "eu-west-1"))),
    ("streams.dynamodb.us-east-1.amazonaws.com",                   Ok(("dynamodb", "us-east-1"))),
    ("123456789012.ddb.us-east-1.amazonaws.com",                   Ok(("dynamodb", "us-east-1"))),
    ("abcdefghij.appsync-api.eu-west-1.amazonaws.com",             Ok(("appsync", "eu-west-1"))),
    ("a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com",             Ok(("iotdata", "us-east-1"))),
    ("data.iot-fips.us-east-1.amazonaws.com",                      Ok(("iotdata", "us-east-1"))),
    // The generic shape, FIPS, dual-stack (`api.aws`), PrivateLink.
    ("dynamodb.us-west-2.amazonaws.com",                           Ok(("dynamodb", "us-west-2"))),
    ("sqs-fips.us-east-1.amazonaws.com",                           Ok(("sqs", "us-east-1"))),
    ("dynamodb.us-east-1.api.aws",                                 Ok(("dynamodb", "us-east-1"))),
    ("vpce-0abc123-def456.sts.eu-west-1.vpce.amazonaws.com",       Ok(("sts", "eu-west-1"))),
    ("vpce-0abc123-def456.runtime.sagemaker.eu-west-1.vpce.amazonaws.com", Ok(("sagemaker", "eu-west-1"))),
    // Global endpoints sign for their partition's home region.
    ("iam.amazonaws.com",                                          Ok(("iam", "us-east-1"))),
    ("sts.amazonaws.com",                                          Ok(("sts", "us-east-1"))),
    ("route53.amazonaws.com",                                      Ok(("route53", "us-east-1"))),
    ("iam.us-gov.amazonaws.com",                                   Ok(("iam", "us-gov-west-1"))),
    // China and GovCloud partitions.
    ("sts.cn-north-1.amazonaws.com.cn",                            Ok(("sts", "cn-north-1"))),
    ("my-bucket.s3.cn-northwest-1.amazonaws.com.cn",               Ok(("s3", "cn-northwest-1"))),
    ("iam.cn-north-1.amazonaws.com.cn",                            Ok(("iam", "cn-north-1"))),
    ("lambda.us-gov-west-1.amazonaws.com",                         Ok(("lambda", "us-gov-west-1"))),
    ("s3-fips.us-gov-west-1.amazonaws.com",                        Ok(("s3", "us-gov-west-1"))),
    // Case, trailing dot and port do not matter.
    ("Lambda.US-EAST-1.amazonaws.com.:443",                        Ok(("lambda", "us-east-1"))),
    // Not guessed.
    ("example.com",                                                Err("is not an AWS endpoint sigproxy knows")),
    ("127.0.0.1",                                                  Err("is not an AWS endpoint sigproxy knows")),
    ("abc.lambda-url.on.aws",                                      Err("is not an AWS endpoint sigproxy knows")),
    ("nosuchservice.us-east-1.amazonaws.com",                      Err("endpoint prefix 'nosuchservice', which no AWS service model has")),
    ("foo.dynamodb.us-east-1.amazonaws.com",                       Err("endpoint prefix 'foo.dynamodb'")),
    ("foo.amazonaws.com",                                          Err("is not an AWS endpoint sigproxy knows")),
    ("lambda.useast1.amazonaws.com",                               Err("is not an AWS endpoint sigproxy knows")),
    ("search-logs-abc.es.amazonaws.com",                           Err("is not an AWS endpoint sigproxy knows")),
    ("my-bucket.s3.somewhere.amazonaws.com",                       Err("is not an AWS endpoint sigproxy knows")),
    ("x.amazonaws.com.evil.example",                               Err("is not an AWS endpoint sigproxy knows")),
];

#[test]
fn every_documented_shape_resolves_to_its_signing_name_and_region() {
    for (host, want) in SHAPES {
        let got = resolve(host);
        match (want, &got) {
            (Ok((service, region)), Ok(e)) => {
                assert_eq!(
                    (e.service.signing_name(), e.region.as_str()),
                    (*service, *region),
                    "{host}"
                );
            }
            (Err(message), Err(e)) => {
                assert!(e.to_string().contains(message), "{host}: {e}");
            }
            _ => panic!("{host}: want {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn s3_hosts_are_the_s3_service() {
    let e = resolve("my-bucket.s3.eu-west-1.amazonaws.com").unwrap();
    assert_eq!(e.service, Service::S3);
    let e = resolve("abc.lambda-url.eu-west-1.on.aws").unwrap();
    assert_eq!(e.service, Service::Lambda);
}

#[test]
fn s3_mrap_hosts_sign_with_sigv4a_and_nothing_else_does() {
    for (host, want) in SHAPES {
        if let (Ok(_), Ok(e)) = (want, resolve(host)) {
            let mrap = host
                .to_ascii_lowercase()
                .contains(".mrap.accesspoint.s3-global.");
            let algorithm = if mrap {
                Algorithm::SigV4a
            } else {
                Algorithm::SigV4
            };
            assert_eq!(e.algorithm, algorithm, "{host}");
        }
    }
}

#[test]
fn an_unknown_prefix_still_tells_its_region() {
    assert_eq!(
        resolve("nosuchservice.eu-west-1.amazonaws.com"),
        Err(EndpointError::UnknownService {
            prefix: "nosuchservice".into(),
            region: Some("eu-west-1".into()),
        })
    );
}

#[test]
fn every_region_botocore_lists_has_the_region_shape() {
    let regions = &table::table().regions;
    assert!(regions.len() > 30);
    for region in regions {
        assert!(is_region(region), "{region}");
    }
    for not in [
        "",
        "us",
        "useast1",
        "us-east",
        "us-east-1a",
        "US-EAST-1",
        "east-1",
        "us-east-1-",
    ] {
        assert!(!is_region(not), "{not}");
    }
}
