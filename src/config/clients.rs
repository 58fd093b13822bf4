//! Validation of `access.clients`, of a credential set's `per_client` key, and of what
//! `per_client` sets ask of the clients: checked once the routes, the credential sets and the
//! credential endpoint are known.

use super::check::{is_word, Checker};
use super::file;
use super::{
    ConfigError, CredentialEndpointConfig, CredentialsConfig, PerClient, RouteConfig,
    StsTokenConfig, StsTokenKind,
};
use crate::access::clients::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Besides letters and digits, what a client's name may hold: it becomes a role session name,
/// a federated user's name (2-32 characters of letters, digits and `+=,.@-_`) and a metric
/// label.
const CLIENT_NAME_CHARS: &str = ".@-_";

impl Checker<'_> {
    /// `access.clients`, each entry's routes among `routes`, by a name the file gives them
    /// (`named`).
    pub(super) fn clients(
        &self,
        raw: Option<Vec<file::Client>>,
        routes: &[RouteConfig],
        named: &[String],
    ) -> Result<Vec<Client>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Vec::new());
        };
        if raw.is_empty() {
            return self.err(
                "access.clients",
                "must list at least one client (or be left out)",
            );
        }
        let mut clients: Vec<Client> = Vec::with_capacity(raw.len());
        for (i, entry) in raw.into_iter().enumerate() {
            let key = format!("access.clients[{i}]");
            let file::Client {
                name,
                token_file,
                token_env,
                routes: listed,
                credential_endpoint,
            } = entry;
            let Some(name) = name else {
                return self.err(format!("{key}.name"), "is required");
            };
            if !is_word(&name, 2..=32, CLIENT_NAME_CHARS) {
                return self.err(
                    format!("{key}.name"),
                    format!(
                        "'{name}' must be 2-32 characters of letters, digits and .@-_ (it \
                         names the client's AWS sessions)"
                    ),
                );
            }
            // sigproxy's own sessions are `sigproxy-<hostname>`, on whatever host it runs.
            if name.len() >= 9 && name[..9].eq_ignore_ascii_case("sigproxy-") {
                return self.err(
                    format!("{key}.name"),
                    format!(
                        "'{name}': names starting with sigproxy- are those of sigproxy's own \
                         sessions (sigproxy-<hostname>): this client's would pass for them"
                    ),
                );
            }
            // Told apart by case alone, two clients would be one name to IAM (whose names
            // ignore case), to case-blind CloudTrail queries and to whoever reads the logs.
            if let Some(j) = clients
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(&name))
            {
                return self.err(
                    format!("{key}.name"),
                    format!(
                        "duplicate client name '{name}' (access.clients[{j}] has it, or has it \
                         in other letter case)"
                    ),
                );
            }
            let path = token_file.clone().map(PathBuf::from);
            let token = self.token(
                &format!("client:{name}"),
                (&format!("{key}.token_file"), token_file),
                (&format!("{key}.token_env"), token_env),
            )?;
            let Some(token) = token else {
                return self.err(
                    &key,
                    "token_file or token_env is required: a client is known by its token",
                );
            };
            if let Some(j) = clients.iter().position(|c| c.token == token) {
                let from = if path.is_some() {
                    "token_file"
                } else {
                    "token_env"
                };
                // Either file may be the one that changed: name both.
                let other = &clients[j];
                let theirs = match &other.token_file {
                    Some(file) => format!("{}'s token_file {}", other.name, file.display()),
                    None => format!("{}'s token_env", other.name),
                };
                return self.err(
                    format!("{key}.{from}"),
                    format!(
                        "holds the same token as access.clients[{j}] ({theirs}): each client \
                         needs its own"
                    ),
                );
            }
            let mut names = BTreeSet::new();
            for (r, route) in listed.unwrap_or_default().into_iter().enumerate() {
                let Some(at) = routes.iter().position(|known| known.name == route) else {
                    return self.err(
                        format!("{key}.routes[{r}]"),
                        format!("'{route}' is not the name of a route"),
                    );
                };
                if !named.contains(&route) {
                    return self.err(
                        format!("{key}.routes[{r}]"),
                        format!(
                            "'{route}' is the default name of routes[{at}]: give that route a \
                             name (a route added above it would take this one's default name, \
                             and the client would be given that route instead)"
                        ),
                    );
                }
                names.insert(route);
            }
            let credential_endpoint = credential_endpoint.unwrap_or(false);
            if names.is_empty() && !credential_endpoint {
                return self.err(
                    format!("{key}.routes"),
                    "must list at least one route (or the client must use the credential \
                     endpoint)",
                );
            }
            clients.push(Client {
                name,
                token,
                token_file: path,
                routes: names,
                credential_endpoint,
            });
        }
        Ok(clients)
    }

    /// `per_client: true`: each client's session is named for the client, so the set names
    /// none itself (`last_session_name`: whether its last role does); `client_policies` are
    /// the federation token's, checked here.
    pub(super) fn per_client(
        &self,
        key: &str,
        set: Option<&CredentialsConfig>,
        last_session_name: bool,
        client_policies: Option<BTreeMap<String, String>>,
    ) -> Result<Option<PerClient>, ConfigError> {
        let policies_key = format!("{key}.federation_token.client_policies");
        let Some(set) = set else {
            if client_policies.is_some() {
                return self.err(
                    policies_key,
                    "only the federation_token of a per_client set takes client policies",
                );
            }
            return Ok(None);
        };
        let federation = matches!(
            set.sts_token.as_ref().map(|t| &t.kind),
            Some(StsTokenKind::Federation { .. })
        );
        if !federation && (set.sts_token.is_some() || set.assume_role.is_empty()) {
            return self.err(
                format!("{key}.per_client"),
                "needs assume_role or federation_token: each client's session is an STS \
                 session named for the client (GetSessionToken's carry no name)",
            );
        }
        if last_session_name {
            return self.err(
                format!("{key}.assume_role.session_name"),
                "per_client: each client's session is named for the client; leave session_name out",
            );
        }
        if set.assume_role.first().is_some_and(|r| r.mfa.is_some()) {
            return self.err(
                format!("{key}.per_client"),
                "cannot be combined with mfa: every client's session would need its own code",
            );
        }
        let mut policies = BTreeMap::new();
        for (client, text) in client_policies.unwrap_or_default() {
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&text) {
                return self.err(
                    format!("{policies_key}.{client}"),
                    format!("is not JSON: {e}"),
                );
            }
            policies.insert(client, text);
        }
        Ok(Some(PerClient { policies }))
    }

    /// What `per_client` sets need: clients to name the sessions, routes that are not
    /// `upstream_from_host`, client policies for known clients; and clients that fetch from
    /// the credential endpoint, an endpoint serving a `per_client` set.
    pub(super) fn per_client_uses(
        &self,
        credentials: &BTreeMap<String, CredentialsConfig>,
        clients: &[Client],
        routes: &[RouteConfig],
        endpoint: Option<&CredentialEndpointConfig>,
    ) -> Result<(), ConfigError> {
        for set in credentials.values() {
            let Some(per_client) = &set.per_client else {
                continue;
            };
            let key = format!("credentials.{}", set.name);
            if clients.is_empty() {
                return self.err(
                    format!("{key}.per_client"),
                    "needs access.clients: each client's session is named for the client",
                );
            }
            for client in per_client.policies.keys() {
                if !clients.iter().any(|c| c.name == *client) {
                    return self.err(
                        format!("{key}.federation_token.client_policies.{client}"),
                        format!("'{client}' is not the name of a client in access.clients"),
                    );
                }
            }
            let by_host = routes.iter().find(|r| {
                r.from_host
                    .as_ref()
                    .is_some_and(|f| f.credentials() == set.name)
            });
            if let Some(route) = by_host {
                return self.err(
                    format!("{key}.per_client"),
                    format!(
                        "route '{}' (upstream_from_host) signs with this set: per_client sets \
                         serve routes with a fixed upstream only",
                        route.name
                    ),
                );
            }
        }
        // The endpoint's own token fetches its (shared) set's credentials: a client holding it
        // would act as that set, outside its routes.
        let endpoint_token = endpoint.and_then(|e| e.token.as_ref());
        if let Some((i, c)) = clients
            .iter()
            .enumerate()
            .find(|(_, c)| Some(&c.token) == endpoint_token)
        {
            let from = if c.token_file.is_some() {
                "token_file"
            } else {
                "token_env"
            };
            return self.err(
                format!("access.clients[{i}].{from}"),
                "holds the credential endpoint's token: its bearer would fetch the endpoint's \
                 credentials, outside the client's routes; give each its own",
            );
        }
        let shared = endpoint
            .and_then(|e| credentials.get(&e.credentials))
            .is_none_or(|set| set.per_client.is_none());
        if let Some((i, _)) = clients
            .iter()
            .enumerate()
            .find(|(_, c)| c.credential_endpoint && shared)
        {
            return self.err(
                format!("access.clients[{i}].credential_endpoint"),
                "needs credential_endpoint serving a per_client credential set: the client \
                 fetches its own session of it",
            );
        }
        Ok(())
    }

    /// No shared set's session (any hop of a chain, or a federated user) may carry the name of
    /// a client whose sessions are named for it (it uses a `per_client` set): whoever uses
    /// that set would pass for the client in CloudTrail and to IAM conditions on
    /// `sts:RoleSessionName` or `aws:userid` (the broker pattern's own way of telling clients
    /// apart).
    pub(super) fn session_names_unclaimed(
        &self,
        credentials: &BTreeMap<String, CredentialsConfig>,
        clients: &[Client],
        routes: &[RouteConfig],
    ) -> Result<(), ConfigError> {
        // The clients with sessions of their own: one of their routes signs with a per_client
        // set, or they fetch the credential endpoint's (per_client, as checked above).
        let per_client = |set: &str| credentials.get(set).is_some_and(|s| s.per_client.is_some());
        let named: Vec<&Client> = clients
            .iter()
            .filter(|c| {
                c.credential_endpoint
                    || routes.iter().any(|r| {
                        c.routes.contains(&r.name)
                            && r.signing
                                .as_ref()
                                .is_some_and(|s| per_client(&s.credentials))
                    })
            })
            .collect();
        for set in credentials.values() {
            let chained = set.assume_role.len() > 1;
            // Every session the set holds on the way, a chain's first hops included: each is
            // an identity on its role. A per_client set's last hop carries each client's own
            // name; its first hops are shared by all its clients, like any set's.
            let shared = match set.per_client {
                None => set.assume_role.len(),
                Some(_) => set.assume_role.len().saturating_sub(1),
            };
            let mut names: Vec<(String, &String)> = set
                .assume_role
                .iter()
                .take(shared)
                .enumerate()
                .map(|(i, role)| {
                    let key = match chained {
                        true => format!("assume_role[{i}].session_name"),
                        false => "assume_role.session_name".to_string(),
                    };
                    (key, &role.session_name)
                })
                .collect();
            if let (
                None,
                Some(StsTokenConfig {
                    kind: StsTokenKind::Federation { name, .. },
                    ..
                }),
            ) = (&set.per_client, &set.sts_token)
            {
                names.push(("federation_token.name".to_string(), name));
            }
            for (key, name) in names {
                if let Some(client) = named.iter().find(|c| c.name.eq_ignore_ascii_case(name)) {
                    return self.err(
                        format!("credentials.{}.{key}", set.name),
                        format!(
                            "'{name}' is the name of client '{}' (access.clients), which its own \
                             sessions carry: whoever uses this set would pass for that client in \
                             CloudTrail and to IAM conditions on the session name; choose another",
                            client.name
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "clients_tests.rs"]
mod tests;
