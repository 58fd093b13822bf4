//! aws-sigv4-proxy's flags as the command line takes them.

/// The flags, as aws-sigv4-proxy names them (plus sigproxy's access and admin flags).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Flags {
    /// AWS service to sign for (the signing name, e.g. aps, es, execute-api), with --region.
    /// Default: read from the host.
    #[arg(long, value_name = "SERVICE")]
    pub name: Option<String>,
    /// AWS region of STS (--role-arn); with --name, also the region to sign for. Default: read
    /// from the host.
    #[arg(long)]
    pub region: Option<String>,
    /// Host to proxy to (`host[:port]`). Without it, each request's Host picks the upstream:
    /// AWS endpoints and --allowed-upstream-hosts only.
    #[arg(long)]
    pub host: Option<String>,
    /// Host to sign for (and send as Host), when it differs from --host.
    #[arg(long)]
    pub sign_host: Option<String>,
    /// IAM role to assume on top of the default credential chain.
    #[arg(long)]
    pub role_arn: Option<String>,
    /// Protocol to proxy with: https (default) or http.
    #[arg(long, value_name = "SCHEME")]
    pub upstream_url_scheme: Option<String>,
    /// Sign the body as UNSIGNED-PAYLOAD (any service, as aws-sigv4-proxy does).
    #[arg(long)]
    pub unsigned_payload: bool,
    /// Header to strip from requests (repeatable).
    #[arg(short = 's', long = "strip", value_name = "HEADER")]
    pub strip: Vec<String>,
    /// Header to strip from requests (repeatable); the same as --strip.
    #[arg(long = "strip-header", value_name = "HEADER")]
    pub strip_header: Vec<String>,
    /// Headers to set on every request: `name=value,name=value` (repeatable).
    #[arg(long, value_name = "K=V,...")]
    pub custom_headers: Vec<String>,
    /// Header to copy to `X-Original-<name>` (repeatable).
    #[arg(long, value_name = "HEADER")]
    pub duplicate_headers: Vec<String>,
    /// Address to serve on: `:8080` (loopback), `127.0.0.1:8080`, or `0.0.0.0:8080` (needs
    /// --allowed-clients or --bearer-token-file).
    #[arg(long, value_name = "[ADDR]:PORT")]
    pub port: Option<String>,
    /// Do not check the upstream's TLS certificate.
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// How long an idle upstream connection is kept (default 40s).
    #[arg(
        long = "transport.idle-conn-timeout",
        value_name = "DURATION",
        allow_hyphen_values = true
    )]
    pub idle_conn_timeout: Option<String>,
    /// Address of /healthz, /readyz and /metrics. Without it there is no admin listener (as
    /// aws-sigv4-proxy has none; a file's default is 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin_listen: Option<String>,
    /// CIDRs allowed on the traffic port (comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "CIDR")]
    pub allowed_clients: Vec<String>,
    /// File holding the bearer token clients must send.
    #[arg(long, value_name = "FILE")]
    pub bearer_token_file: Option<String>,
    /// Without --host: hosts served besides AWS endpoints (`name` or `name:port`,
    /// comma-separated or repeated).
    #[arg(long, value_delimiter = ',', value_name = "HOST")]
    pub allowed_upstream_hosts: Vec<String>,
    /// With --host: names clients reach sigproxy by besides loopback (a Service's name, for a
    /// gateway), comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "HOST")]
    pub allowed_hosts: Vec<String>,
    /// Web origins (`http://localhost:8080`) whose pages may call sigproxy (CORS),
    /// comma-separated or repeated.
    #[arg(long, value_delimiter = ',', value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,
    /// Largest request body signed, in bytes (held in memory to be hashed; default 6 MiB, at
    /// most 64 MiB). aws-sigv4-proxy had no limit.
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<u64>,
    /// Body bytes held for signing, all requests together (default 32 MiB, and at least
    /// --max-body-bytes).
    #[arg(long, value_name = "BYTES")]
    pub max_buffered_body_bytes: Option<u64>,
    /// How long the upstream may take to answer (default 60s). aws-sigv4-proxy had no limit.
    #[arg(long, value_name = "DURATION")]
    pub read_timeout: Option<String>,
}

impl Flags {
    /// Whether any flag that builds a configuration is given.
    pub fn any(&self) -> bool {
        let f = self;
        f.name.is_some()
            || f.region.is_some()
            || f.host.is_some()
            || f.sign_host.is_some()
            || f.role_arn.is_some()
            || f.upstream_url_scheme.is_some()
            || f.unsigned_payload
            || !f.strip.is_empty()
            || !f.strip_header.is_empty()
            || !f.custom_headers.is_empty()
            || !f.duplicate_headers.is_empty()
            || f.port.is_some()
            || f.no_verify_ssl
            || f.idle_conn_timeout.is_some()
            || f.admin_listen.is_some()
            || !f.allowed_clients.is_empty()
            || f.bearer_token_file.is_some()
            || !f.allowed_upstream_hosts.is_empty()
            || !f.allowed_hosts.is_empty()
            || !f.allowed_origins.is_empty()
            || f.max_body_bytes.is_some()
            || f.max_buffered_body_bytes.is_some()
            || f.read_timeout.is_some()
    }
}
