//! `custos serve`: the HTTP server on the embedded store by default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use custos_map::{MapOrigin, MapSource, ReloadError};

use anyhow::Context;
use custos_core::secret::BearerSecret;
use custos_server::AppState;
use custos_store::Vault;
use rand_core::{OsRng, RngCore};

use super::secret::Secret;
use super::store_args::StoreArgs;
use axum::http::HeaderName;
use custos_server::rate_limit::{Limit, RateLimits};

/// Flags of `custos serve`: where the stores are, and the server's
/// configuration.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Settings that the data map names are read from the environment when a \
request step needs them: the variables of its connections (e.g. connection: { url_env: \
APP_DATABASE_URL }) and each processor's signing secret, CUSTOS_PROCESSOR_SECRET_<ID>."
)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) server: ServerConfig,
    /// Print the effective configuration (secrets as ***) and exit.
    #[arg(long)]
    pub(crate) show_config: bool,
}

/// The server's one configuration: every setting a flag with its
/// `CUSTOS_*` variable, so `custos serve --help` lists them all. The
/// libraries get values from it, never the environment.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServerConfig {
    /// Address to listen on.
    #[arg(long, env = "CUSTOS_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Data map served at /v1/map and /v1/ropa and used by requests and
    /// consent; reloaded on SIGHUP or POST /v1/map/reload.
    #[arg(long, env = "CUSTOS_MAP")]
    pub(crate) map: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
    /// The system administrator's token; without it a random one is
    /// printed once at start.
    #[arg(long, env = "CUSTOS_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<Secret>,
    /// Base URL processors call back (default: the listen address).
    #[arg(long, env = "CUSTOS_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Key of the keyed scrub modes (pseudonymize, hash) of POST /v1/scrub.
    #[arg(long, env = "CUSTOS_SCRUB_KEY", hide_env_values = true)]
    pub(crate) scrub_key: Option<Secret>,
    #[command(flatten)]
    pub(crate) mail: MailArgs,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) connections: ConnArgs,
}

/// Limits of connections, so that slow clients cannot starve the server.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConnArgs {
    /// Seconds within which a request's head (and a TLS handshake) must arrive.
    #[arg(long, env = "CUSTOS_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) header_timeout: u64,
    /// Seconds within which a request's body must arrive whole (else 408).
    #[arg(long, env = "CUSTOS_BODY_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) body_timeout: u64,
    /// Seconds after which a connection with no request and no traffic is closed.
    #[arg(long, env = "CUSTOS_IDLE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub(crate) idle_timeout: u64,
    /// Concurrent connections per client address (IPv6 by /64); 0: no cap.
    #[arg(long, env = "CUSTOS_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub(crate) max_connections_per_ip: usize,
}

impl Default for ConnArgs {
    fn default() -> Self {
        Self {
            header_timeout: 10,
            body_timeout: 30,
            idle_timeout: 60,
            max_connections_per_ip: 64,
        }
    }
}

impl ConnArgs {
    fn limits(&self) -> custos_server::serve::ConnLimits {
        use std::time::Duration;
        custos_server::serve::ConnLimits {
            header_timeout: Duration::from_secs(self.header_timeout),
            body_timeout: Duration::from_secs(self.body_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            max_conns_per_ip: self.max_connections_per_ip,
            ..Default::default()
        }
    }
}

/// HTTPS: both a certificate chain and its private key (PEM) turn it on.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct TlsArgs {
    /// PEM certificate chain; serve HTTPS (with --tls-key).
    #[arg(long, env = "CUSTOS_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "CUSTOS_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
}

/// Outgoing mail (one-time codes, notices, receipts): SMTP when both the
/// URL and the sender are set, else the development outbox, else none.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct MailArgs {
    /// SMTP server: smtps://user:pass@host:465 (TLS),
    /// smtp://user:pass@host:587?tls=required (STARTTLS),
    /// smtp://host:587?tls=opportunistic, smtp://host:25 (local relay).
    #[arg(long, env = "CUSTOS_SMTP_URL", hide_env_values = true)]
    pub(crate) smtp_url: Option<Secret>,
    /// Sender address of every message (with --smtp-url).
    #[arg(long, env = "CUSTOS_MAIL_FROM")]
    pub(crate) mail_from: Option<String>,
    /// Development outbox: messages written as .eml files here.
    #[arg(long, env = "CUSTOS_DEV_OUTBOX")]
    pub(crate) dev_outbox: Option<PathBuf>,
}

