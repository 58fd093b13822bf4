//! What a reload keeps of the configuration in force when a token file cannot give a token
//! now: that file's token, for the same owner (see [`KeptTokens`]).

use super::ConfigError;
use crate::access::BearerToken;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a token file's read gave, as a reload's poll and check both see it: its text, or the
/// kind of error reading it. Two reads that give the same state give the same token or lack
/// of one.
pub fn token_file_state(read: &std::io::Result<String>) -> Vec<u8> {
    match read {
        Ok(text) => [b"text\0".as_slice(), text.as_bytes()].concat(),
        Err(e) => format!("error\0{:?}", e.kind()).into_bytes(),
    }
}

/// For a reload: the token each token file gave the configuration in force, by file and by
/// whose it is (`access.bearer_token_file`, `credential_endpoint`, or `client:<name>`, which
/// no other owner can be: `:` is in no client name). A file
/// that cannot give one now (deleted, unreadable, holding no token) keeps its token in force
/// for the same owner, so that one bad file neither stops the rest of the reload (another
/// token's rotation, which is how a token is revoked) nor locks every client out; each such
/// file is reported.
#[derive(Debug, Default)]
pub struct KeptTokens {
    tokens: BTreeMap<(PathBuf, String), BearerToken>,
    kept: RefCell<Vec<Kept>>,
}

#[derive(Debug)]
struct Kept {
    error: ConfigError,
    file: PathBuf,
    owner: String,
    /// [`token_file_state`] as the check read it.
    state: Vec<u8>,
}

impl KeptTokens {
    pub fn new(tokens: impl IntoIterator<Item = ((PathBuf, String), BearerToken)>) -> KeptTokens {
        KeptTokens {
            tokens: tokens.into_iter().collect(),
            kept: RefCell::default(),
        }
    }

    /// The token in force from `file` for `owner`, if there is one; recorded as kept for
    /// `why`, the file having read as `state`.
    pub(super) fn keep(
        &self,
        (config, key, owner): (&Path, &str, &str),
        file: &str,
        why: &str,
        state: Vec<u8>,
    ) -> Option<BearerToken> {
        let file = PathBuf::from(file);
        let token = self.tokens.get(&(file.clone(), owner.to_string()))?.clone();
        self.kept.borrow_mut().push(Kept {
            error: ConfigError {
                path: config.to_owned(),
                key: key.to_string(),
                reason: format!("{why}; the token in force from it stays until it holds one"),
            },
            file,
            owner: owner.to_string(),
            state,
        });
        Some(token)
    }

    /// The token files that could not give a token, each kept (file, key and reason).
    pub fn kept(&self) -> Vec<ConfigError> {
        self.kept.borrow().iter().map(|k| k.error.clone()).collect()
    }

    /// How `file` read for `owner` when its token was kept ([`token_file_state`]).
    pub fn state_of(&self, file: &Path, owner: &str) -> Option<Vec<u8>> {
        let kept = self.kept.borrow();
        let found = kept.iter().find(|k| k.file == file && k.owner == owner)?;
        Some(found.state.clone())
    }
}
