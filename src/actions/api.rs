//! The operation of a JSON-protocol or query-protocol AWS API, as its IAM action.
//!
//! These APIs put every operation on one path (`POST /`), so a path rule cannot tell
//! `dynamodb:GetItem` from `dynamodb:DeleteTable`. The operation is named once, in the
//! `X-Amz-Target` header (JSON protocol: `DynamoDB_20120810.GetItem`) or the `Action` parameter
//! (query protocol, in the query string or the form body). Each is taken only when it is
//! unique: with two, the service and this check could each act on a different one.

use super::{query_params, Unclear};
use flate2::read::MultiGzDecoder;
use http::{HeaderMap, Method};
use percent_encoding::percent_decode;
use std::borrow::Cow;
use std::io::Read;

/// Where a request names its operation, as far as an allow list may trust it.
#[derive(Debug, PartialEq, Eq)]
pub enum Named {
    /// No `X-Amz-Target`, no `Action`, no form body: only a rule's `methods` can grant it.
    Nothing,
    /// A query-protocol request without a body: the `Action` in its query.
    Query(String),
    /// JSON protocol: the `X-Amz-Target`. Its body must not read as a form naming an `Action`
    /// too (see [`form_names_action`]), for a service lenient about content types.
    Json(String, Coding),
    /// A query-protocol form: the body's `Action`, which must agree with the query's, if any
    /// (see [`form_action`] and [`combine`]).
    Form(Option<String>, Coding),
}

/// How a body the check reads is encoded (`Content-Encoding`): AWS SDKs gzip some request
/// bodies (CloudWatch's `PutMetricData`), and the service reads them inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
}

/// The most a gzip body is inflated to for the check; a larger one is refused.
const INFLATED_MAX: u64 = 4 * 1024 * 1024;

/// Where a request to a JSON- or query-protocol API names its operation. An operation is
/// taken only from a request whose shape leaves the service one place to read it from:
/// - JSON protocol: `POST /` with one `X-Amz-Target` (`Prefix_Version.Operation` →
///   `service:Operation`), one `Content-Type: application/x-amz-json-1.0` (or `1.1`) and no
///   `Action` in the query;
/// - query protocol: no `X-Amz-Target`; `GET /` or `POST /` without a body, `Action` in the
///   query; or `POST /` with one `Content-Type: application/x-www-form-urlencoded`, `Action` in
///   the query, the body or both alike.
///
/// On SQS the path may also be a queue's, `/<account>/<queue>` (its query protocol's
/// `QueueUrl`); every other JSON and query API takes requests on `/` only.
///
/// Anything else that names an operation is [`Unclear::Ambiguous`]: the service might act on
/// another one than this check read (a query-protocol service reading a body whatever its
/// content type, a REST API ignoring both and acting on its method and path). A name that is
/// not an operation name is [`Unclear::Unknown`]. `path` is the upstream path, decoded.
pub fn operation(
    service: &str,
    method: &Method,
    path: &[u8],
    headers: &HeaderMap,
    query: &str,
) -> Result<Named, Unclear> {
    let target = target_operation(headers)?;
    let params = query_params(query)?;
    let action = single_action(params.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
    let media = media_type(headers)?;
    let form = media
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("application/x-www-form-urlencoded"));
    if target.is_none() && action.is_none() && !(form && method == Method::POST) {
        return Ok(Named::Nothing);
    }
    let shape = |why: &str| Err(Unclear::Ambiguous(format!("{why}: {SHAPES}")));
    if !api_path(service, path) {
        return shape("an operation is named on a path other than /");
    }
    let with = |op: String| format!("{service}:{op}");
    if let Some(target) = target {
        let json = media.as_deref().is_some_and(|m| {
            m.eq_ignore_ascii_case("application/x-amz-json-1.0")
                || m.eq_ignore_ascii_case("application/x-amz-json-1.1")
        });
        return match (method == Method::POST, json, action) {
            (true, true, None) => Ok(Named::Json(with(target), coding(headers)?)),
            (_, _, Some(_)) => shape("X-Amz-Target and an Action in the query"),
            _ => shape("X-Amz-Target on a request that is not a JSON-protocol POST"),
        };
    }
    let bodiless = !headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers
            .get(http::header::CONTENT_LENGTH)
            .is_none_or(|v| v.as_bytes() == b"0");
    match (method, action) {
        (&Method::GET | &Method::POST, Some(action)) if bodiless => Ok(Named::Query(with(action))),
        (&Method::POST, action) if form => Ok(Named::Form(action.map(with), coding(headers)?)),
        _ => shape("an Action on a request that is not a query-protocol GET or form POST"),
    }
}