/// Limits of the endpoints that take no API key, per client:
/// `PER_MINUTE[/BURST]`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LimitArgs {
    /// Archive downloads per client, PER_MINUTE[/BURST].
    #[arg(long, env = "CUSTOS_RATE_ARCHIVES", default_value = "30/10", value_parser = parse_limit)]
    pub(crate) rate_archives: Limit,
    /// Processor callbacks per client, PER_MINUTE[/BURST].
    #[arg(long, env = "CUSTOS_RATE_CALLBACKS", default_value = "600/100", value_parser = parse_limit)]
    pub(crate) rate_callbacks: Limit,
    /// Behind a reverse proxy: the header holding the client's address
    /// (its right-most address counts), e.g. X-Forwarded-For.
    #[arg(long, env = "CUSTOS_CLIENT_IP_HEADER", value_parser = parse_header)]
    pub(crate) client_ip_header: Option<HeaderName>,
    /// Verification codes mailed per tenant, PER_MINUTE[/BURST].
    #[arg(long, env = "CUSTOS_RATE_CODE_MAILS", default_value = "30/10", value_parser = parse_limit)]
    pub(crate) rate_code_mails: Limit,
    /// Verification codes one tenant mails to one address, PER_MINUTE[/BURST].
    #[arg(long, env = "CUSTOS_RATE_CODE_MAILS_PER_ADDRESS", default_value = "1/5", value_parser = parse_limit)]
    pub(crate) rate_code_mails_per_address: Limit,
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    Limit::parse(s).ok_or_else(|| "expected PER_MINUTE or PER_MINUTE/BURST".to_owned())
}

fn parse_header(s: &str) -> Result<HeaderName, String> {
    HeaderName::try_from(s.trim()).map_err(|_| "not a header name".to_owned())
}

impl ServerConfig {
    /// The defaults of every setting but the address: what `custos demo`
    /// serves with.
    pub(crate) fn with_defaults(listen: SocketAddr) -> Self {
        Self {
            listen,
            map: None,
            tls: TlsArgs::default(),
            admin_token: None,
            public_url: None,
            scrub_key: None,
            mail: MailArgs::default(),
            limits: LimitArgs {
                rate_archives: Limit::new(30, 10),
                rate_callbacks: Limit::new(600, 100),
                client_ip_header: None,
                rate_code_mails: Limit::new(30, 10),
                rate_code_mails_per_address: Limit::new(1, 5),
            },
            connections: ConnArgs::default(),
        }
    }

    /// The mailer these settings choose. The error names the setting,
    /// never its value (the URL may carry a password).
    fn mailer(&self) -> anyhow::Result<Arc<dyn custos_dsr::Mailer>> {
        custos_dsr::mail::from_settings(
            self.mail.smtp_url.as_ref().map(Secret::expose),
            self.mail.mail_from.as_deref(),
            self.mail.dev_outbox.clone(),
        )
        .map_err(|e| anyhow::anyhow!("mail settings: {e}"))
    }

    fn rate_limits(&self) -> RateLimits {
        RateLimits {
            archives: self.limits.rate_archives,
            callbacks: self.limits.rate_callbacks,
            client_ip_header: self.limits.client_ip_header.clone(),
            code_mails_per_tenant: self.limits.rate_code_mails,
            code_mails_per_destination: self.limits.rate_code_mails_per_address,
        }
    }

    /// The admin token, or a fresh random one that [`serve`] prints once.
    /// A chosen token must be strong (see [`check_admin_token`]): it opens
    /// every tenant's keys.
    pub(crate) fn admin_token(&self) -> anyhow::Result<(BearerSecret, bool)> {
        match &self.admin_token {
            Some(t) if !t.expose().trim().is_empty() => {
                let t = t.expose().trim();
                check_admin_token(t)
                    .map_err(|why| anyhow::anyhow!("CUSTOS_ADMIN_TOKEN (--admin-token) {why}"))?;
                Ok((BearerSecret::new(t.to_owned()), false))
            }
            _ => {
                let mut raw = [0u8; 24];
                OsRng.fill_bytes(&mut raw);
                let t = format!("cadm_{}", hex::encode(raw));
                Ok((BearerSecret::new(t), true))
            }
        }
    }
}

/// Shortest admin token accepted.
const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Refuses a weak admin token: shorter than 32 characters, or with fewer
/// than 10 distinct characters (`aaaa…`, `12121212…`), or with whitespace
/// or control characters (a copy-and-paste accident). The error says which
/// rule, never the token.
pub(crate) fn check_admin_token(t: &str) -> Result<(), &'static str> {
    if t.chars().count() < MIN_ADMIN_TOKEN_CHARS {
        return Err("is too short: use at least 32 characters, e.g. `openssl rand -hex 24`");
    }
    if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains spaces or control characters");
    }
    let distinct: std::collections::BTreeSet<char> = t.chars().collect();
    if distinct.len() < 10 {
        return Err("is too weak (too few distinct characters): use a random token, e.g. `openssl rand -hex 24`");
    }
    Ok(())
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.show_config {
        println!("{:#?}", args);
        return Ok(());
    }
    let admin = args.server.admin_token()?;
    runtime()?.block_on(async move {
        let map = match &args.server.map {
            Some(path) => load_map(MapOrigin::File(path.clone()))?,
            None => MapSource::none(),
        };
        let vault = args.store.open(true).await?;
        serve(vault, &args.server, admin, map, |_| {}, |s| s).await
    })
}

