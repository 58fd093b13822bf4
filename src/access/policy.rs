//! A route's `allow` list, and what a request needs from it.
//!
//! A rule grants `methods` or IAM `actions`, on `paths`. What a request needs is worked out
//! from what it does ([`crate::actions`]):
//!
//! - on S3, the IAM action(s) S3 itself would check, each on its resource: the object, the
//!   bucket, a copy's source, every key a `DeleteObjects` body names. A rule with `methods`
//!   (or only `paths`) grants plain object reads and writes and multipart uploads, nothing
//!   else; sub-resources (`?acl`, `?policy`, `?delete`, …) and bucket operations need a rule
//!   that names their action. What cannot be classified is refused.
//! - elsewhere, the method on the path, and for rules with `actions` the operation named by
//!   `X-Amz-Target` or `Action=` (in the query, or in a form body, checked once it is read),
//!   taken only from a request shaped as AWS's JSON or query protocol ([`api::operation`]).

use super::method_override::{self, BodyKind};
use super::pattern::PathPattern;
use super::Denied;
use crate::actions::api::{self, Coding, Named};
use crate::actions::s3::{classify, copy_source, BucketLayout, S3Needs, S3Request};
use crate::actions::{ActionPattern, Need, Unclear};
use http::{HeaderMap, Method};

/// One entry of a route's `allow` list: these methods (or these actions), on paths matching
/// these patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRule {
    /// `None`: any method (on S3: any plain object operation).
    pub methods: Option<Vec<Method>>,
    /// `None`: only what `methods` grants. Never set together with `methods`.
    pub actions: Option<Vec<ActionPattern>>,
    /// `None`: any path.
    pub paths: Option<Vec<PathPattern>>,
}

impl AllowRule {
    /// Whether this rule's methods or actions cover `need` (paths aside).
    fn covers(&self, need: &Need) -> bool {
        match (&self.actions, need.plain.as_ref()) {
            (Some(actions), _) => {
                !need.action.is_empty() && actions.iter().any(|a| a.matches(&need.action))
            }
            (None, Some(method)) => self.methods.as_ref().is_none_or(|m| m.contains(method)),
            (None, None) => false,
        }
    }

    fn reaches(&self, path: &[u8]) -> bool {
        self.paths
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| p.matches(path)))
    }
}

/// Why a request is refused by a route's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not granted (`403`).
    Denied(Denied),
    /// Contradictory input: a repeated `x-amz-copy-source`, two actions (`400`).
    Ambiguous(String),
}

impl From<Denied> for Refusal {
    fn from(d: Denied) -> Self {
        Refusal::Denied(d)
    }
}

impl From<Unclear> for Refusal {
    fn from(u: Unclear) -> Self {
        match u {
            Unclear::Ambiguous(why) => Refusal::Ambiguous(why),
            Unclear::Unknown(_) => Refusal::Denied(Denied::Action),
        }
    }
}

/// What a route's service is, as far as its policy is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// S3: how its upstream addresses buckets, and what the route reaches.
    S3(S3Space),
    /// Any other signed service (its signing name), or a pass-through route (`None`).
    Other(Option<String>),
}

/// What an S3 route reaches: its upstream's bucket layout and base path. Whatever an allow list
/// says, every resource a request touches must be in there: a route to `…/my-bucket` must not
/// copy from another bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Space {
    pub layout: BucketLayout,
    /// The upstream's base path, decoded (`/my-bucket`), or empty for all.
    pub base: Vec<u8>,
    /// Whether the layout was stated or is certain (an AWS host name, an address): on another
    /// host a bucket may be in the host name, and a copy source could not be placed.
    pub layout_known: bool,
}

impl S3Space {
    fn reaches(&self, path: &[u8]) -> bool {
        self.base.is_empty()
            || path
                .strip_prefix(self.base.as_slice())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"))
    }

    /// Every need must be within the route's space.
    fn contain(&self, needs: &[Need]) -> Result<(), Refusal> {
        match needs.iter().all(|n| self.reaches(&n.path)) {
            true => Ok(()),
            false => Err(Refusal::Denied(Denied::Path)),
        }
    }