/// Whether `path` is where `service`'s JSON or query API takes requests: `/`, and for SQS
/// also a queue's own path (`/<account>/<queue>`, its query protocol's `QueueUrl`).
fn api_path(service: &str, path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    let mut segments = path.split(|&b| b == b'/');
    service == "sqs"
        && segments.next() == Some(b"")
        && segments
            .next()
            .is_some_and(|a| !a.is_empty() && a.iter().all(u8::is_ascii_digit))
        && segments.next().is_some_and(|q| !q.is_empty())
        && segments.next().is_none()
}

/// The shapes [`operation`] takes an operation from, for the error body.
const SHAPES: &str = "an operation is taken from POST / with X-Amz-Target and Content-Type \
     application/x-amz-json-1.x, GET / or POST / without a body and with ?Action=, or POST / \
     with an application/x-www-form-urlencoded body";

/// The operation the one `X-Amz-Target` names (`Prefix_Version.Operation` or
/// `Prefix.Operation`); two are [`Unclear::Ambiguous`].
fn target_operation(headers: &HeaderMap) -> Result<Option<String>, Unclear> {
    let mut targets = headers.get_all("x-amz-target").iter();
    let value = match (targets.next(), targets.next()) {
        (None, _) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(Unclear::Ambiguous(
                "X-Amz-Target is sent more than once".into(),
            ))
        }
        (Some(value), None) => value,
    };
    let value = value.to_str().map_err(|_| {
        Unclear::Ambiguous("X-Amz-Target has bytes that are not visible ASCII".into())
    })?;
    match value.rsplit_once('.') {
        Some((prefix, op)) if !prefix.is_empty() => operation_name(op, "X-Amz-Target").map(Some),
        _ => Err(Unclear::Unknown(format!(
            "X-Amz-Target '{value}' is not Prefix.Operation"
        ))),
    }
}

/// The media type of the one `Content-Type` (parameters dropped); two are
/// [`Unclear::Ambiguous`]: a service could read either.
fn media_type(headers: &HeaderMap) -> Result<Option<String>, Unclear> {
    let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
    match (types.next(), types.next()) {
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(Unclear::Ambiguous(
            "Content-Type is sent more than once".into(),
        )),
        (Some(value), None) => Ok(Some(
            String::from_utf8_lossy(value.as_bytes())
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        )),
    }
}

/// The body's `Content-Encoding`: none (or `identity`), or `gzip` alone; any other is
/// [`Unclear::Ambiguous`], since the check could not read what the service reads.
pub fn coding(headers: &HeaderMap) -> Result<Coding, Unclear> {
    let mut codings = Vec::new();
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        for token in value.as_bytes().split(|&b| b == b',') {
            let token = token.trim_ascii().to_ascii_lowercase();
            if !token.is_empty() && token != b"identity" {
                codings.push(token);
            }
        }
    }
    match codings.as_slice() {
        [] => Ok(Coding::Identity),
        [one] if one == b"gzip" || one == b"x-gzip" => Ok(Coding::Gzip),
        _ => Err(Unclear::Ambiguous(
            "a Content-Encoding other than gzip on a body an operation is read from".into(),
        )),
    }
}

/// `body` as the service reads it: inflated when gzip, up to [`INFLATED_MAX`].
pub fn decoded(body: &[u8], coding: Coding) -> Result<Cow<'_, [u8]>, Unclear> {
    if coding == Coding::Identity {
        return Ok(Cow::Borrowed(body));
    }
    let mut inflated = Vec::new();
    let read = MultiGzDecoder::new(body)
        .take(INFLATED_MAX + 1)
        .read_to_end(&mut inflated);
    match read {
        Err(_) => Err(Unclear::Ambiguous("the gzip body does not inflate".into())),
        Ok(n) if n as u64 > INFLATED_MAX => Err(Unclear::Ambiguous(format!(
            "the gzip body inflates past {} MiB",
            INFLATED_MAX >> 20
        ))),
        Ok(_) => Ok(Cow::Owned(inflated)),
    }
}

