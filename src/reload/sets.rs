//! One refresh task per credential set, and how a reload changes them: a set whose definition
//! did not change keeps its task and the credentials it holds; a new or changed set gets a new
//! task, whose first fetch a reload waits for before it swaps; a set the file no longer has is
//! stopped once the swap is done. Each client's session of a `per_client` set is a set of its
//! own here (keyed by set and client): a client added, removed or changed starts or stops its
//! sessions only.

use crate::config::Config;
use crate::credentials::refresh::keep_filled;
use crate::credentials::{sessions, CredentialSet, CredentialStore, SetKey};
use crate::metrics::metrics;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Task {
    set: Arc<CredentialSet>,
    handle: JoinHandle<()>,
}

fn spawn(set: Arc<CredentialSet>) -> (Task, oneshot::Receiver<()>) {
    let (first, fetched) = oneshot::channel();
    let handle = tokio::spawn(keep_filled(set.clone(), Some(first)));
    (Task { set, handle }, fetched)
}

/// Waits for each first fetch, all of them within `limit`; false if that was not enough.
async fn first_fetches(fetched: Vec<oneshot::Receiver<()>>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        for f in fetched {
            let _ = f.await;
        }
    })
    .await
    .is_ok()
}

/// The refresh tasks of the sets in force.
pub struct Refreshers {
    tasks: BTreeMap<SetKey, Task>,
}

/// What a reload would change: the sets the new configuration would use, and the tasks started
/// for those that are new or changed. Either committed or abandoned.
pub struct Plan {
    pub sets: BTreeMap<SetKey, Arc<CredentialSet>>,
    started: BTreeMap<SetKey, Task>,
    fetched: Vec<oneshot::Receiver<()>>,
}

/// What a committed plan did, for the log.
pub struct Summary {
    pub kept: usize,
    pub started: usize,
    pub stopped: usize,
}

impl Refreshers {
    /// Starts refreshing every set of `store` and waits, at most `limit`, for their first
    /// fetches (start-up: the traffic listener of an upgrade waits for this).
    pub async fn start(store: &CredentialStore, limit: Duration) -> Refreshers {
        let mut tasks = BTreeMap::new();
        let mut fetched = Vec::new();
        for set in store.sets() {
            let (task, first) = spawn(set.clone());
            tasks.insert(set.key(), task);
            fetched.push(first);
        }
        if !first_fetches(fetched, limit).await {
            tracing::warn!(
                waited = ?limit,
                "first credential fetches still going on: requests on sets without credentials \
                 get 503 until they end"
            );
        }
        Refreshers { tasks }
    }

    /// The sets `config` would use: the running ones whose definition is the same, new ones
    /// (already refreshing) for the others.
    pub fn prepare(&self, config: &Config) -> Plan {
        let mut plan = Plan {
            sets: BTreeMap::new(),
            started: BTreeMap::new(),
            fetched: Vec::new(),
        };
        for definition in sessions(config) {
            let key = (definition.name.clone(), definition.client.clone());
            match self.tasks.get(&key) {
                Some(task) if *task.set.config() == definition => {
                    plan.sets.insert(key, task.set.clone());
                }
                _ => {
                    let set = Arc::new(CredentialSet::new(definition));
                    let (task, first) = spawn(set.clone());
                    plan.sets.insert(key.clone(), set);
                    plan.started.insert(key, task);
                    plan.fetched.push(first);
                }
            }
        }
        plan
    }

    /// Stops the tasks a plan started; the sets in force stay as they were.
    pub fn abandon(&self, plan: Plan) {
        for (name, task) in plan.started {
            task.handle.abort();
            show_expiry(&name, self.tasks.get(&name).map(|t| &*t.set));
        }
    }

    /// Makes the plan's sets the ones in force (call once the snapshot using them is live):
    /// replaced and removed sets stop refreshing.
    pub fn commit(&mut self, plan: Plan) -> Summary {
        let summary = Summary {
            kept: plan.sets.len() - plan.started.len(),
            started: plan.started.len(),
            stopped: self
                .tasks
                .keys()
                .filter(|name| !plan.sets.contains_key(*name) || plan.started.contains_key(*name))
                .count(),
        };
        let names: Vec<&str> = plan.started.keys().map(|(name, _)| name.as_str()).collect();
        metrics().declare_credential_sets(&names);
        for (name, task) in plan.started {
            if let Some(old) = self.tasks.insert(name.clone(), task) {
                old.handle.abort();
            }
            show_expiry(&name, self.tasks.get(&name).map(|t| &*t.set));
        }
        let gone: Vec<SetKey> = self
            .tasks
            .keys()
            .filter(|name| !plan.sets.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(old) = self.tasks.remove(&name) {
                old.handle.abort();
            }
            show_expiry(&name, None);
        }
        summary
    }

    /// Stops every task (shutdown).
    pub fn stop_all(&mut self) {
        for (_, task) in std::mem::take(&mut self.tasks) {
            task.handle.abort();
        }
    }
}

impl Plan {
    /// Waits, at most `limit`, for the first fetch of every set the plan started.
    pub async fn first_fetches(&mut self, limit: Duration) {
        // What came of each fetch is the caller's to look at (`failures`).
        let _ = first_fetches(std::mem::take(&mut self.fetched), limit).await;
    }

    /// The new or changed sets (and clients' sessions), among `needed`, that hold no usable
    /// credentials: the set's name, and why.
    pub fn failures(&self, needed: &BTreeSet<String>) -> Vec<(String, String)> {
        self.started
            .iter()
            .filter(|((name, _), _)| needed.contains(name))
            .filter_map(|((name, client), task)| {
                let e = task.set.current().err()?;
                let why = match client {
                    Some(client) => format!("client {client}'s session: {e}"),
                    None => e.to_string(),
                };
                Some((name.clone(), why))
            })
            .collect()
    }
}

/// The expiry gauge of `key` as `set` holds it; gone with the set (or the client), so that no
/// alert on expiring credentials fires for a session nothing uses any more.
fn show_expiry((name, client): &SetKey, set: Option<&CredentialSet>) {
    let gauge = &metrics().credentials_expiry;
    let labels = [name.as_str(), client.as_deref().unwrap_or_default()];
    let at = set
        .and_then(CredentialSet::expiry)
        .and_then(|e| e.duration_since(UNIX_EPOCH).ok());
    match at {
        Some(at) => gauge.with_label_values(&labels).set(at.as_secs_f64()),
        None => {
            let _ = gauge.remove_label_values(&labels);
        }
    }
}
