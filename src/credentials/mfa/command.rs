//! Where codes come from: `token_command` (run directly, no shell) or the terminal at start.

use super::Code;
use std::io::{BufRead, IsTerminal, Write};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest a `token_command` may run (a hardware key waiting for a touch included); under
/// the refresh loop's 30 s limit for a whole fetch.
pub const TIMEOUT: Duration = Duration::from_secs(20);
/// The most of a failing command's error output that reaches the log (its first line).
const STDERR_CHARS: usize = 120;
/// Output beyond this is not a code, and is not read.
const MAX_OUTPUT: usize = 4096;
/// The most of the error output kept (its first line is what is shown).
const STDERR_BYTES: usize = 4096;

/// Environment variables holding AWS credentials: sigproxy's own (a source's keys that may
/// call STS, the container credentials' token), which a program printing a code has no use for.
pub const WITHHELD_ENV: [&str; 5] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// How `argv` is started: directly, no input, its output piped, without AWS credentials or the
/// variables in `withheld` (sigproxy's tokens).
fn command(program: &str, args: &[String], withheld: &[String]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for name in WITHHELD_ENV
        .iter()
        .copied()
        .chain(withheld.iter().map(String::as_str))
    {
        command.env_remove(name);
    }
    command
}

/// Runs `argv` with no input and returns what it printed; the error is a short sentence that
/// never holds its standard output. At most [`MAX_OUTPUT`] bytes of its output and
/// [`STDERR_BYTES`] of its error output are kept: a command printing more is stopped at once.
pub async fn run(
    argv: &[String],
    withheld: &[String],
    timeout: Duration,
) -> Result<String, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "mfa.token_command is empty".to_string())?;
    let mut child = command(program, args, withheld)
        .spawn()
        .map_err(|e| format!("mfa.token_command '{program}' could not be started: {e}"))?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(format!("mfa.token_command '{program}': no pipes"));
    };
    let failed = |e: std::io::Error| format!("mfa.token_command '{program}' failed: {e}");
    let finish = async {
        let out = async {
            let mut out = Vec::new();
            stdout
                .take(MAX_OUTPUT as u64 + 1)
                .read_to_end(&mut out)
                .await
                .map_err(failed)?;
            if out.len() > MAX_OUTPUT {
                return Err(format!(
                    "mfa.token_command '{program}' printed more than {MAX_OUTPUT} bytes, not a \
                     6-digit code, and was stopped"
                ));
            }
            Ok(out)
        };
        let err = async { keep_start(stderr, STDERR_BYTES).await.map_err(failed) };
        let (out, err) = tokio::try_join!(out, err)?;
        let status = child.wait().await.map_err(failed)?;
        Ok::<_, String>((status, out, err))
    };
    // On an error or the timeout, dropping `child` kills the command (kill_on_drop).
    let (status, stdout, stderr) = match tokio::time::timeout(timeout, finish).await {
        Ok(done) => done?,
        Err(_) => {
            return Err(format!(
                "mfa.token_command '{program}' gave no code within {} s and was stopped",
                timeout.as_secs()
            ))
        }
    };
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr);
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
            "mfa.token_command '{program}' failed ({status}){}",
            if first.is_empty() {
                String::new()
            } else {
                format!(": {first}")
            }
        ));
    }
    Ok(String::from_utf8_lossy(&stdout).into_owned())
}

/// The first `keep` bytes of `from`; the rest is read and dropped (so the command is not held
/// up writing it) until it closes.
async fn keep_start(mut from: impl AsyncRead + Unpin, keep: usize) -> std::io::Result<Vec<u8>> {
    let mut kept = Vec::new();
    (&mut from).take(keep as u64).read_to_end(&mut kept).await?;
    tokio::io::copy(&mut from, &mut tokio::io::sink()).await?;
    Ok(kept)
}

/// How long the start-up prompt waits for a code to be typed.
const PROMPT_WAIT: Duration = Duration::from_secs(30);

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
    // A terminal nobody types at (a pod with `tty: true`, `docker run -t` without `-i`) must
    // not keep sigproxy from starting: after PROMPT_WAIT it starts without this set's session.
    let (sent, typed) = std::sync::mpsc::channel();
    let reader = tty.try_clone().ok()?;
    std::thread::spawn(move || {
        let mut line = String::new();
        if std::io::BufReader::new(reader).read_line(&mut line).is_ok() {
            let _ = sent.send(line);
        }
    });
    let Ok(line) = typed.recv_timeout(PROMPT_WAIT) else {
        let _ = writeln!(
            out,
            "\nno code typed within {} s: '{set}' starts without credentials",
            PROMPT_WAIT.as_secs()
        );
        return None;
    };
    let code = Code::parse(&line);
    if code.is_none() {
        let _ = writeln!(
            out,
            "not a 6-digit code: '{set}' stays without credentials until restarted"
        );
    }
    code
}
