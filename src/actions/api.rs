//! The operation of a JSON-protocol or query-protocol AWS API, as its IAM action.
//!
//! These APIs put every operation on one path (`POST /`), so a path rule cannot tell
//! `dynamodb:GetItem` from `dynamodb:DeleteTable`. The operation is named once, in the
//! `X-Amz-Target` header (JSON protocol: `DynamoDB_20120810.GetItem`) or the `Action` parameter
//! (query protocol, in the query string or the form body). Each is taken only when it is
//! unique: with two, the service and this check could each act on a different one.

use super::{query_params, Unclear};
use http::HeaderMap;
use percent_encoding::percent_decode;

/// The operation named by the request head. JSON protocol: the one `X-Amz-Target` header,
/// `Prefix_Version.Operation` (or `Prefix.Operation`) → `service:Operation`. Query protocol:
/// the one `Action` parameter in the query → `service:Action`. `None` when neither is present
/// (a query-protocol request may name its action in the body: see [`form_action`]).
///
/// Two targets, two `Action` parameters, or a target and an `Action` that disagree are
/// [`Unclear::Ambiguous`]; a name that is not an operation name is [`Unclear::Unknown`].
pub fn head_action(
    service: &str,
    headers: &HeaderMap,
    query: &str,
) -> Result<Option<String>, Unclear> {
    let mut targets = headers.get_all("x-amz-target").iter();
    let target = match (targets.next(), targets.next()) {
        (None, _) => None,
        (Some(_), Some(_)) => {
            return Err(Unclear::Ambiguous(
                "X-Amz-Target is sent more than once".into(),
            ))
        }
        (Some(value), None) => {
            let value = value.to_str().map_err(|_| {
                Unclear::Ambiguous("X-Amz-Target has bytes that are not visible ASCII".into())
            })?;
            let operation = match value.rsplit_once('.') {
                Some((prefix, op)) if !prefix.is_empty() => op,
                _ => {
                    return Err(Unclear::Unknown(format!(
                        "X-Amz-Target '{value}' is not Prefix.Operation"
                    )))
                }
            };
            Some(operation_name(operation, "X-Amz-Target")?)
        }
    };
    let params = query_params(query)?;
    let action = single_action(params.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
    let operation = match (target, action) {
        (Some(t), Some(a)) if t != a => {
            return Err(Unclear::Ambiguous(format!(
                "X-Amz-Target names {t} but the query's Action is {a}"
            )))
        }
        (t, a) => t.or(a),
    };
    Ok(operation.map(|op| format!("{service}:{op}")))
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

    #[test]
    fn json_targets_name_the_action() {
        let h = headers(&["DynamoDB_20120810.GetItem"]);
        assert_eq!(
            head_action("dynamodb", &h, "").unwrap().as_deref(),
            Some("dynamodb:GetItem")
        );
        let h = headers(&["AWSCognitoIdentityProviderService.InitiateAuth"]);
        assert_eq!(
            head_action("cognito-idp", &h, "").unwrap().as_deref(),
            Some("cognito-idp:InitiateAuth")
        );
        assert_eq!(
            head_action("dynamodb", &HeaderMap::new(), "").unwrap(),
            None
        );
        assert!(ambiguous(head_action(
            "dynamodb",
            &headers(&["DynamoDB_20120810.GetItem", "DynamoDB_20120810.DeleteTable"]),
            ""
        )));
        for bad in [
            "GetItem",
            ".GetItem",
            "DynamoDB_20120810.",
            "X.Get*",
            "X.Get:Item",
        ] {
            assert!(
                unknown(head_action("dynamodb", &headers(&[bad]), "")),
                "{bad}"
            );
        }
    }

    #[test]
    fn query_actions_name_the_action() {
        let none = HeaderMap::new();
        let act = |q| head_action("sts", &none, q);
        assert_eq!(
            act("Action=GetCallerIdentity&Version=2011-06-15")
                .unwrap()
                .as_deref(),
            Some("sts:GetCallerIdentity")
        );
        assert_eq!(act("Version=2011-06-15").unwrap(), None);
        assert_eq!(act("").unwrap(), None);
        assert!(ambiguous(act("Action=GetCallerIdentity&Action=AssumeRole")));
        assert!(ambiguous(act("Action=GetCallerIdentity&action=AssumeRole")));
        assert!(unknown(act("Action=")));
        assert!(unknown(act("Action=Get%2A")));
        // A target and an Action: the same operation is fine, two different ones are not.
        let h = headers(&["AmazonSQS.SendMessage"]);
        assert_eq!(
            head_action("sqs", &h, "Action=SendMessage")
                .unwrap()
                .as_deref(),
            Some("sqs:SendMessage")
        );
        assert!(ambiguous(head_action("sqs", &h, "Action=DeleteQueue")));
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
