//! What a request does, in IAM's words: the actions an allow rule's `actions` list can grant.
//!
//! A method and a path do not say what an S3 request does: `PUT /bucket/key?acl` makes an
//! object public, `POST /bucket/?delete` deletes whatever keys its body names,
//! `PUT /bucket/?policy` hands the bucket to anyone. So on a route with an allow list, every S3 request is classified
//! into the IAM action(s) S3's own authorization would check, each on the resource (a path in
//! the route's upstream space) it applies to, and a rule must grant all of them. Anything that
//! cannot be classified is refused rather than guessed at.
//!
//! Everything here is pure: no I/O, no proxy types, only the request's method, path, query,
//! headers and (for `DeleteObjects` and query-protocol forms) body.
//!
//! - [`s3`]: REST-XML S3 requests, [`s3::classify`];
//! - [`delete`]: the strict reader of a `DeleteObjects` body;
//! - [`api`]: JSON-protocol (`X-Amz-Target`) and query-protocol (`Action=`) services.

pub mod api;
pub mod delete;
pub mod s3;

use percent_encoding::percent_decode_str;
use std::fmt;

/// A pattern from an allow rule's `actions` list: `service:Name`, with `*` (any run of
/// characters, none included) and `?` (exactly one) in the name, compared case-insensitively as
/// IAM compares actions, so `s3:get*` and `S3:GetObject` mean what they mean in a policy.
#[derive(Clone, PartialEq, Eq)]
pub struct ActionPattern {
    text: String,
    /// Lower-cased: a service prefix is compared case-insensitively.
    service: String,
    name: String,
}

impl ActionPattern {
    /// Checks a pattern as written in the configuration: one `:`, a service of
    /// `[a-z0-9-]` (any case) and a name of `[A-Za-z0-9*?]`, neither empty. Anything else is
    /// an error saying what is wrong, since a typo here would silently grant nothing (or, with a
    /// stray wildcard, more than meant).
    pub fn parse(text: &str) -> Result<ActionPattern, String> {
        let example = "write an action as service:Name, like s3:GetObject or s3:Get*";
        let (service, name) = match text.split_once(':') {
            Some((s, n)) if !n.contains(':') => (s, n),
            Some(_) => return Err(format!("'{text}' has more than one ':'; {example}")),
            None => return Err(format!("'{text}' has no ':'; {example}")),
        };
        if service.is_empty() {
            return Err(format!("'{text}' names no service before ':'; {example}"));
        }
        if !service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "'{text}': a service prefix has only letters, digits and '-' (no wildcards)"
            ));
        }
        if name.is_empty() {
            return Err(format!("'{text}' names no action after ':'; {example}"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
        {
            return Err(format!(
                "'{text}': an action name has only letters, digits, '*' and '?'"
            ));
        }
        Ok(ActionPattern {
            text: text.to_string(),
            service: service.to_ascii_lowercase(),
            name: name.to_string(),
        })
    }

    /// Whether the pattern grants `action` (`service:Name`, as [`Need::action`] spells it).
    pub fn matches(&self, action: &str) -> bool {
        let Some((service, name)) = action.split_once(':') else {
            return false;
        };
        service.eq_ignore_ascii_case(&self.service)
            && wildcard(self.name.as_bytes(), name.as_bytes())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The service prefix, lower-cased (`s3`, `dynamodb`), so the configuration can check that
    /// a rule's actions belong to its route's service.
    pub fn service(&self) -> &str {
        &self.service
    }
}

impl fmt::Debug for ActionPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

/// IAM-style wildcard match, ASCII case-insensitive: `*` is any run, `?` one character.
/// Backtracks only to the last `*`, so it is linear in practice and never exponential.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The pattern index after the last `*`, and where in the text its match ends.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, t));
            }
            Some(&c) if c == b'?' || c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((after, end)) => {
                    star = Some((after, end + 1));
                    p = after;
                    t = end + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// One thing a request needs granted: `action` on the resource at `path`, a decoded path in
/// the route's upstream-target space (`/bucket/key` on a path-style upstream, `/key` on a
/// virtual-hosted bucket upstream), so the same path patterns that scope methods scope actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// `service:Name`, e.g. `s3:GetObject`.
    pub action: String,
    pub path: Vec<u8>,
    /// `Some(method)`: a rule without `actions` (methods and paths only) may grant this, as a
    /// rule granting that method on that path: plain object reads and writes, which is what
    /// such rules always meant. `None`: only a rule listing a matching action can, since a
    /// method says nothing about sub-resources (`?acl`, `?policy`, …) or bucket operations.
    pub plain: Option<http::Method>,
}

impl Need {
    pub(crate) fn new(action: &str, path: &[u8], plain: Option<http::Method>) -> Need {
        Need {
            action: action.to_string(),
            path: path.to_vec(),
            plain,
        }
    }
}

/// Why a request's action(s) cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unclear {
    /// Contradictory or repeated input (two copy sources, two targets, a malformed delete
    /// list): the upstream might read it differently from us, so it is answered `400`.
    Ambiguous(String),
    /// An operation sigproxy does not know: refused (`403`) on routes with allow lists, since
    /// nothing can be said about what it would grant.
    Unknown(String),
}