/// Whether `body`, read as a form the way a lenient server would, names an `Action`: a JSON
/// request's body must not (its `X-Amz-Target` is what was checked).
pub fn form_names_action(body: &[u8]) -> bool {
    body.split(|&b| b == b'&').any(|pair| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
        let spaced: Vec<u8> = name
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        let decoded: Vec<u8> = percent_decode(&spaced).collect();
        decoded.trim_ascii().eq_ignore_ascii_case(b"Action")
    })
}

/// The one `Action` in an `application/x-www-form-urlencoded` body (form decoding: `+` is a
/// space) → `service:Action`; `None` without one. Two are [`Unclear::Ambiguous`].
///
/// A query-protocol service reads parameters from the query string and the body alike, so a
/// caller that has both a [`head_action`] and a `form_action` must refuse the request unless
/// they are one and the same; [`combine`] does that.
pub fn form_action(service: &str, body: &[u8]) -> Result<Option<String>, Unclear> {
    let decode = |raw: &[u8]| {
        let spaced: Vec<u8> = raw
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        String::from_utf8(percent_decode(&spaced).collect())
            .map_err(|_| Unclear::Ambiguous("the form body is not UTF-8 once decoded".into()))
    };
    let mut params = Vec::new();
    for pair in body.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        params.push((decode(name)?, decode(value)?));
    }
    let action = single_action(params.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
    Ok(action.map(|op| format!("{service}:{op}")))
}

/// The action of a query-protocol request whose query and body may each name one: both must
/// agree when both do.
pub fn combine(head: Option<String>, form: Option<String>) -> Result<Option<String>, Unclear> {
    match (head, form) {
        (Some(h), Some(f)) if h != f => Err(Unclear::Ambiguous(format!(
            "the query names {h} but the body names {f}"
        ))),
        (h, f) => Ok(h.or(f)),
    }
}

/// The value of the one `Action` parameter. Names are compared case-insensitively here, so
/// `action=` next to `Action=` counts as a second one rather than slipping past.
fn single_action<'a>(
    params: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Option<String>, Unclear> {
    let mut found = None;
    for (name, value) in params {
        if !name.eq_ignore_ascii_case("Action") {
            continue;
        }
        if found.is_some() {
            return Err(Unclear::Ambiguous("Action is given more than once".into()));
        }
        found = Some(operation_name(value, "Action")?);
    }
    Ok(found)
}

