//! The AWS service a route signs for, resolved once when the configuration is read.
//!
//! Services differ in ways a signing proxy must get right: S3 signs the path as sent and takes
//! unsigned or streamed bodies, Lambda and S3 want `x-amz-content-sha256`, S3 reports a refused
//! token in its body while everyone else uses a header. Each of those is a question asked of
//! this type, so the answers live in one place instead of in string compares across the crate.

use std::fmt;

/// A signed route's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// Amazon S3 (buckets, access points, S3 Control): signing name `s3`.
    S3,
    /// S3 Object Lambda access points: S3's API, signed as `s3-object-lambda`.
    S3ObjectLambda,
    /// S3 on Outposts: S3's API, signed as `s3-outposts`.
    S3Outposts,
    /// Lambda (Function URLs and the Lambda API).
    Lambda,
    /// Any other service, by its SigV4 signing name (`execute-api`, `dynamodb`, `bedrock`, …).
    Other(String),
}

/// How a service canonicalises paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRules {
    /// Normalised, double-encoded when signed (Lambda and most services).
    Normalized,
    /// As is, single-encoded (S3).
    S3,
}

/// How a request body is covered by the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// The body's SHA-256: the body is read (up to `max_body_bytes`) before sending.
    Signed,
    /// `UNSIGNED-PAYLOAD` (S3): the body streams through; integrity rests on TLS.
    Unsigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` (S3): aws-chunked, each chunk signed as it flows.
    Streaming,
}

/// How a request is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// SigV4 (`AWS4-HMAC-SHA256`): an HMAC valid in one region.
    SigV4,
    /// SigV4A (`AWS4-ECDSA-P256-SHA256`): an ECDSA P-256 signature valid in a set of regions
    /// (`X-Amz-Region-Set`), what S3 Multi-Region Access Points require.
    SigV4a,
}

impl Algorithm {
    /// The name that starts the string to sign and the `Authorization` header.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::SigV4 => "AWS4-HMAC-SHA256",
            Algorithm::SigV4a => "AWS4-ECDSA-P256-SHA256",
        }
    }

    /// The name a route's `signing` key uses.
    pub fn key(self) -> &'static str {
        match self {
            Algorithm::SigV4 => "sigv4",
            Algorithm::SigV4a => "sigv4a",
        }
    }

    /// Whether aws-chunked bodies can be signed chunk by chunk: aws-sigv4 signs chunks with
    /// SigV4 only (`sign::v4::sign_chunk`); it has no `STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD`.
    pub fn signs_chunks(self) -> bool {
        self == Algorithm::SigV4
    }
}

/// Where AWS says that the credentials a request was signed with were refused (an expired
/// session token), which is when sigproxy fetches fresh ones and sends the request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenVerdict {
    /// S3's XML error body (`<Code>ExpiredToken</Code>`): S3 sets no error-type header.
    S3ErrorBody,
    /// The `x-amzn-ErrorType` header that AWS's front end sets for every other service.
    ErrorTypeHeader,
}

impl Service {
    /// The service that signs as `name`: S3 and Lambda are told apart from the rest because
    /// they are handled differently, whether named in the file or inferred from the host.
    pub fn from_signing_name(name: &str) -> Service {
        match name {
            "s3" => Service::S3,
            "s3-object-lambda" => Service::S3ObjectLambda,
            "s3-outposts" => Service::S3Outposts,
            "lambda" => Service::Lambda,
            other => Service::Other(other.to_string()),
        }
    }

    /// The SigV4 signing name: the service part of the credential scope.
    pub fn signing_name(&self) -> &str {
        match self {
            Service::S3 => "s3",
            Service::S3ObjectLambda => "s3-object-lambda",
            Service::S3Outposts => "s3-outposts",
            Service::Lambda => "lambda",
            Service::Other(name) => name,
        }
    }

    /// Whether the service speaks S3's REST API: object keys, bucket layouts, its payload
    /// modes and its error bodies.
    pub fn speaks_s3(&self) -> bool {
        matches!(
            self,
            Service::S3 | Service::S3ObjectLambda | Service::S3Outposts
        )
    }

    /// How paths are read, matched and signed: S3 keys are taken as sent (`//`, `..` and all),
    /// every other service normalises them.
    pub fn path_rules(&self) -> PathRules {
        if self.speaks_s3() {
            PathRules::S3
        } else {
            PathRules::Normalized
        }
    }

    /// The payload mode when the route names none. S3 streams bodies: over TLS whose
    /// certificate is checked (`tls`) unsigned (TLS already protects them), else (plain HTTP,
    /// or a certificate taken unchecked) as signed aws-chunks where `algorithm` can sign them,
    /// else hashed whole. Other services accept only a hashed body.
    pub fn default_payload(&self, tls: bool, algorithm: Algorithm) -> Payload {
        match (self.speaks_s3(), tls) {
            (true, true) => Payload::Unsigned,
            (true, false) if algorithm.signs_chunks() => Payload::Streaming,
            _ => Payload::Signed,
        }
    }

    /// Whether the service accepts `payload`: only S3 takes unsigned or aws-chunked bodies.
    pub fn accepts(&self, payload: Payload) -> bool {
        payload == Payload::Signed || self.speaks_s3()
    }

    /// Whether `x-amz-content-sha256` is sent and signed: S3 requires it; Lambda Function URLs
    /// accept it and need it behind CloudFront (origin access control).
    pub fn sends_content_sha256(&self) -> bool {
        self.speaks_s3() || *self == Service::Lambda
    }

    /// Where a refused-credentials verdict is read from.
    pub fn token_verdict(&self) -> TokenVerdict {
        if self.speaks_s3() {
            TokenVerdict::S3ErrorBody
        } else {
            TokenVerdict::ErrorTypeHeader
        }
    }

    /// The prefix of the IAM actions an allow list names: S3's request classifier names every
    /// S3 endpoint's requests `s3:…`, so all of S3's endpoints share it.
    pub fn action_namespace(&self) -> &str {
        if self.speaks_s3() {
            "s3"
        } else {
            self.signing_name()
        }
    }
}