/// Loads the map at start; errors stop the server with every diagnostic.
pub(crate) fn load_map(origin: MapOrigin) -> anyhow::Result<MapSource> {
    match MapSource::load(origin) {
        Ok((map, warnings)) => {
            if !warnings.is_empty() {
                tracing::warn!(warnings = warnings.len(), "data map loaded with warnings");
            }
            Ok(map)
        }
        Err(ReloadError::Load(custos_map::LoadError::Invalid { path, diagnostics })) => {
            for d in &diagnostics {
                eprintln!("{d}");
            }
            anyhow::bail!("the data map {path} has errors (custos map check {path})")
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Binds, prints how to authenticate, runs until Ctrl-C/SIGTERM. `ready`
/// is called with the bound address before serving (the demo prints its
/// tour there); `configure` adjusts the state last (the demo's executor
/// settings and outbox).
pub(crate) async fn serve(
    vault: Vault,
    cfg: &ServerConfig,
    (admin, generated): (BearerSecret, bool),
    map: MapSource,
    ready: impl FnOnce(SocketAddr),
    configure: impl FnOnce(AppState) -> AppState,
) -> anyhow::Result<()> {
    let mailer = cfg.mailer()?;
    let listen = cfg.listen;
    let tls = match (&cfg.tls.tls_cert, &cfg.tls.tls_key) {
        (Some(cert), Some(key)) => {
            // ring: a vetted provider that builds without a C toolchain
            // beyond cc. Installing twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "loading the TLS certificate {} and key {}",
                            cert.display(),
                            key.display()
                        )
                    })?,
            )
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if generated {
        println!(
            "admin token (shown once; set CUSTOS_ADMIN_TOKEN to choose one): {}",
            admin.expose()
        );
    } else {
        println!("admin token: from CUSTOS_ADMIN_TOKEN");
    }
    println!("authenticate with: Authorization: Bearer <admin token or API key>");
    println!(
        "custos listening on {scheme}://{addr} ({:?} store)",
        vault.engine()
    );
    ready(addr);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let state = AppState::new(vault.clone(), admin)
        .with_map(map)
        .with_scrub_key(cfg.scrub_key.as_ref().map(|k| k.expose().to_owned()))
        .with_mailer(mailer)
        .with_rate_limits(cfg.rate_limits())
        .with_executor_config({
            let public_url = cfg
                .public_url
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{addr}"));
            let mut exec = custos_dsr::ExecutorConfig::new(public_url);
            // The settings the map names (connection URLs, processors'
            // secrets) cannot be flags: they are looked up in the
            // environment when a step needs them.
            exec.env = custos_dsr::NamedSettings::from_fn(|name| std::env::var(name).ok());
            exec
        });
    let state = configure(state);
    tracing::info!(mailer = ?state.mailer, "outgoing mail");
    reload_map_on_hangup(state.map.clone());
    // Data-subject requests are carried out in the background by every
    // server sharing the store (steps are leased in the database).
    let executor = state.executor().spawn();
    let app = custos_server::router(state);
    // One accept loop for HTTP and HTTPS, with the header, body and idle
    // timeouts and the per-address connection cap (custos_server::serve).
    custos_server::serve::serve(
        listener,
        app,
        cfg.connections.limits(),
        tls.map(|config| config.get_inner()),
        shutdown_signal(),
    )
    .await
    .context(if scheme == "https" {
        "serving HTTPS"
    } else {
        "serving HTTP"
    })?;
    executor.stop().await;
    vault.close().await;
    Ok(())
}

/// SIGHUP re-reads the map file; a map with errors leaves the old one in
/// service.
fn reload_map_on_hangup(map: Arc<MapSource>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            match map.reload() {
                Ok(w) => tracing::info!(warnings = w.len(), "data map reloaded"),
                Err(e) => tracing::warn!(error = %e, "data map reload failed; previous map kept"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = map;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::check_admin_token;

    #[test]
    fn weak_admin_tokens_are_refused() {
        assert!(check_admin_token("admin-hunter2").is_err());
        assert!(check_admin_token(&"a".repeat(64)).is_err());
        assert!(check_admin_token(&"12".repeat(20)).is_err());
        assert!(check_admin_token("cadm_0123456789abcdef 0123456789abcdef").is_err());
        assert!(check_admin_token("cadm_5f0c2b9e8a1d4c7f9e3b6a2d8c1f4e7b").is_ok());
    }
}
