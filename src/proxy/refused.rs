//! Whether AWS refused a signed request's credentials (an expired or invalid session token), so
//! that [`super::forward`] signs it afresh and sends it once more. Only AWS's own error shapes
//! count, never words a Lambda function might put in its own response body (that request ran;
//! sending it again would run it twice).

use bytes::Bytes;
use pingora::http::ResponseHeader;

/// S3's XML error envelope (`<Error><Code>ExpiredToken</Code>…`): S3 answers for itself.
pub fn refused_by_s3(body: &[Bytes]) -> bool {
    let body: Vec<u8> = body.concat();
    let text = String::from_utf8_lossy(&body);
    let text = text.trim_start();
    let envelope = text.starts_with("<?xml") || text.starts_with("<Error>");
    envelope
        && ["<Code>ExpiredToken</Code>", "<Code>InvalidToken</Code>"]
            .iter()
            .any(|code| text.contains(code))
}

/// Every other service: the `x-amzn-ErrorType` header set by AWS's front end.
pub fn refused_by_header(response: &ResponseHeader) -> bool {
    const ERROR_TYPES: &[&str] = &[
        "ExpiredToken",
        "InvalidToken",
        "UnrecognizedClient",
        "InvalidClientTokenId",
    ];
    response
        .headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| ERROR_TYPES.iter().any(|e| t.starts_with(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(error_type: Option<&str>) -> ResponseHeader {
        let mut r = ResponseHeader::build(403, None).unwrap();
        if let Some(t) = error_type {
            r.insert_header("x-amzn-ErrorType", t).unwrap();
        }
        r
    }

    #[test]
    fn lambda_and_json_apis_are_read_from_the_error_type_header() {
        let expired = response(Some("ExpiredTokenException:http://internal.amazon.com/"));
        assert!(refused_by_header(&expired));
        let invalid = response(Some("UnrecognizedClientException"));
        assert!(refused_by_header(&invalid));
        let denied = response(Some("AccessDeniedException"));
        assert!(!refused_by_header(&denied));
        // A function's own words are not AWS's verdict: without the header, no retry.
        assert!(!refused_by_header(&response(None)));
    }

    #[test]
    fn s3_is_read_from_its_xml_error_envelope_even_split_across_chunks() {
        let body = [
            Bytes::from_static(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>Expired"),
            Bytes::from_static(
                b"Token</Code><Message>The provided token has expired.</Message></Error>",
            ),
        ];
        assert!(refused_by_s3(&body));
        let other = [Bytes::from_static(
            b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code></Error>",
        )];
        assert!(!refused_by_s3(&other));
        let object = [Bytes::from_static(
            b"an object that mentions <Code>ExpiredToken</Code>",
        )];
        assert!(!refused_by_s3(&object));
    }
}
