//! Putting a file in force: checked as `--check` does, new credential sets' first fetches
//! awaited (a rotated token meanwhile put in force at once), then routes, access rules and sets
//! swapped as one snapshot; or, when the file is refused, its token files' rotations alone.

use super::poll::{in_force_keeping, look, token_files, Seen};
use super::sets::Plan;
use super::{
    checked, hash_number, needed_sets, refused, text, token_kept, unix_now, Change, Hash, Reloader,
    Snapshot, State, MIN_REFETCH, POLL, RELOAD_FETCH_WAIT, RETRY,
};
use crate::config::{Config, ConfigError, KeptTokens};
use crate::credentials::CredentialStore;
use crate::metrics::metrics;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};
impl Reloader {
    /// [`Reloader::reload`]; if the file is refused, a token file of the running configuration
    /// that changed is still put in force: the running configuration's own bytes are checked
    /// and loaded again, with the token files as they read now. A rotated token is how a
    /// token is revoked; an unrelated edit in the same file, refused, must not keep the old
    /// one working. (A token file that holds no token is refused there too: the token in force
    /// stays, as documented.)
    pub(super) async fn reload_or_tokens(
        &self,
        state: &mut State,
        path: &Path,
        bytes: &[u8],
        seen: Seen,
        trigger: &'static str,
    ) {
        if self.reload(state, path, bytes, seen, trigger).await {
            return;
        }
        if state.running_bytes.as_deref() == Some(bytes) {
            return;
        }
        if let Some(now) = tokens_changed(state) {
            let trigger = "token file changed (the file's other changes refused)";
            self.rotated_tokens(state, path, now, trigger).await;
        }
        // Whether the tokens went in or not, the refused file stays refused until it (or a
        // token file) changes again: not tried, nor logged, at every poll.
        state.polls.acted(look(bytes, &state.running));
    }

    /// Puts the running configuration in force again, one of its token files having changed
    /// (`now`: what a look at it found, see [`tokens_changed`]), with the token files as they
    /// read now; whether it was. The running file's bytes are checked and loaded again: nothing
    /// but tokens changes. The retry of an edit STS refused stands.
    async fn rotated_tokens(
        &self,
        state: &mut State,
        path: &Path,
        now: Seen,
        trigger: &'static str,
    ) -> bool {
        let Some(running) = state.running_bytes.clone() else {
            return false;
        };
        let retry = (state.retry_at, state.fetch_refused);
        // Boxed: `reload` may come here again while it waits for credentials (for the running
        // configuration's own sets none are fetched, so it does not wait).
        let reloaded = Box::pin(self.reload(state, path, &running, now, trigger)).await;
        (state.retry_at, state.fetch_refused) = retry;
        reloaded
    }

    /// Waits, at most [`RELOAD_FETCH_WAIT`], for the first fetches of the sets `plan` started.
    /// Meanwhile the running configuration's token files are looked at every [`POLL`] and a
    /// rotated token put in force at once: a revocation does not wait on an unrelated STS call.
    /// Whether a token was put in force meanwhile.
    async fn first_fetches_keeping_tokens(
        &self,
        state: &mut State,
        plan: &mut Plan,
        path: &Path,
    ) -> bool {
        let fetches = plan.first_fetches(RELOAD_FETCH_WAIT);
        tokio::pin!(fetches);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rotated = false;
        // As the file's own polls: a change is acted on once two looks in a row read the same
        // (a token file caught half-written is not put in force), and once only (a rotation
        // that is refused is logged and counted once, not at every look).
        let (mut pending, mut acted) = (None, None);
        loop {
            tokio::select! {
                biased;
                () = &mut fetches => return rotated,
                _ = tick.tick() => {
                    let Some(now) = tokens_changed(state).filter(|now| acted != Some(*now)) else {
                        pending = None;
                        continue;
                    };
                    if pending != Some(now) {
                        pending = Some(now);
                        continue;
                    }
                    (pending, acted) = (None, Some(now));
                    let trigger = "token file changed (while an edit waits for new credentials)";
                    rotated |= self.rotated_tokens(state, path, now, trigger).await;
                }
            }
        }
    }

