//! Credential sets: where the base credentials come from, and the STS calls on top of them
//! (a chain of roles, or a session or federation token).

use super::check::{is_lowercase_name, is_word, valid_name, word_char, Checker};
use super::file;
use super::{
    AssumeRoleConfig, ConfigError, CredentialsConfig, Source, StsTokenConfig, StsTokenKind,
    DEFAULT_REFRESH_BEFORE_EXPIRY,
};
use crate::upstream::Upstream;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::time::Duration;

/// STS AssumeRole accepts 15 minutes to 12 hours.
const ROLE_DURATION_RANGE: RangeInclusive<i64> = 900..=43_200;
/// GetSessionToken and GetFederationToken accept 15 minutes to 36 hours.
const TOKEN_DURATION_RANGE: RangeInclusive<i64> = 900..=129_600;
/// GetSessionToken's default with MFA (STS's own default): 12 hours.
const MFA_SESSION_DEFAULT: i64 = 43_200;
/// What STS allows in a role session name and a federated user's name, besides letters and
/// digits.
const SESSION_NAME_CHARS: &str = "+=,.@-_";

impl Checker<'_> {
    /// Every set under `credentials`, by name.
    pub(super) fn credential_sets(
        &self,
        raw: BTreeMap<String, file::CredentialSet>,
    ) -> Result<BTreeMap<String, CredentialsConfig>, ConfigError> {
        let mut credentials = BTreeMap::new();
        for (name, set) in raw {
            let checked = self.credentials(&name, set)?;
            credentials.insert(name, checked);
        }
        Ok(credentials)
    }

    fn credentials(
        &self,
        name: &str,
        raw: file::CredentialSet,
    ) -> Result<CredentialsConfig, ConfigError> {
        let file::CredentialSet {
            source,
            profile,
            assume_role,
            session_token,
            federation_token,
            refresh_before_expiry,
            per_client,
        } = raw;
        let per_client = per_client.unwrap_or(false);
        let key = format!("credentials.{name}");
        if !valid_name(name) {
            return self.err(&key, "names use letters, digits, '-' and '_' only");
        }
        let source = match (source.as_deref().unwrap_or("default"), profile) {
            ("default", None) => Source::Default,
            ("default", Some(_)) => {
                return self.err(
                    format!("{key}.profile"),
                    "only valid with `source: profile`",
                )
            }
            ("profile", profile) => Source::Profile(profile),
            (other, _) => {
                return self.err(
                    format!("{key}.source"),
                    format!("unknown source '{other}'; expected 'default' or 'profile'"),
                )
            }
        };
        let roles = assume_role.map(|r| r.into_vec()).unwrap_or_default();
        let last_session_name = roles.last().is_some_and(|r| r.session_name.is_some());
        let mut federation_token = federation_token;
        let client_policies = federation_token
            .as_mut()
            .and_then(|t| t.client_policies.take());
        let chained = roles.len() > 1;
        let mut assume_role = Vec::with_capacity(roles.len());
        for (i, role) in roles.into_iter().enumerate() {
            let role_key = if chained {
                format!("{key}.assume_role[{i}]")
            } else {
                format!("{key}.assume_role")
            };
            // AWS limits a session assumed with another role's credentials to one hour.
            let cap = (i > 0).then_some(3600);
            assume_role.push(self.assume_role(&role_key, role, cap)?);
        }
        let sts_token = match (session_token, federation_token) {
            (Some(_), Some(_)) => {
                return self.err(
                    format!("{key}.federation_token"),
                    "session_token and federation_token exclude each other",
                )
            }
            (Some(t), None) => {
                Some(self.sts_token(&format!("{key}.session_token"), t, false, false)?)
            }
            (None, Some(t)) => {
                Some(self.sts_token(&format!("{key}.federation_token"), t, true, per_client)?)
            }
            (None, None) => None,
        };
        if sts_token.is_some() && !assume_role.is_empty() {
            return self.err(
                format!("{key}.assume_role"),
                "cannot be combined with session_token or federation_token (STS only issues those to IAM users)",
            );
        }
        let refresh_before_expiry = self.duration(
            &format!("{key}.refresh_before_expiry"),
            refresh_before_expiry.as_deref(),
            DEFAULT_REFRESH_BEFORE_EXPIRY,
        )?;
        let mut set = CredentialsConfig {
            name: name.to_string(),
            source,
            assume_role,
            sts_token,
            refresh_before_expiry,
            per_client: None,
            client: None,
        };
        set.per_client = self.per_client(
            &key,
            per_client.then_some(&set),
            last_session_name,
            client_policies,
        )?;
        Ok(set)
    }

    /// `duration_seconds` (default one hour) within the range STS accepts for this call.
    fn sts_seconds(
        &self,
        key: &str,
        seconds: Option<i64>,
        range: RangeInclusive<i64>,
    ) -> Result<Duration, ConfigError> {
        let seconds = seconds.unwrap_or(3600);
        if !range.contains(&seconds) {
            let human = |s: i64| match s % 3600 {
                0 => format!("{} h", s / 3600),
                _ => format!("{} min", s / 60),
            };
            let (low, high) = (*range.start(), *range.end());
            return self.err(
                format!("{key}.duration_seconds"),
                format!(
                    "{seconds} is outside STS's range of {low} ({}) to {high} ({})",
                    human(low),
                    human(high)
                ),
            );
        }
        Ok(Duration::from_secs(seconds as u64))
    }

    /// `sts_region` and `sts_endpoint`, wherever STS is called.
    fn sts_location(
        &self,
        key: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
    ) -> Result<(), ConfigError> {
        if let Some(endpoint) = endpoint {
            if let Err(why) = Upstream::parse(endpoint) {
                return self.err(format!("{key}.sts_endpoint"), why);
            }
        }
        if let Some(region) = region.filter(|r| !is_lowercase_name(r)) {
            return self.err(
                format!("{key}.sts_region"),
                format!("'{region}' is not a region name"),
            );
        }
        Ok(())
    }

    fn sts_token(
        &self,
        key: &str,
        raw: file::StsToken,
        federation: bool,
        per_client: bool,
    ) -> Result<StsTokenConfig, ConfigError> {
        let file::StsToken {
            name,
            policy,
            // Taken out (and checked) by `credentials`, for the set's `per_client`.
            client_policies: _,
            duration_seconds,
            sts_region,
            sts_endpoint,
            mfa,
        } = raw;
        if federation && mfa.is_some() {
            return self.err(
                format!("{key}.mfa"),
                "STS GetFederationToken takes no MFA code; use session_token (GetSessionToken) \
                 or assume_role for MFA-protected sessions",
            );
        }
        let mfa = self.mfa(&format!("{key}.mfa"), mfa)?;
        let kind = if federation && per_client {
            if name.is_some() {
                return self.err(
                    format!("{key}.name"),
                    "per_client: each client's name is its federated user's name; leave name out",
                );
            }
            if let Some(policy) = &policy {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(policy) {
                    return self.err(format!("{key}.policy"), format!("is not JSON: {e}"));
                }
            }
            // Filled in for each client (`CredentialsConfig::for_client`).
            StsTokenKind::Federation {
                name: String::new(),
                policy,
            }
        } else if federation {
            let Some(name) = name else {
                return self.err(
                    format!("{key}.name"),
                    "is required (the federated user's name)",
                );
            };
            if !is_word(&name, 2..=32, SESSION_NAME_CHARS) {
                return self.err(
                    format!("{key}.name"),
                    "must be 2-32 characters of letters, digits and +=,.@-_",
                );
            }
            if let Some(policy) = &policy {
                if let Err(e) = serde_json::from_str::<serde_json::Value>(policy) {
                    return self.err(format!("{key}.policy"), format!("is not JSON: {e}"));
                }
            }
            StsTokenKind::Federation { name, policy }
        } else {
            for (field, set) in [("name", name.is_some()), ("policy", policy.is_some())] {
                if set {
                    return self.err(
                        format!("{key}.{field}"),
                        "only federation_token takes a name and a policy",
                    );
                }
            }
            StsTokenKind::Session
        };
        // Each MFA session costs a code: STS's own default of 12 hours, not one.
        let default = if mfa.is_some() {
            MFA_SESSION_DEFAULT
        } else {
            3600
        };
        let duration = self.sts_seconds(
            key,
            Some(duration_seconds.unwrap_or(default)),
            TOKEN_DURATION_RANGE,
        )?;
        self.sts_location(key, sts_region.as_deref(), sts_endpoint.as_deref())?;
        Ok(StsTokenConfig {
            kind,
            duration,
            sts_region,
            sts_endpoint,
            mfa,
        })
    }

    /// One role to assume; `chained_cap` is the longest session AWS allows for a chained hop.
    fn assume_role(
        &self,
        key: &str,
        raw: file::AssumeRole,
        chained_cap: Option<i64>,
    ) -> Result<AssumeRoleConfig, ConfigError> {
        let file::AssumeRole {
            role_arn,
            session_name,
            external_id,
            duration_seconds,
            sts_region,
            sts_endpoint,
            mfa,
        } = raw;
        if mfa.is_some() && chained_cap.is_some() {
            return self.err(
                format!("{key}.mfa"),
                "only the first role of a chain may have one: later roles are assumed with a \
                 role session's credentials, and MFA devices belong to IAM users, not roles",
            );
        }
        let mfa = self.mfa(&format!("{key}.mfa"), mfa)?;
        let Some(role_arn) = role_arn else {
            return self.err(format!("{key}.role_arn"), "is required");
        };
        if !is_role_arn(&role_arn) {
            return self.err(
                format!("{key}.role_arn"),
                format!("'{role_arn}' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"),
            );
        }
        let session_name = match session_name {
            Some(name) => {
                if !valid_session_name(&name) {
                    return self.err(
                        format!("{key}.session_name"),
                        "must be 2-64 characters of letters, digits and +=,.@-_",
                    );
                }
                name
            }
            None => default_session_name(),
        };
        if let Some(id) = &external_id {
            if !is_word(id, 2..=1224, "+=,.@:/-_") {
                return self.err(
                    format!("{key}.external_id"),
                    "must be 2-1224 characters of letters, digits and +=,.@:/-_",
                );
            }
        }
        let duration = duration_seconds.unwrap_or(3600);
        if let Some(cap) = chained_cap.filter(|cap| duration > *cap) {
            return self.err(
                format!("{key}.duration_seconds"),
                format!("{duration} is over {cap}: AWS caps sessions of chained roles at one hour"),
            );
        }
        let duration = self.sts_seconds(key, Some(duration), ROLE_DURATION_RANGE)?;
        self.sts_location(key, sts_region.as_deref(), sts_endpoint.as_deref())?;
        Ok(AssumeRoleConfig {
            role_arn,
            session_name,
            external_id,
            duration,
            sts_region,
            sts_endpoint,
            mfa,
        })
    }
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5].starts_with("role/")
        && parts[5].len() > "role/".len()
}

pub(super) fn valid_session_name(name: &str) -> bool {
    is_word(name, 2..=64, SESSION_NAME_CHARS)
}

/// `sigproxy-<hostname>`, cut to STS's 64 characters and its character set.
pub(super) fn default_session_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let mut name = String::from("sigproxy");
    let host: String = host
        .trim()
        .chars()
        .filter(|c| word_char(*c, SESSION_NAME_CHARS))
        .collect();
    if !host.is_empty() {
        name.push('-');
        name.push_str(&host);
    }
    name.truncate(64);
    name
}
