//! Where a transfer's CPU goes: each party's CPU time in a transfer, the hashing rates on this
//! machine, and the ceiling they put on the streaming PUT.

use crate::measure::{cpu_seconds, knob, own_cpu_seconds, thread_cpu_seconds};
use std::time::{Duration, SystemTime};

/// Issue 16's goal for the streaming PUT through sigproxy against the direct one.
const STREAMING_PUT_GOAL: f64 = 0.45;

/// One transfer: seconds elapsed and the CPU seconds each party spent in it.
#[derive(Default)]
pub struct Run {
    pub elapsed: f64,
    pub client: f64,
    pub backend: f64,
    pub proxy: f64,
}

impl Run {
    /// Times `transfer`, run on this thread (the client) while the backend runs on other
    /// threads of this process and sigproxy is process `proxy`.
    pub fn measure(proxy: u32, transfer: impl FnOnce() -> Duration) -> Run {
        let before = (thread_cpu_seconds(), own_cpu_seconds(), cpu_seconds(proxy));
        let elapsed = transfer().as_secs_f64();
        let client = thread_cpu_seconds() - before.0;
        Run {
            elapsed,
            client,
            // The backend's connection threads may have ended: the process's total keeps them.
            // Both totals are rounded to clock ticks, so the difference can dip below zero.
            backend: (own_cpu_seconds() - before.1 - client).max(0.0),
            proxy: cpu_seconds(proxy) - before.2,
        }
    }

    /// Each figure's median over `runs`.
    pub fn median(runs: &[Run]) -> Run {
        let median = |figure: fn(&Run) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(figure).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Run {
            elapsed: median(|r| r.elapsed),
            client: median(|r| r.client),
            backend: median(|r| r.backend),
            proxy: median(|r| r.proxy),
        }
    }

    pub fn cores_busy(&self) -> f64 {
        (self.client + self.backend + self.proxy) / self.elapsed
    }
}

/// What bounds the streaming PUT's rate here, computed from measured CPU per MiB.
pub struct Ceiling<'a> {
    pub direct: &'a Run,
    pub unsigned: &'a Run,
    /// The plain PUT through the minimal relay: the least any user-space proxy spends here.
    pub floor: &'a Run,
    pub streaming: &'a Run,
    pub mib: f64,
    /// The encoder's milliseconds per MiB.
    pub hashing: f64,
    pub cores: usize,
}

