//! MFA codes for the STS calls that start a session (GetSessionToken, the first AssumeRole).
//!
//! Each set with `mfa` has one [`Gate`]: it hands out codes (from `token_command`, or the one
//! typed at start) and makes sure a device is never hammered into locking itself:
//!
//! - a code goes to STS at most once: a command printing the code already sent (same TOTP
//!   window) is not believed, and sigproxy waits for the next window;
//! - after STS refuses a code, the command is not run again for one TOTP window (30 s); from
//!   the third refusal in a row, for 5 minutes, doubling up to an hour;
//! - a command that fails (exit status, no 6-digit code, over 20 s) is run again after 30 s.
//!
//! All of this is the device's, not the set's: every gate of one serial number, in any set and
//! across reloads (a changed set gets a new gate), shares one [`Device`], and runs its command one
//! at a time. Two sets on one device, or a set changed by a reload just after a refusal, would
//! otherwise each send the window's code, or run the command again at once.
//!
//! Codes never reach a log: [`Code`]'s `Debug` hides it and nothing displays it.

mod command;

use crate::config::MfaConfig;
use aws_smithy_runtime_api::client::result::SdkError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A TOTP code changes every 30 seconds (RFC 6238's default, and every MFA app's).
pub const TOTP_WINDOW: Duration = Duration::from_secs(30);
/// Refusals in a row waited out one window each before backing off.
const REFUSALS_BEFORE_BACKOFF: u32 = 2;
/// The first backoff after that; doubled by each further refusal, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);
/// "Until restarted or reloaded": no code can be had without a person.
const NEVER: Duration = Duration::from_secs(1 << 30);

/// One MFA code. Its `Debug` shows no digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// Six ASCII digits (after trimming whitespace), or `None`.
    pub fn parse(text: &str) -> Option<Code> {
        let text = text.trim();
        (text.len() == 6 && text.bytes().all(|b| b.is_ascii_digit())).then(|| Code(text.into()))
    }

    /// For the STS request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Code(******)")
    }
}

/// Why no code could be had, and when to try again.
#[derive(Debug)]
pub struct NoCode {
    pub reason: String,
    pub retry_after: Duration,
}

#[derive(Debug, Default)]
struct State {
    /// The last code handed out: never handed out again.
    last: Option<Code>,
    /// No code is asked for before this.
    not_before: Option<Instant>,
    /// Why the last try failed, repeated while waiting.
    waiting_because: Option<String>,
    /// STS refusals in a row.
    refusals: u32,
    /// The session could not be renewed for want of a (good) code.
    needed: bool,
}

/// One MFA device (serial number), shared by the gates of every set using it.
#[derive(Debug, Default)]
struct Device {
    state: Mutex<State>,
    /// Held while a code is being had: one command run at a time per device.
    asking: tokio::sync::Mutex<()>,
}

impl Device {
    /// The device of `serial`: the one in use if any set (running, or being replaced by a
    /// reload) still has it, else a new one.
    fn of(serial: &str) -> Arc<Device> {
        static DEVICES: Mutex<Option<HashMap<String, Weak<Device>>>> = Mutex::new(None);
        let mut devices = DEVICES.lock().unwrap_or_else(|p| p.into_inner());
        let devices = devices.get_or_insert_with(HashMap::new);
        if let Some(device) = devices.get(serial).and_then(Weak::upgrade) {
            return device;
        }
        devices.retain(|_, d| d.strong_count() > 0);
        let device = Arc::new(Device::default());
        devices.insert(serial.to_string(), Arc::downgrade(&device));
        device
    }
}

/// The MFA device of one credential set.
#[derive(Debug)]
pub struct Gate {
    config: MfaConfig,
    device: Arc<Device>,
    /// Typed on the terminal at start; used once.
    typed: Mutex<Option<Code>>,
}

impl Gate {
    pub fn new(config: MfaConfig) -> Self {
        Gate {
            device: Device::of(&config.serial_number),
            config,
            typed: Mutex::new(None),
        }
    }

