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

    /// The median round of `runs` by elapsed time, whole: its CPU figures and its rate belong
    /// to the same transfer.
    pub fn median(runs: &[Run]) -> Run {
        let mut sorted: Vec<&Run> = runs.iter().collect();
        sorted.sort_by(|a, b| a.elapsed.total_cmp(&b.elapsed));
        let m = sorted[sorted.len() / 2];
        Run {
            elapsed: m.elapsed,
            client: m.client,
            backend: m.backend,
            proxy: m.proxy,
        }
    }

    /// CPU milliseconds per MiB, all parties together.
    fn total_ms(&self, mib: f64) -> f64 {
        (self.client + self.backend + self.proxy) * 1000.0 / mib
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
        // Each estimate takes one run's own total (client + backend + proxy: on loopback the
        // sender pays part of the receiver's TCP work, so how the CPU splits between parties
        // depends on who is in the path, and only a run's total is comparable) and adds the
        // encoder's CPU. An estimate, not a bound: the relay's own CPU per MiB moves from run
        // to run, and hashing could overlap other work only on other cores.
        let estimate = |run: &Run| {
            let needed = run.total_ms(self.mib) + hashing;
            let rate = cores as f64 * 1000.0 / needed;
            (needed, rate, rate / direct_rate)
        };
        println!(
            "Estimated ceiling for the streaming PUT on {cores} cores: a plain PUT's whole CPU per \
             MiB through a relay + the encoder's {hashing:.3} ms, spread perfectly over the cores:"
        );
        let mut best: f64 = 0.0;
        for (what, run) in [
            ("sigproxy's unsigned route", self.unsigned),
            ("the minimal relay", self.floor),
        ] {
            let (needed, rate, ratio) = estimate(run);
            best = best.max(ratio);
            println!(
                "  relaying like {what}: {:.3} + {hashing:.3} = {needed:.3} ms per MiB; rate <= \
                 {cores} x 1000 / {needed:.3} = {rate:.0} MiB/s; ratio <= {rate:.0} / \
                 {direct_rate:.0} (direct PUT) = {ratio:.2}",
                run.total_ms(self.mib)
            );
        }
        let streaming = self.streaming.total_ms(self.mib);
        let spread = cores as f64 * 1000.0 / streaming;
        println!(
            "  the CPU the streaming PUT took ({streaming:.3} ms per MiB, client + backend + \
             sigproxy) spread perfectly over the cores: rate <= {spread:.0} MiB/s, ratio <= {:.2}",
            spread / direct_rate
        );
        let relay = self.per_mib(self.unsigned.proxy);
        let sigproxy = self.per_mib(self.streaming.proxy);
        println!(
            "  one thread relaying and hashing a connection, as sigproxy does: rate <= 1000 / \
             ({relay:.3} + {hashing:.3}) = {:.0} MiB/s, ratio <= {:.2}; with the CPU sigproxy \
             took ({sigproxy:.3} ms per MiB): {:.0} MiB/s, ratio <= {:.2}",
            1000.0 / (relay + hashing),
            1000.0 / (relay + hashing) / direct_rate,
            1000.0 / sigproxy,
            1000.0 / sigproxy / direct_rate
        );
        let verdict = if best >= STREAMING_PUT_GOAL {
            "the goal is under the best estimate: within reach only with near-perfect use of \
             every core"
        } else {
            "the goal is over every estimate: out of reach on these cores for a proxy that \
             relays like these and hashes every byte"
        };
        let measured = self.direct.elapsed / self.streaming.elapsed;
        println!(
            "  goal >= {STREAMING_PUT_GOAL} ({:.0} MiB/s against this direct PUT); best \
             estimate {best:.2}; measured {measured:.2} ({:.0} MiB/s) with {:.2} of {cores} \
             cores busy: {verdict}",
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
