//! Micro-benchmarks of the per-request work: signing, hashing, chunk signatures, routing, config.
//!
//!     cargo bench --bench signing

use aws_credential_types::Credentials;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pingora::http::RequestHeader;
use sigproxy::aws_chunked::{ChunkSigner, Encoder, FrameCheck, Reframer, CHUNK_SIZE};
use sigproxy::config::{Algorithm, Config, CredentialsConfig, Payload, SigningConfig};
use sigproxy::credentials::{CredentialSet, CredentialStore};
use sigproxy::route::Router;
use sigproxy::sign::{sha256_hex, Signer, EMPTY_SHA256};
use sigproxy::target::resolve;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

fn credentials() -> Credentials {
    Credentials::new(
        "ASIAEXAMPLEEXAMPLE12",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        Some("IQoJb3JpZ2luX2VjEXAMPLE".repeat(30)),
        Some(SystemTime::now() + Duration::from_secs(3600)),
        "bench",
    )
}

fn signer(service: &str) -> Signer {
    signer_with(service, Algorithm::SigV4, "us-east-1")
}

/// `region` is the region set with SigV4A.
fn signer_with(service: &str, algorithm: Algorithm, region: &str) -> Signer {
    let set = Arc::new(CredentialSet::new(CredentialsConfig::default_chain(
        "bench",
    )));
    set.store(credentials());
    let config = SigningConfig {
        service: service.into(),
        region: region.into(),
        credentials: "bench".into(),
        payload: Payload::Signed,
        algorithm,
    };
    Signer::new(&config, set)
}

fn request(method: &str) -> RequestHeader {
    let mut req = RequestHeader::build(method, b"/orders/123?expand=items", None).unwrap();
    req.insert_header("host", "abc123.lambda-url.us-east-1.on.aws")
        .unwrap();
    req.insert_header("user-agent", "legacy-app/1.0").unwrap();
    req.insert_header("accept", "application/json").unwrap();
    req.insert_header("content-type", "application/json")
        .unwrap();
    req
}

fn signing(c: &mut Criterion) {
    let signer = signer("lambda");
    let creds = signer.current_credentials().unwrap();
    c.bench_function("sign small GET (lambda)", |b| {
        b.iter(|| {
            let mut req = request("GET");
            let creds = signer.current_credentials().unwrap();
            signer
                .sign(&mut req, &creds, EMPTY_SHA256, SystemTime::now())
                .unwrap()
        })
    });

    // SigV4A: an ECDSA P-256 signature per request (the key is derived once per access key).
    let v4a = signer_with("s3", Algorithm::SigV4a, "*");
    c.bench_function("sign small GET (s3, sigv4a)", |b| {
        b.iter(|| {
            let mut req = request("GET");
            v4a.sign(&mut req, &creds, EMPTY_SHA256, SystemTime::now())
                .unwrap()
        })
    });

    let body = vec![0x42u8; 64 * 1024];
    let mut group = c.benchmark_group("hash and sign");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("64 KiB POST", |b| {
        b.iter(|| {
            let mut req = request("POST");
            let hash = sha256_hex(black_box(&body));
            signer
                .sign(&mut req, &creds, &hash, SystemTime::now())
                .unwrap()
        })
    });
    group.finish();

    let chunk = vec![0x61u8; CHUNK_SIZE];
    let mut group = c.benchmark_group("aws-chunked");
    group.throughput(Throughput::Bytes(CHUNK_SIZE as u64));
    group.bench_function("one 64 KiB chunk signature", |b| {
        let mut encoder = Encoder::new(ChunkSigner::new(
            creds.clone().into(),
            "us-east-1",
            "s3",
            SystemTime::now(),
            "0".repeat(64),
        ));
        b.iter(|| encoder.push(black_box(&chunk), false))
    });
    group.finish();

    // An SDK's checksum-trailer upload re-framed on a streaming route: its chunks read, sigproxy's
    // signed, the trailer signed.
    let decoded = 1 << 20;
    let mut upload = Vec::new();
    for piece in vec![0x62u8; decoded].chunks(64 * 1024) {
        upload.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        upload.extend_from_slice(piece);
        upload.extend_from_slice(b"\r\n");
    }
    upload.extend_from_slice(b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n");
    let mut head = RequestHeader::build("PUT", b"/bucket/key", None).unwrap();
    head.insert_header("x-amz-decoded-content-length", decoded.to_string())
        .unwrap();
    head.insert_header("x-amz-trailer", "x-amz-checksum-crc32")
        .unwrap();
    let mut group = c.benchmark_group("aws-chunked");
    group.throughput(Throughput::Bytes(decoded as u64));
    group.bench_function("re-frame a 1 MiB checksum-trailer upload", |b| {
        b.iter(|| {
            let signer = ChunkSigner::new(
                creds.clone().into(),
                "us-east-1",
                "s3",
                SystemTime::now(),
                "0".repeat(64),
            );
            let mut reframer = Reframer::new(FrameCheck::new(&head).unwrap(), signer);
            let pieces: Vec<&[u8]> = upload.chunks(16 * 1024).collect();
            let mut sent = 0;
            for (i, piece) in pieces.iter().enumerate() {
                sent += reframer
                    .push(black_box(piece), i + 1 == pieces.len())
                    .unwrap()
                    .len();
            }
            sent
        })
    });
    group.finish();
}

fn routing_and_config(c: &mut Criterion) {
    let mut yaml = String::from(
        r#"credentials:
  app: {}
routes:
"#,
    );
    for i in 0..20 {
        yaml.push_str(&format!(
            r#"  - name: r{i}
    match: {{ host: svc{i}.internal, path_prefix: /api/v{i}/ }}
    strip_prefix: true
    upstream: https://f{i}.lambda-url.us-east-1.on.aws
    credentials: app
"#
        ));
    }
    let config = Config::parse(&yaml, Path::new("bench.yaml")).unwrap();
    let store = CredentialStore::new(&config);
    let router = Router::new(&config, &store);
    c.bench_function("route match (20 routes, last matches)", |b| {
        b.iter(|| {
            router
                .find(
                    black_box(Some("svc19.internal:8080")),
                    black_box("/api/v19/items/1"),
                )
                .unwrap()
                .unwrap()
        })
    });
    let (route, _) = router
        .find(Some("svc19.internal"), "/api/v19/x")
        .unwrap()
        .unwrap();
    c.bench_function("upstream target (resolve, strip, encode, query)", |b| {
        b.iter(|| {
            let path = resolve(black_box("/api/v19/items/a%20b/c"), route.path_rules()).unwrap();
            route
                .target(&path, black_box(Some("q=x+y&page=2")))
                .unwrap()
        })
    });

    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/api.yaml"))
            .unwrap();
    c.bench_function("parse and validate config/api.yaml", |b| {
        b.iter(|| Config::parse(black_box(&shipped), Path::new("api.yaml")).unwrap())
    });
}

criterion_group!(benches, signing, routing_and_config);
criterion_main!(benches);
