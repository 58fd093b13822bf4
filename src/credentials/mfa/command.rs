//! Where codes come from: `token_command` (run directly, no shell) or the terminal at start.

use super::Code;
use std::io::{BufRead, IsTerminal, Write};
use std::process::Stdio;
use std::time::Duration;

/// The longest a `token_command` may run (a hardware key waiting for a touch included); under
/// the refresh loop's 30 s limit for a whole fetch.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// The most of a failing command's error output that reaches the log (its first line).
const STDERR_CHARS: usize = 120;
/// Output beyond this is not a code, and is not read.
const MAX_OUTPUT: usize = 4096;

/// Runs `argv` with no input and returns what it printed; the error is a short sentence that
/// never holds its standard output.
pub async fn run(argv: &[String], timeout: Duration) -> Result<String, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "mfa.token_command is empty".to_string())?;
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("mfa.token_command '{program}' could not be started: {e}"))?;
    let output = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => return Err(format!("mfa.token_command '{program}' failed: {e}")),
        // Dropping the future kills the child (kill_on_drop).
        Err(_) => {
            return Err(format!(
                "mfa.token_command '{program}' gave no code within {} s and was stopped",
                timeout.as_secs()
            ))
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first: String = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(STDERR_CHARS)
            .collect();
        return Err(format!(
            "mfa.token_command '{program}' failed ({}){}",
            output.status,
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        ));
    }
    if output.stdout.len() > MAX_OUTPUT {
        return Err(format!(
            "mfa.token_command '{program}' printed {} bytes, not a 6-digit code",
            output.stdout.len()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Asks for the code of `serial` on the controlling terminal, once, if standard input is one.
/// `None` when there is no terminal or what was typed is not 6 digits (said on the terminal).
pub fn prompt_on_terminal(set: &str, serial: &str) -> Option<Code> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .ok()?;
    let mut out = &tty;
    write!(
        out,
        "MFA code for credential set '{set}' (device {serial}): "
    )
    .ok()?;
    out.flush().ok()?;
    let mut line = String::new();
    std::io::BufReader::new(&tty).read_line(&mut line).ok()?;
    let code = Code::parse(&line);
    if code.is_none() {
        let _ = writeln!(
            out,
            "not a 6-digit code: '{set}' stays without credentials until restarted"
        );
    }
    code
}