/// Tests, benches and fuzz targets build signing configurations from a name.
impl From<&str> for Service {
    fn from(name: &str) -> Service {
        Service::from_signing_name(name)
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.signing_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_names_round_trip() {
        for name in ["s3", "s3-object-lambda", "s3-outposts", "lambda", "bedrock"] {
            assert_eq!(Service::from_signing_name(name).signing_name(), name);
        }
        assert_eq!(Service::from("dynamodb"), Service::Other("dynamodb".into()));
    }

    /// One row per service kind: the answers the proxy asks for.
    #[test]
    fn each_kind_answers_the_questions_of_its_api() {
        use Payload::*;
        let h = TokenVerdict::ErrorTypeHeader;
        let b = TokenVerdict::S3ErrorBody;
        #[rustfmt::skip]
        let rows = [
            // service,                path rules,             tls default, http default, streams, sha header, verdict, actions
            (Service::S3,              PathRules::S3,          Unsigned, Streaming, true,  true,  b, "s3"),
            (Service::S3ObjectLambda,  PathRules::S3,          Unsigned, Streaming, true,  true,  b, "s3"),
            (Service::S3Outposts,      PathRules::S3,          Unsigned, Streaming, true,  true,  b, "s3"),
            (Service::Lambda,          PathRules::Normalized,  Signed,   Signed,    false, true,  h, "lambda"),
            (Service::from("execute-api"), PathRules::Normalized, Signed, Signed,   false, false, h, "execute-api"),
        ];
        for (service, rules, tls, http, streams, sha, verdict, actions) in rows {
            assert_eq!(service.path_rules(), rules, "{service}");
            assert_eq!(
                service.default_payload(true, Algorithm::SigV4),
                tls,
                "{service}"
            );
            assert_eq!(
                service.default_payload(false, Algorithm::SigV4),
                http,
                "{service}"
            );
            // SigV4A cannot sign chunks: a plain-HTTP S3 body is hashed whole instead.
            let v4a = if http == Streaming { Signed } else { http };
            assert_eq!(
                service.default_payload(false, Algorithm::SigV4a),
                v4a,
                "{service}"
            );
            assert_eq!(
                service.default_payload(true, Algorithm::SigV4a),
                tls,
                "{service}"
            );
            assert!(service.accepts(Signed), "{service}");
            assert_eq!(service.accepts(Unsigned), streams, "{service}");
            assert_eq!(service.accepts(Streaming), streams, "{service}");
            assert_eq!(service.sends_content_sha256(), sha, "{service}");
            assert_eq!(service.token_verdict(), verdict, "{service}");
            assert_eq!(service.action_namespace(), actions, "{service}");
        }
    }
}