impl Unclear {
    /// What was unclear, for the error body and the log.
    pub fn message(&self) -> &str {
        match self {
            Unclear::Ambiguous(m) | Unclear::Unknown(m) => m,
        }
    }
}

impl fmt::Display for Unclear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for Unclear {}

/// The query's parameters, names and values percent-decoded, in order. The query is the
/// canonical form `target.rs` produced for a signed route, so it has no bare `+` (a
/// space is `%20`, a plus `%2B`) and its escapes are valid.
pub(crate) fn query_params(query: &str) -> Result<Vec<(String, String)>, Unclear> {
    let decode = |raw: &str| {
        percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| Unclear::Ambiguous("the query is not UTF-8 once decoded".into()))
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> ActionPattern {
        ActionPattern::parse(p).unwrap()
    }

    #[test]
    fn actions_patterns_match_like_iam() {
        let cases: &[(&str, &str, bool)] = &[
            ("s3:GetObject", "s3:GetObject", true),
            ("s3:GetObject", "s3:GetObjectAcl", false),
            ("s3:getobject", "s3:GetObject", true),
            ("S3:GetObject", "s3:GetObject", true),
            ("s3:Get*", "s3:GetObject", true),
            ("s3:Get*", "s3:GetBucketPolicy", true),
            ("s3:Get*", "s3:PutObject", false),
            ("s3:*", "s3:DeleteBucket", true),
            ("s3:*Object", "s3:GetObject", true),
            ("s3:*Object", "s3:GetObjectAcl", false),
            ("s3:*Object*", "s3:PutObjectAcl", true),
            ("s3:Get?bject", "s3:GetObject", true),
            ("s3:Get?bject", "s3:GetObbject", false),
            ("s3:GetObject?", "s3:GetObject", false),
            ("s3:*", "dynamodb:GetItem", false),
            ("dynamodb:Get*", "dynamodb:GetItem", true),
            ("dynamodb:*", "DynamoDB:Query", true),
            (
                "s3:*a*a*a*a*a*b",
                "s3:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for &(p, action, want) in cases {
            assert_eq!(pat(p).matches(action), want, "{p} on {action}");
        }
        assert!(!pat("s3:*").matches("GetObject"), "an action has a service");
        assert_eq!(pat("S3:Get*").service(), "s3");
        assert_eq!(pat("S3:Get*").as_str(), "S3:Get*");
    }

    #[test]
    fn action_patterns_are_checked_when_parsed() {
        for (bad, says) in [
            ("GetObject", "no ':'"),
            ("s3:Get:Object", "more than one"),
            (":GetObject", "no service"),
            ("s3:", "no action"),
            ("s*:GetObject", "service prefix"),
            ("s3 :GetObject", "service prefix"),
            ("s3:Get-Object", "action name"),
            ("s3:Get Object", "action name"),
            ("*", "no ':'"),
        ] {
            let err = ActionPattern::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn query_params_are_decoded_in_order() {
        assert_eq!(
            query_params("a=1&select-type=2&&x%2Dy=%2B&flag").unwrap(),
            vec![
                ("a".into(), "1".into()),
                ("select-type".into(), "2".into()),
                ("x-y".into(), "+".into()),
                ("flag".into(), String::new()),
            ]
        );
        assert!(matches!(query_params("a=%FF"), Err(Unclear::Ambiguous(_))));
    }
}