    /// A copy's source must be in the route's space, and placeable at all.
    fn check_copy(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let outside = Err(Refusal::Denied(Denied::CopySource));
        let need = match copy_source(headers, &self.layout) {
            Ok(None) => return Ok(()),
            Ok(Some(need)) => need,
            // A source this route's space cannot hold (another bucket of a bucket upstream).
            Err(Unclear::Unknown(_)) => return outside,
            Err(ambiguous) => return Err(ambiguous.into()),
        };
        if !self.layout_known || self.contain(&[need]).is_err() {
            return outside;
        }
        Ok(())
    }
}

/// A route's allow list and the service it applies to.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<AllowRule>,
    service: Service,
}

/// A check that has to wait for the request body.
#[derive(Debug)]
pub enum AfterBody {
    /// `POST ?delete`: every key in the body.
    DeleteObjects(S3Needs),
    /// A query-protocol form (`Action=` in the body), on this path.
    Form {
        service: String,
        head: Option<String>,
        coding: Coding,
        path: Vec<u8>,
        method: Method,
    },
    /// A `POST` granted by method, whose body must not name another (`_method`): read as
    /// `kind`, and inflated too when `gzip`.
    Method {
        kind: BodyKind,
        gzip: bool,
        path: Vec<u8>,
    },
    /// A JSON-protocol request for `action`, whose body must not name another.
    Json {
        action: String,
        coding: Coding,
        path: Vec<u8>,
        method: Method,
    },
}

impl Policy {
    pub fn new(rules: Vec<AllowRule>, service: Service) -> Policy {
        Policy { rules, service }
    }