    /// Checks `bytes` and, if they may be, puts them in force; whether it did. `seen` is what
    /// the look at the file found, taken before the file (and the token file) is read to be
    /// checked.
    async fn reload(
        &self,
        state: &mut State,
        path: &Path,
        bytes: &[u8],
        seen: Seen,
        trigger: &'static str,
    ) -> bool {
        let hash: Hash = Sha256::digest(bytes).into();
        state.polls.acted(seen);
        state.retry_at = None;
        let Some((mut config, mut changes, mut kept)) = check(state, path, bytes, trigger) else {
            return false;
        };
        if let Some((_, at)) = state.fetch_refused.filter(|(refused, _)| *refused == seen) {
            if at.elapsed() < MIN_REFETCH {
                state.retry_at = Some(at + MIN_REFETCH);
                info!(
                    config = %path.display(),
                    trigger,
                    retry_in_ms = (at + MIN_REFETCH).saturating_duration_since(Instant::now()).as_millis() as u64,
                    "configuration reload: STS refused this file's new credentials moments ago; \
                     asking again shortly"
                );
                return false;
            }
        }
        let needed = needed_sets(&config);
        let mut plan = state.refreshers.prepare(&config);
        let mut seen = seen;
        let tokens_before = look(bytes, &config);
        let rotated = self
            .first_fetches_keeping_tokens(state, &mut plan, path)
            .await;
        if rotated || look(bytes, &config) != tokens_before {
            // The file was checked with the token files as they read before the wait, its own
            // (a client it adds) and the running configuration's: one rotated meanwhile is
            // read again, so that a revoked token does not come back with the edit.
            seen = look(bytes, &state.running);
            state.polls.acted(seen);
            match check(state, path, bytes, trigger) {
                Some(again) => (config, changes, kept) = again,
                None => {
                    state.refreshers.abandon(plan);
                    return false;
                }
            }
        }
        let failures = plan.failures(&needed);
        if !failures.is_empty() {
            state.refreshers.abandon(plan);
            state.retry_at = Some(Instant::now() + RETRY);
            state.fetch_refused = Some((seen, Instant::now()));
            for (set, reason) in failures {
                let e = ConfigError {
                    path: path.to_owned(),
                    key: format!("credentials.{set}"),
                    reason: format!("no credentials for this new or changed set: {reason}"),
                };
                refused(&e, trigger);
            }
            return false;
        }
        let snapshot = Snapshot::new(&config, CredentialStore::from_sets(plan.sets.clone()));
        let routes = config.routes.len();
        self.live.store(Arc::new(snapshot));
        let removed: BTreeSet<String> = state
            .running
            .routes
            .iter()
            .filter(|old| config.routes.iter().all(|new| new.name != old.name))
            .map(|old| old.name.clone())
            .collect();
        metrics().forget_routes(&removed);
        let clients = |c: &Config| -> BTreeSet<String> {
            c.access.clients.iter().map(|c| c.name.clone()).collect()
        };
        let (before, after) = (clients(&state.running), clients(&config));
        metrics().forget_clients(before.difference(&after).map(String::as_str));
        metrics().declare_clients(after.iter().map(String::as_str));
        let summary = state.refreshers.commit(plan);
        state.fetch_refused = None;
        // What is in force now, tokens included, as the check read them (a kept token's file
        // as giving none).
        let in_force = in_force_keeping(&hash, &config, &kept);
        state.polls.acted(in_force);
        state.running_seen = in_force;
        let kept = kept.kept();
        state.running = config;
        state.running_bytes = Some(bytes.to_vec());

        let m = metrics();
        m.config_reloads.with_label_values(&["success"]).inc();
        m.config_last_reload_success.set(unix_now());
        m.config_hash.set(hash_number(&hash));
        m.config_restart_required
            .set(i64::from(!changes.is_empty()));
        info!(
            config = %path.display(),
            trigger,
            routes,
            credential_sets_kept = summary.kept,
            credential_sets_started = summary.started,
            credential_sets_stopped = summary.stopped,
            "configuration reloaded"
        );
        for e in &kept {
            token_kept(e, trigger);
        }
        for change in changes {
            warn!(
                config = %path.display(),
                key = change.key,
                running = %change.running,
                file = %change.file,
                "configuration reload: {} needs a restart; it keeps its running value, the rest \
                 of the file is in force",
                change.key
            );
        }
        true
    }
}

/// What a look at the running file finds, when its token files no longer read as they do in
/// force (a rotation); `None` when they do, or with no file (flags).
fn tokens_changed(state: &State) -> Option<Seen> {
    let now = look(state.running_bytes.as_deref()?, &state.running);
    (now != state.running_seen).then_some(now)
}

/// Checks `bytes` (read from `path`) as a configuration to put in force over the running one,
/// with the token files as they read now (a token file that gives no token keeps its token in
/// force: see [`KeptTokens`]); logs and counts a refusal.
fn check(
    state: &State,
    path: &Path,
    bytes: &[u8],
    trigger: &'static str,
) -> Option<(Config, Vec<Change>, KeptTokens)> {
    let kept = KeptTokens::new(
        token_files(&state.running)
            .map(|(file, owner, token)| ((file.to_owned(), owner), token.clone())),
    );
    let checked = text(bytes, path)
        .and_then(|text| checked(text, path, &state.running, state.endpoint, Some(&kept)));
    match checked {
        Ok((config, changes)) => Some((config, changes, kept)),
        Err(e) => {
            refused(&e, trigger);
            None
        }
    }
}
