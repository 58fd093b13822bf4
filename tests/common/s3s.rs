//! s3s-fs, an independent S3 implementation, as a peer: it checks SigV4 (the seed and every
//! aws-chunked chunk signature) and checksum trailers, and stores objects under a directory.

use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use std::net::SocketAddr;
use std::path::Path;

/// An s3s-fs server with authentication on 127.0.0.1:0; stops when dropped.
pub struct S3s {
    pub addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl S3s {
    /// Serves `root`, accepting requests signed with `access_key` / `secret_key`.
    pub fn start(root: &Path, access_key: &str, secret_key: &str) -> S3s {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut builder = S3ServiceBuilder::new(s3s_fs::FileSystem::new(root).unwrap());
        builder.set_auth(SimpleAuth::from_single(access_key, secret_key));
        let service = builder.build();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let http =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let conn = http
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        S3s {
            addr,
            _runtime: runtime,
        }
    }
}