/// An operation name: letters and digits only, so it cannot smuggle a wildcard, a second
/// service prefix or anything else into the action it becomes.
fn operation_name(name: &str, from: &str) -> Result<String, Unclear> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Unclear::Unknown(format!(
            "{from} '{name}' is not an operation name"
        )));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(targets: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for t in targets {
            h.append("x-amz-target", HeaderValue::from_str(t).unwrap());
        }
        h
    }

    fn ambiguous<T: std::fmt::Debug>(r: Result<T, Unclear>) -> bool {
        matches!(r, Err(Unclear::Ambiguous(_)))
    }

    fn unknown<T: std::fmt::Debug>(r: Result<T, Unclear>) -> bool {
        matches!(r, Err(Unclear::Unknown(_)))
    }

    const JSON: &str = "application/x-amz-json-1.0";
    const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

    /// `operation` on `POST /` (or `method`) with these targets, content type and length.
    fn named(
        method: Method,
        path: &str,
        targets: &[&str],
        content_type: Option<&str>,
        length: Option<&str>,
        query: &str,
    ) -> Result<Named, Unclear> {
        let mut h = headers(targets);
        if let Some(t) = content_type {
            h.append("content-type", HeaderValue::from_str(t).unwrap());
        }
        if let Some(l) = length {
            h.append("content-length", HeaderValue::from_str(l).unwrap());
        }
        operation("svc", &method, path.as_bytes(), &h, query)
    }

    fn json(targets: &[&str]) -> Result<Named, Unclear> {
        named(Method::POST, "/", targets, Some(JSON), Some("2"), "")
    }

    #[test]
    fn json_targets_name_the_action() {
        let op = |s: &str| Named::Json(s.to_string(), Coding::Identity);
        assert_eq!(
            json(&["DynamoDB_20120810.GetItem"]).unwrap(),
            op("svc:GetItem")
        );
        assert_eq!(
            json(&["AWSCognitoIdentityProviderService.InitiateAuth"]).unwrap(),
            op("svc:InitiateAuth")
        );
        let json11 = Some("application/x-amz-json-1.1");
        let h = named(Method::POST, "/", &["A.B"], json11, Some("2"), "");
        assert_eq!(h.unwrap(), op("svc:B"));
        assert!(ambiguous(json(&["X.GetItem", "X.DeleteTable"])));
        for bad in [
            "GetItem",
            ".GetItem",
            "DynamoDB_20120810.",
            "X.Get*",
            "X.Get:Item",
        ] {
            assert!(unknown(json(&[bad])), "{bad}");
        }
    }

    #[test]
    fn a_target_counts_only_on_a_json_protocol_post_to_the_root() {
        let t = &["X.GetItem"][..];
        for (method, path, content_type, query) in [
            // Not JSON: a query-protocol service may read the body as its parameters.
            (Method::POST, "/", Some("text/plain"), ""),
            (Method::POST, "/", None, ""),
            (Method::POST, "/", Some(FORM), ""),
            // A REST API acts on its method and path, not on the header.
            (Method::DELETE, "/", Some(JSON), ""),
            (Method::GET, "/", Some(JSON), ""),
            (
                Method::POST,
                "/2015-03-31/functions/f/invocations",
                Some(JSON),
                "",
            ),
            // Two places naming it.
            (Method::POST, "/", Some(JSON), "Action=GetItem"),
        ] {
            let got = named(method.clone(), path, t, content_type, Some("2"), query);
            assert!(ambiguous(got), "{method} {path} {content_type:?} {query}");
        }
        let mut twice = headers(t);
        twice.append("content-type", HeaderValue::from_static(JSON));
        twice.append("content-type", HeaderValue::from_static("text/plain"));
        assert!(ambiguous(operation("svc", &Method::POST, b"/", &twice, "")));
    }

    #[test]
    fn query_actions_name_the_action() {
        let act = |method: Method, q| named(method, "/", &[], None, None, q);
        let op = |s: &str| Named::Query(s.to_string());
        let q = "Action=GetCallerIdentity&Version=2011-06-15";
        assert_eq!(act(Method::GET, q).unwrap(), op("svc:GetCallerIdentity"));
        assert_eq!(act(Method::POST, q).unwrap(), op("svc:GetCallerIdentity"));
        let empty = named(Method::GET, "/", &[], None, Some("0"), q);
        assert_eq!(empty.unwrap(), op("svc:GetCallerIdentity"));
        assert_eq!(
            act(Method::GET, "Version=2011-06-15").unwrap(),
            Named::Nothing
        );
        assert_eq!(act(Method::DELETE, "").unwrap(), Named::Nothing);
        assert!(ambiguous(act(
            Method::GET,
            "Action=GetCallerIdentity&Action=AssumeRole"
        )));
        assert!(ambiguous(act(
            Method::GET,
            "Action=GetCallerIdentity&action=AssumeRole"
        )));
        assert!(unknown(act(Method::GET, "Action=")));
        assert!(unknown(act(Method::GET, "Action=Get%2A")));
    }

    #[test]
    fn a_query_action_counts_only_on_a_query_protocol_request_to_the_root() {
        let q = "Action=GetFunction";
        for (method, path, content_type, length) in [
            // A REST API ignores the parameter and acts on its method and path.
            (Method::DELETE, "/", None, None),
            (Method::PUT, "/", None, None),
            (Method::GET, "/2015-03-31/functions/f", None, None),
            // A body the service might read its parameters from, whatever its type.
            (Method::GET, "/", Some(FORM), Some("22")),
            (Method::POST, "/", Some("text/plain"), Some("22")),
            (
                Method::POST,
                "/",
                Some("multipart/form-data; boundary=x"),
                Some("22"),
            ),
            (Method::POST, "/", None, Some("22")),
        ] {
            let got = named(method.clone(), path, &[], content_type, length, q);
            assert!(ambiguous(got), "{method} {path} {content_type:?}");
        }
        let mut chunked = HeaderMap::new();
        chunked.append("transfer-encoding", HeaderValue::from_static("chunked"));
        assert!(ambiguous(operation("svc", &Method::GET, b"/", &chunked, q)));
    }

    #[test]
    fn a_form_post_to_the_root_is_read_once_its_body_is_here() {
        let form = |path, q| named(Method::POST, path, &[], Some(FORM), Some("9"), q);
        assert_eq!(form("/", "").unwrap(), Named::Form(None, Coding::Identity));
        let named_too = Named::Form(Some("svc:AssumeRole".into()), Coding::Identity);
        assert_eq!(form("/", "Action=AssumeRole").unwrap(), named_too);
        assert!(ambiguous(form("/x", "")));
        // SQS's query protocol addresses a queue by its path, and nothing below it.
        let sqs = |path: &str| {
            let mut h = HeaderMap::new();
            h.append("content-type", HeaderValue::from_static(FORM));
            operation("sqs", &Method::POST, path.as_bytes(), &h, "")
        };
        assert_eq!(
            sqs("/123456789012/q").unwrap(),
            Named::Form(None, Coding::Identity)
        );
        for path in [
            "/123456789012/q/x",
            "/acct/q",
            "/123456789012/",
            "/123456789012",
        ] {
            assert!(ambiguous(sqs(path)), "{path}");
        }
        // A body of another type names nothing sigproxy trusts: only `methods` grant it.
        let text = named(Method::POST, "/", &[], Some("text/plain"), Some("9"), "");
        assert_eq!(text.unwrap(), Named::Nothing);
    }

    #[test]
    fn a_json_body_that_reads_as_a_form_naming_an_action_is_told_apart() {
        assert!(form_names_action(b"Action=GetSessionToken&Version=1"));
        assert!(form_names_action(b"{\"a\":\"x&act%69on=GetSessionToken\"}"));
        assert!(form_names_action(b"x=1&+Action+=A"));
        assert!(!form_names_action(b"{\"TableName\":\"Action\"}"));
        assert!(!form_names_action(b""));
    }

    #[test]
    fn a_gzip_body_is_read_inflated_and_other_codings_are_refused() {
        use flate2::write::GzEncoder;
        use std::io::Write;
        let with = |coding: &str| {
            let mut h = headers(&["A.B"]);
            h.append("content-type", HeaderValue::from_static(JSON));
            h.append("content-encoding", HeaderValue::from_str(coding).unwrap());
            operation("svc", &Method::POST, b"/", &h, "")
        };
        assert_eq!(
            with("gzip").unwrap(),
            Named::Json("svc:B".into(), Coding::Gzip)
        );
        assert_eq!(
            with("identity").unwrap(),
            Named::Json("svc:B".into(), Coding::Identity)
        );
        for other in ["br", "deflate", "gzip, gzip", "zstd"] {
            assert!(ambiguous(with(other)), "{other}");
        }
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"x\":\"&Action=DeleteQueue&\"}").unwrap();
        let body = gz.finish().unwrap();
        assert!(!form_names_action(&body));
        let inflated = decoded(&body, Coding::Gzip).unwrap();
        assert!(form_names_action(&inflated));
        assert!(ambiguous(decoded(b"not gzip", Coding::Gzip)));
        // A bomb inflates no further than the cap.
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; (INFLATED_MAX + 1) as usize])
            .unwrap();
        assert!(ambiguous(decoded(&gz.finish().unwrap(), Coding::Gzip)));
    }

    #[test]
    fn form_bodies_name_the_action() {
        assert_eq!(
            form_action(
                "sts",
                b"Action=AssumeRole&RoleSessionName=a+b&Version=2011-06-15"
            )
            .unwrap()
            .as_deref(),
            Some("sts:AssumeRole")
        );
        assert_eq!(
            form_action("sqs", b"Act%69on=SendMessage")
                .unwrap()
                .as_deref(),
            Some("sqs:SendMessage")
        );
        assert_eq!(form_action("sts", b"Version=2011-06-15").unwrap(), None);
        assert_eq!(form_action("sts", b"").unwrap(), None);
        // `+` is a space in a form: "Get+Item" is not an operation name.
        assert!(unknown(form_action("dynamodb", b"Action=Get+Item")));
        assert!(ambiguous(form_action(
            "sts",
            b"Action=GetCallerIdentity&Action=AssumeRole"
        )));
        assert!(ambiguous(form_action("sts", b"Action=%FF")));
    }

    #[test]
    fn query_and_body_must_agree() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(combine(s("sts:A"), None).unwrap(), s("sts:A"));
        assert_eq!(combine(None, s("sts:A")).unwrap(), s("sts:A"));
        assert_eq!(combine(s("sts:A"), s("sts:A")).unwrap(), s("sts:A"));
        assert_eq!(combine(None, None).unwrap(), None);
        assert!(ambiguous(combine(s("sts:A"), s("sts:B"))));
    }
}