    /// Checks a request whose upstream target is `target` (as `Route::target` in `route`
    /// made it). `Ok(Some(_))`: what remains to be checked once the body is read.
    pub fn check(
        &self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
    ) -> Result<Option<AfterBody>, Refusal> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        // A header the checks read (`Content-Encoding`, `X-Amz-Target`) must be the one sent;
        // one the `Connection` header names is dropped after them.
        if let Some(name) =
            crate::headers::connection_named(headers).filter(|_| !self.rules.is_empty())
        {
            return Err(Refusal::Ambiguous(format!(
                "the Connection header names the {name} header, which the allow list would see \
                 and the upstream would not (it is dropped on the way)"
            )));
        }
        if let Service::S3(space) = &self.service {
            // Whatever the allow list: S3 would have to pick one.
            if headers.get_all("x-amz-copy-source").iter().count() > 1 {
                return Err(Refusal::Ambiguous(
                    "more than one x-amz-copy-source header".into(),
                ));
            }
            space.check_copy(headers)?;
            if self.rules.is_empty() {
                return Ok(None);
            }
            let decoded = policy_path(path, false).ok_or(Denied::Path)?;
            let request = S3Request {
                method,
                path: &decoded,
                query,
                headers,
                layout: &space.layout,
            };
            return match classify(&request)? {
                S3Needs::Needs(needs) => {
                    space.contain(&needs)?;
                    self.grant(&needs).map(|()| None)
                }
                pending @ S3Needs::DeleteObjects { .. } => {
                    Ok(Some(AfterBody::DeleteObjects(pending)))
                }
            };
        }
        if self.rules.is_empty() {
            return Ok(None);
        }
        // An application behind the upstream (API Gateway, a pass-through route) might act on
        // another method than the one checked here.
        if let Some(name) = method_override::in_headers(headers) {
            return Err(Refusal::Ambiguous(format!(
                "{name} on a route with an allow list, which checks the request's own method"
            )));
        }
        if method_override::in_query(query) {
            return Err(Refusal::Ambiguous(
                "_method in the query on a route with an allow list, which checks the request's \
                 own method"
                    .into(),
            ));
        }
        let path = policy_path(path, true).ok_or(Denied::Path)?;
        let Service::Other(Some(service)) = &self.service else {
            return self.grant_one(method, String::new(), path).map(|()| None);
        };
        // An operation matters only to a rule that names actions; `methods` grant by method,
        // and a `POST` body may name another (`_method`) to the application behind.
        if !self.rules.iter().any(|r| r.actions.is_some()) {
            if *method == Method::POST {
                let mut types = headers.get_all(http::header::CONTENT_TYPE).iter();
                let kind = match (types.next(), types.next()) {
                    (first, None) => BodyKind::of(first.map(|v| v.as_bytes())),
                    // Which one the application reads is anybody's guess: every way.
                    _ => BodyKind::Any,
                };
                let gzip = api::coding(headers).is_ok_and(|c| c == Coding::Gzip);
                return Ok(Some(AfterBody::Method { kind, gzip, path }));
            }
            return self.grant_one(method, String::new(), path).map(|()| None);
        }
        let action = match api::operation(service, method, &path, headers, query)? {
            Named::Nothing => String::new(),
            Named::Query(action) => action,
            Named::Json(action, coding) => {
                let method = method.clone();
                return Ok(Some(AfterBody::Json {
                    action,
                    coding,
                    path,
                    method,
                }));
            }
            Named::Form(head, coding) => {
                let (service, method) = (service.clone(), method.clone());
                return Ok(Some(AfterBody::Form {
                    service,
                    head,
                    coding,
                    path,
                    method,
                }));
            }
        };
        self.grant_one(method, action, path).map(|()| None)
    }

    /// Finishes a check that waited for the body.
    pub fn check_body(&self, pending: AfterBody, body: &[u8]) -> Result<(), Refusal> {
        match pending {
            AfterBody::DeleteObjects(needs) => {
                let needs = needs.resolve(body)?;
                if let Service::S3(space) = &self.service {
                    space.contain(&needs)?;
                }
                self.grant(&needs)
            }
            AfterBody::Form {
                service,
                head,
                coding,
                path,
                method,
            } => {
                let form = api::form_action(&service, &api::decoded(body, coding)?)?;
                let action = api::combine(head, form)?;
                self.grant_one(&method, action.unwrap_or_default(), path)
            }
            AfterBody::Method { kind, gzip, path } => {
                // As sent, and (gzip) as a middleware that inflates it would read it.
                let inflated = || {
                    gzip && api::decoded(body, Coding::Gzip)
                        .is_ok_and(|b| method_override::in_body(&b, kind))
                };
                if method_override::in_body(body, kind) || inflated() {
                    return Err(Refusal::Ambiguous(
                        "_method in the body on a route with an allow list, which checks the \
                         request's own method"
                            .into(),
                    ));
                }
                self.grant_one(&Method::POST, String::new(), path)
            }
            AfterBody::Json {
                action,
                coding,
                path,
                method,
            } => {
                if api::form_names_action(&api::decoded(body, coding)?) {
                    return Err(Refusal::Ambiguous(format!(
                        "X-Amz-Target names {action} but the body reads as a form naming an Action"
                    )));
                }
                self.grant_one(&method, action, path)
            }
        }
    }

    fn grant_one(&self, method: &Method, action: String, path: Vec<u8>) -> Result<(), Refusal> {
        self.grant(&[Need {
            action,
            path,
            plain: Some(method.clone()),
        }])
    }

    /// Every need must be granted by some rule. The refusal says what was missing: the
    /// method or action (no rule covers it anywhere), or the path.
    fn grant(&self, needs: &[Need]) -> Result<(), Refusal> {
        for need in needs {
            let covering = self.rules.iter().filter(|r| r.covers(need));
            let mut covered = false;
            let mut granted = false;
            for rule in covering {
                covered = true;
                if rule.reaches(&need.path) {
                    granted = true;
                    break;
                }
            }
            if !granted {
                let method_rules = self.rules.iter().any(|r| r.actions.is_none());
                return Err(Refusal::Denied(if covered {
                    Denied::Path
                } else if need.plain.is_some() && method_rules {
                    Denied::Method
                } else {
                    Denied::Action
                }));
            }
        }
        Ok(())
    }
}

/// The path a policy is checked against: the upstream target's path, percent-decoded, as the
/// upstream will understand it; `None` when that is ambiguous, and then no rule can grant it.
///
/// For S3 (`normalize: false`) keys are literal: the decoded path is exactly the key S3 uses.
/// For every other service the target has been normalised already (`target.rs` resolves
/// dot segments, escaped dots included); a segment that still decodes to something with a
/// `/` or `\` in it (`..%2Fsecret`) could be read as several segments upstream, so it is
/// refused rather than guessed at.
pub fn policy_path(target: &str, normalize: bool) -> Option<Vec<u8>> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if !normalize {
        return Some(percent_encoding::percent_decode_str(path).collect());
    }
    let mut out = Vec::with_capacity(path.len());
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
        // A climb, or what some upstreams read as one (`..;`, a Java path parameter).
        let climbs = decoded == b".." || decoded.starts_with(b"..;");
        if decoded.iter().any(|&b| b == b'/' || b == b'\\') || climbs {
            return None;
        }
        out.extend_from_slice(&decoded);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
