//! `mfa` under `session_token` and `assume_role`: the device's serial number and the program
//! that prints its current code.
//!
//! `token_command` is a list of arguments run directly, without a shell: nothing in it is
//! expanded, quoted or split, so a device name with spaces is one argument as written.

use super::check::{is_word, Checker};
use super::file;
use super::{ConfigError, CredentialsConfig, MfaConfig};

/// An example for error messages.
const COMMAND_EXAMPLE: &str =
    "[ykman, oath, accounts, code, -s, 'Amazon Web Services:me@123456789012']";

impl Checker<'_> {
    /// `key` is the `mfa` key itself.
    pub(super) fn mfa(
        &self,
        key: &str,
        raw: Option<file::Mfa>,
    ) -> Result<Option<MfaConfig>, ConfigError> {
        let Some(file::Mfa {
            serial_number,
            token_command,
        }) = raw
        else {
            return Ok(None);
        };
        let Some(serial_number) = serial_number else {
            return self.err(
                format!("{key}.serial_number"),
                "is required (the MFA device's ARN, or a hardware token's serial number)",
            );
        };
        if !is_mfa_serial(&serial_number) {
            return self.err(
                format!("{key}.serial_number"),
                format!(
                    "'{serial_number}' is neither an MFA device ARN \
                     (arn:aws:iam::<account>:mfa/<name>) nor a hardware token's serial number \
                     (9-256 letters and digits)"
                ),
            );
        }
        let token_command = match token_command {
            None => None,
            Some(file::OneOrMore::One(_)) => {
                return self.err(
                    format!("{key}.token_command"),
                    format!(
                        "must be a list of arguments, run without a shell, e.g. {COMMAND_EXAMPLE}"
                    ),
                )
            }
            Some(file::OneOrMore::More(argv)) => {
                if argv.first().is_none_or(|program| program.trim().is_empty()) {
                    return self.err(
                        format!("{key}.token_command"),
                        format!("names no program; e.g. {COMMAND_EXAMPLE}"),
                    );
                }
                Some(argv)
            }
        };
        Ok(Some(MfaConfig {
            serial_number,
            token_command,
            // Filled in once the whole file is read (`Checker::config`).
            withheld_env: Vec::new(),
        }))
    }
}

/// An IAM MFA device's ARN (virtual or hardware, `arn:<partition>:iam::<account>:mfa/<path>`),
/// or a hardware token's serial number as STS takes it.
fn is_mfa_serial(serial: &str) -> bool {
    let parts: Vec<&str> = serial.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        return parts[1].starts_with("aws")
            && parts[2] == "iam"
            && parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && parts[5]
                .strip_prefix("mfa/")
                .is_some_and(|name| is_word(name, 1..=512, "+=,.@-_/"));
    }
    is_word(serial, 9..=256, "")
}

impl CredentialsConfig {
    /// The set's MFA device, if its sessions need a code (a session token's, or its first role's).
    pub fn mfa(&self) -> Option<&MfaConfig> {
        match &self.sts_token {
            Some(token) => token.mfa.as_ref(),
            None => self.assume_role.first().and_then(|r| r.mfa.as_ref()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_mfa_serial;

    #[test]
    fn serial_numbers() {
        for good in [
            "arn:aws:iam::123456789012:mfa/alice",
            "arn:aws-us-gov:iam::123456789012:mfa/path/alice-phone",
            "GAHT12345678",
        ] {
            assert!(is_mfa_serial(good), "{good}");
        }
        for bad in [
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:mfa/",
            "arn:aws:iam::12345:mfa/alice",
            "arn:aws:sts::123456789012:mfa/alice",
            "short",
            "has spaces in it",
            "",
        ] {
            assert!(!is_mfa_serial(bad), "{bad}");
        }
    }
}