impl Ceiling<'_> {
    /// Milliseconds of CPU per MiB moved.
    fn per_mib(&self, seconds: f64) -> f64 {
        seconds * 1000.0 / self.mib
    }

    pub fn print(&self) {
        let (cores, hashing) = (self.cores, self.hashing);
        let direct_rate = self.mib / self.direct.elapsed;
        let client = self.per_mib(self.direct.client);
        let backend = self.per_mib(self.direct.backend);
        let relay = self.per_mib(self.unsigned.proxy);
        let needed = client + backend + relay + hashing;
        let rate = cores as f64 * 1000.0 / needed;
        let ratio = rate / direct_rate;
        println!(
            "Ceiling for the streaming PUT on {cores} cores, through a proxy that relays as \
             cheaply as sigproxy's unsigned route: per MiB at least client {client:.3} + backend \
             {backend:.3} (direct PUT) + relay {relay:.3} (sigproxy, unsigned route) + hashing \
             {hashing:.3} (encoder) = {needed:.3} ms of CPU; rate <= {cores} x 1000 / \
             {needed:.3} = {rate:.0} MiB/s; ratio <= {rate:.0} / {direct_rate:.0} (direct PUT) \
             = {ratio:.2}"
        );
        let floor = self.per_mib(self.floor.proxy);
        let floor_rate = cores as f64 * 1000.0 / (client + backend + floor + hashing);
        println!(
            "  through the minimal relay instead (any user-space proxy's floor here): client \
             {client:.3} + backend {backend:.3} + relay {floor:.3} + hashing {hashing:.3}: rate \
             <= {floor_rate:.0} MiB/s, ratio <= {:.2}",
            floor_rate / direct_rate
        );
        let streaming = self.per_mib(self.streaming.client)
            + self.per_mib(self.streaming.backend)
            + self.per_mib(self.streaming.proxy);
        let spread = cores as f64 * 1000.0 / streaming;
        println!(
            "  the CPU the streaming PUT took ({streaming:.3} ms per MiB, client + backend + \
             sigproxy) spread perfectly over the cores: rate <= {spread:.0} MiB/s, ratio <= {:.2}",
            spread / direct_rate
        );
        let one_thread = 1000.0 / (relay + hashing);
        let sigproxy = self.per_mib(self.streaming.proxy);
        let as_measured = 1000.0 / sigproxy;
        println!(
            "  one thread relaying and hashing a connection, as sigproxy does: rate <= 1000 / \
             ({relay:.3} + {hashing:.3}) = {one_thread:.0} MiB/s, ratio <= {:.2}; with the CPU \
             sigproxy took ({sigproxy:.3} ms per MiB): {as_measured:.0} MiB/s, ratio <= {:.2}",
            one_thread / direct_rate,
            as_measured / direct_rate
        );
        let verdict = if ratio >= STREAMING_PUT_GOAL {
            "the goal is under the ceiling: reachable in principle on these cores, so the gap \
             is sigproxy's"
        } else {
            "the goal is over the ceiling: no proxy relaying as cheaply and hashing every byte \
             reaches it on these cores"
        };
        let measured = self.direct.elapsed / self.streaming.elapsed;
        println!(
            "  goal >= {STREAMING_PUT_GOAL} ({:.0} MiB/s against this direct PUT); ceiling \
             {ratio:.2} ({rate:.0} MiB/s); measured {measured:.2} ({:.0} MiB/s) with {:.2} of \
             {cores} cores busy: {verdict}",
            STREAMING_PUT_GOAL * direct_rate,
            self.mib / self.streaming.elapsed,
            self.streaming.cores_busy()
        );
    }
}

/// Milliseconds of this thread's CPU per MiB of `work` over 64 KiB pieces of `mib` MiB. CPU
/// time, not the clock: other work on the machine delays a pass but hardly changes its CPU.
fn ms_per_mib(mib: u64, mut work: impl FnMut(&[u8])) -> f64 {
    let piece = vec![0x5au8; 64 * 1024];
    let started = thread_cpu_seconds();
    for _ in 0..mib * 16 {
        work(&piece);
    }
    (thread_cpu_seconds() - started) * 1000.0 / mib as f64
}

/// sigproxy's aws-chunked encoder, signing with made-up keys as a `streaming` route does.
fn encoder() -> sigproxy::aws_chunked::Encoder {
    let credentials =
        aws_credential_types::Credentials::new("AKIDBENCH", "bench-secret", None, None, "bench");
    let signer = sigproxy::aws_chunked::ChunkSigner::new(
        credentials.into(),
        "us-east-1",
        "s3",
        SystemTime::now(),
        "0".repeat(64),
    );
    sigproxy::aws_chunked::Encoder::new(signer)
}

/// Times SHA-256 (sha2) and sigproxy's aws-chunked encoder on this thread and prints their
/// rates; returns the encoder's milliseconds per MiB.
pub fn hashing_rates() -> f64 {
    // 1 GiB: about 0.6 s of CPU each, so the 10 ms clock ticks of /proc hardly matter.
    let hash_mib = knob("SIGPROXY_HASH_MIB", 1024, 8);
    let sha_ms = ms_per_mib(hash_mib, |piece| {
        std::hint::black_box(<sha2::Sha256 as sha2::Digest>::digest(piece));
    });
    let mut encoder = encoder();
    let encoder_ms = ms_per_mib(hash_mib, |piece| {
        std::hint::black_box(encoder.push(piece, false));
    });
    println!(
        "\nOn this machine, CPU time over {hash_mib} MiB in 64 KiB pieces: SHA-256 (sha2) {:.0} \
         MiB/s ({sha_ms:.3} ms/MiB); sigproxy's aws-chunked encoder (SHA-256, chunk signature, \
         framing) {:.0} MiB/s ({encoder_ms:.3} ms/MiB)",
        1000.0 / sha_ms,
        1000.0 / encoder_ms,
    );
    encoder_ms
}