    pub fn serial_number(&self) -> &str {
        &self.config.serial_number
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.device.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether codes come from a person at start (no `token_command`).
    pub fn asks_on_terminal(&self) -> bool {
        self.config.token_command.is_none()
    }

    /// Keeps a code typed at start for the first fetch.
    pub fn typed(&self, code: Code) {
        *self.typed.lock().unwrap_or_else(|p| p.into_inner()) = Some(code);
    }

    /// The code for the next STS call. On success the gate counts it as used.
    pub async fn code(&self) -> Result<Code, NoCode> {
        // One at a time per device: a second set waits, then finds the window's code spent.
        let _asking = self.device.asking.lock().await;
        let now = Instant::now();
        {
            let typed = self.typed.lock().unwrap_or_else(|p| p.into_inner()).take();
            let mut state = self.state();
            if let Some(code) = typed.filter(|c| state.last.as_ref() != Some(c)) {
                return Ok(self.hand_out(&mut state, code, now));
            }
            if let Some(at) = state.not_before.filter(|at| *at > now) {
                let reason = state
                    .waiting_because
                    .clone()
                    .unwrap_or_else(|| "waiting for the next MFA code".into());
                return Err(NoCode {
                    reason,
                    retry_after: at - now,
                });
            }
        }
        let Some(argv) = &self.config.token_command else {
            return Err(self.fail(
                "no mfa.token_command, and the code typed at start (if any) is used: \
                 restart sigproxy at a terminal, or configure a token_command"
                    .into(),
                NEVER,
            ));
        };
        let withheld = &self.config.withheld_env;
        let printed = match command::run(argv, withheld, command::TIMEOUT).await {
            Ok(printed) => printed,
            Err(why) => return Err(self.fail(why, TOTP_WINDOW)),
        };
        let Some(code) = Code::parse(&printed) else {
            return Err(self.fail(
                format!(
                    "mfa.token_command printed no 6-digit code ({} bytes of output)",
                    printed.len()
                ),
                TOTP_WINDOW,
            ));
        };
        let mut state = self.state();
        if state.last.as_ref() == Some(&code) {
            drop(state);
            return Err(self.fail(
                "mfa.token_command printed the code already sent to STS; waiting for the next one"
                    .into(),
                TOTP_WINDOW,
            ));
        }
        Ok(self.hand_out(&mut state, code, Instant::now()))
    }

    /// Records `code` as used. Until STS's answer says otherwise, no new code is asked for
    /// within the window (a fetch cut short by its timeout leaves it so).
    fn hand_out(&self, state: &mut State, code: Code, now: Instant) -> Code {
        state.last = Some(code.clone());
        state.not_before = Some(now + TOTP_WINDOW);
        state.waiting_because = Some("the last MFA code's STS call did not finish".into());
        code
    }

    fn fail(&self, reason: String, wait: Duration) -> NoCode {
        let mut state = self.state();
        state.needed = true;
        state.not_before = Some(Instant::now() + wait);
        state.waiting_because = Some(reason.clone());
        NoCode {
            reason,
            retry_after: wait,
        }
    }

    /// STS issued a session for the code handed out.
    pub fn accepted(&self) {
        let mut state = self.state();
        state.refusals = 0;
        state.not_before = None;
        state.waiting_because = None;
        state.needed = false;
    }

    /// The STS call with the code handed out failed: `answered` if STS itself refused it (the
    /// code is spent and counts towards backing off; a code is needed), else the call did not
    /// get through (the code may be spent all the same: the next one waits a window).
    pub fn refused(&self, answered: bool, why: &str) -> Duration {
        let mut state = self.state();
        if answered {
            state.refusals += 1;
        }
        let wait = refusal_wait(state.refusals);
        state.needed = answered;
        state.not_before = Some(Instant::now() + wait);
        state.waiting_because = Some(if answered {
            format!(
                "STS refused the MFA code ({} in a row; no new code for {} s): {why}",
                state.refusals,
                wait.as_secs()
            )
        } else {
            format!(
                "the STS call with the MFA code failed (no new code for {} s): {why}",
                wait.as_secs()
            )
        });
        wait
    }

    /// Why the last code could not be had or was refused, while that holds.
    pub fn reason(&self) -> Option<String> {
        self.state().waiting_because.clone()
    }

    /// The set cannot renew its session for want of a good code.
    pub fn needed(&self) -> bool {
        self.state().needed
    }

    /// How long before a code can be asked for again (zero: now).
    pub fn retry_after(&self) -> Duration {
        let now = Instant::now();
        self.state()
            .not_before
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }

    /// Runs `call` with a code, and records STS's answer. The error is a secret-free sentence.
    pub async fn call<T, E, R, F, Fut>(&self, call: F) -> Result<T, String>
    where
        F: FnOnce(Code) -> Fut,
        Fut: std::future::Future<Output = Result<T, SdkError<E, R>>>,
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + 'static,
    {
        let code = self.code().await.map_err(|no| no.reason)?;
        match call(code).await {
            Ok(out) => {
                self.accepted();
                Ok(out)
            }
            Err(e) => {
                let answered = matches!(e, SdkError::ServiceError(_));
                let why = crate::credentials::sts::error_sentence(&e);
                self.refused(answered, &why);
                Err(self.state().waiting_because.clone().unwrap_or(why))
            }
        }
    }
}

/// The wait after `refusals` refusals in a row: one TOTP window for the first two, then 5 min
/// doubling to an hour.
fn refusal_wait(refusals: u32) -> Duration {
    if refusals <= REFUSALS_BEFORE_BACKOFF {
        return TOTP_WINDOW;
    }
    let doublings = (refusals - REFUSALS_BEFORE_BACKOFF - 1).min(8);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

pub use command::prompt_on_terminal;

#[cfg(test)]
mod tests;
