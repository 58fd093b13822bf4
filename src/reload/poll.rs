//! What one look at the file decides. A change is acted on once the file has read the same on
//! two polls in a row: a writer that is not atomic (`cp`, `>` redirection, an editor writing in
//! place, a slow network file system) leaves, for a moment, a truncated file that may well be a
//! valid configuration (a route list cut short, an upstream host cut short, an
//! `allowed_clients` entry `10.0.0.0/16` cut to `10.0.0.0/1`). Applying it for a second would
//! sign requests for the wrong upstream or admit the wrong clients; refusing it would count a
//! failure nobody made. SIGHUP acts at once: whoever sends it has finished writing.

use super::Hash;
use crate::access::BearerToken;
use crate::config::{token_file_state, Config, KeptTokens};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What a look at the file found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Content(Hash),
    Unreadable,
}

/// What to do after a look.
#[derive(Debug, PartialEq, Eq)]
pub enum Act {
    /// The file reads as when last acted on.
    Unchanged,
    /// The file changed: wait for the next poll to read the same.
    Wait,
    /// The file changed and read the same twice: reload it.
    Reload,
    /// The file could not be read, twice: refuse (once).
    Refuse,
}

/// The file as last acted on, and a change seen once and not yet acted on.
pub struct Polls {
    acted: Seen,
    pending: Option<Seen>,
}

impl Polls {
    pub fn new(acted: Seen) -> Polls {
        Polls {
            acted,
            pending: None,
        }
    }

    /// The file was acted on as `seen` (a reload or a refusal, whatever its trigger).
    pub fn acted(&mut self, seen: Seen) {
        self.acted = seen;
        self.pending = None;
    }

    /// Whether what a poll found is to be acted on.
    pub fn look(&mut self, now: Seen) -> Act {
        if now == self.acted {
            self.pending = None;
            return Act::Unchanged;
        }
        if self.pending != Some(now) {
            self.pending = Some(now);
            return Act::Wait;
        }
        self.acted(now);
        match now {
            Seen::Content(_) => Act::Reload,
            Seen::Unreadable => Act::Refuse,
        }
    }
}

/// What a poll compares: the file's SHA-256 and, for each token the configuration in force
/// reads from a file (`access.bearer_token_file`, `access.clients[].token_file`,
/// `credential_endpoint.authorization_token_file`),
/// the token that file holds now: a rotated token (a Kubernetes Secret swapped, nothing sent
/// SIGHUP, the configuration unchanged) is a change too.
pub(super) fn look(bytes: &[u8], running: &Config) -> Seen {
    let hash = Sha256::digest(bytes).into();
    let tokens: Vec<[u8; 32]> = token_files(running)
        .map(|(file, _, _)| {
            let read = std::fs::read_to_string(file);
            match read.as_deref().ok().and_then(BearerToken::parse) {
                Some(token) => *token.digest(),
                None => no_token(&token_file_state(&read)),
            }
        })
        .collect();
    with_tokens(&hash, &tokens)
}

/// A file that gives no token (unreadable, too short), as [`look`] sees it: a value no token's
/// digest is, different for each such state, so that each is looked at (and reported) in turn.
fn no_token(state: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"no token\0")
        .chain_update(state)
        .finalize()
        .into()
}

/// What [`look`] finds while `config`, read from a file hashing to `hash`, is in force.
pub(super) fn in_force(hash: &Hash, config: &Config) -> Seen {
    in_force_keeping(hash, config, &KeptTokens::default())
}

/// [`in_force`] for a configuration whose check kept tokens (`kept`): their files are seen as
/// the check read them, giving no token.
pub(super) fn in_force_keeping(hash: &Hash, config: &Config, kept: &KeptTokens) -> Seen {
    let tokens: Vec<[u8; 32]> = token_files(config)
        .map(|(file, owner, token)| match kept.state_of(file, &owner) {
            Some(state) => no_token(&state),
            None => *token.digest(),
        })
        .collect();
    with_tokens(hash, &tokens)
}

/// The token files `config` read, each with whose it is (see [`KeptTokens`]) and the token it
/// held then.
pub(super) fn token_files(config: &Config) -> impl Iterator<Item = (&Path, String, &BearerToken)> {
    let access = match (
        &config.access.bearer_token_file,
        &config.access.bearer_token,
    ) {
        (Some(file), Some(token)) => Some((
            file.as_path(),
            "access.bearer_token_file".to_string(),
            token,
        )),
        _ => None,
    };
    let endpoint = config.credential_endpoint.as_ref().and_then(|e| {
        Some((
            e.token_file.as_deref()?,
            "credential_endpoint".to_string(),
            e.token.as_ref()?,
        ))
    });
    let clients = config.access.clients.iter().filter_map(|c| {
        Some((
            c.token_file.as_deref()?,
            format!("client:{}", c.name),
            &c.token,
        ))
    });
    access.into_iter().chain(endpoint).chain(clients)
}

fn with_tokens(hash: &Hash, tokens: &[[u8; 32]]) -> Seen {
    if tokens.is_empty() {
        return Seen::Content(*hash);
    }
    let mut all = Sha256::new();
    all.update(hash);
    for token in tokens {
        all.update(token);
    }
    Seen::Content(all.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_acted_on_once_it_reads_the_same_on_two_polls() {
        let [running, partial, new, empty] = [1, 2, 3, 4].map(|n| Seen::Content([n; 32]));
        let mut polls = Polls::new(running);
        assert_eq!(polls.look(running), Act::Unchanged);
        // A writer caught mid-way: the partial file is never applied.
        assert_eq!(polls.look(partial), Act::Wait);
        assert_eq!(polls.look(new), Act::Wait);
        assert_eq!(polls.look(new), Act::Reload);
        assert_eq!(polls.look(new), Act::Unchanged);
        // Truncated, then written again as it was: nothing to do, no failure counted.
        assert_eq!(polls.look(empty), Act::Wait);
        assert_eq!(polls.look(new), Act::Unchanged);
        // Gone for one poll (rm, then cp): nothing; gone for two: refused once.
        assert_eq!(polls.look(Seen::Unreadable), Act::Wait);
        assert_eq!(polls.look(new), Act::Unchanged);
        assert_eq!(polls.look(Seen::Unreadable), Act::Wait);
        assert_eq!(polls.look(Seen::Unreadable), Act::Refuse);
        assert_eq!(polls.look(Seen::Unreadable), Act::Unchanged);
        // A SIGHUP reload in between makes its content the one acted on.
        polls.look(partial);
        polls.acted(running);
        assert_eq!(polls.look(running), Act::Unchanged);
    }
}
