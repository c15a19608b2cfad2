//! `custos serve`: the HTTP server on the embedded store by default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use custos_map::{MapOrigin, MapSource, ReloadError};

use anyhow::Context;
use custos_core::rand_core::{OsRng, RngCore};
use custos_core::secret::BearerSecret;
use custos_server::AppState;
use custos_store::Vault;

use super::store_args::StoreArgs;

/// Flags of `custos serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "CUSTOS_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Data map served at /v1/map and /v1/ropa; reloaded on SIGHUP or
    /// POST /v1/map/reload.
    #[arg(long, env = "CUSTOS_MAP")]
    pub(crate) map: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
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

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let map = match &args.map {
            Some(path) => load_map(MapOrigin::File(path.clone()))?,
            None => MapSource::none(),
        };
        let vault = args.store.open(true).await?;
        let admin = admin_token();
        serve(vault, admin, args.listen, map, &args.tls, |_| {}, |s| s).await
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

/// The admin token from `CUSTOS_ADMIN_TOKEN`, or a fresh random one that
/// [`serve`] prints once.
pub(crate) fn admin_token() -> (BearerSecret, bool) {
    match std::env::var("CUSTOS_ADMIN_TOKEN") {
        Ok(t) if !t.trim().is_empty() => (BearerSecret::new(t.trim().to_owned()), false),
        _ => {
            let mut raw = [0u8; 24];
            OsRng.fill_bytes(&mut raw);
            let t = format!("cadm_{}", hex::encode(raw));
            (BearerSecret::new(t), true)
        }
    }
}

/// Binds, prints how to authenticate, runs until Ctrl-C/SIGTERM. `ready`
/// is called with the bound address before serving (the demo prints its
/// tour there); `configure` adjusts the state last (the demo's executor
/// settings and outbox).
pub(crate) async fn serve(
    vault: Vault,
    (admin, generated): (BearerSecret, bool),
    listen: SocketAddr,
    map: MapSource,
    tls: &TlsArgs,
    ready: impl FnOnce(SocketAddr),
    configure: impl FnOnce(AppState) -> AppState,
) -> anyhow::Result<()> {
    // CUSTOS_SMTP_URL + CUSTOS_MAIL_FROM, else CUSTOS_DEV_OUTBOX. The error
    // names the variable, never its value (the URL may carry a password).
    let mailer = custos_dsr::mail::from_settings(
        std::env::var(custos_dsr::mail::SMTP_URL_VAR)
            .ok()
            .as_deref(),
        std::env::var(custos_dsr::mail::MAIL_FROM_VAR)
            .ok()
            .as_deref(),
        std::env::var_os(custos_dsr::mail::DEV_OUTBOX_VAR).map(PathBuf::from),
    )
    .map_err(|e| anyhow::anyhow!("mail settings: {e}"))?;
    let rate_limits = custos_server::rate_limit::RateLimits::from_env()
        .map_err(|e| anyhow::anyhow!("rate limits: {e}"))?;
    let tls = match (&tls.tls_cert, &tls.tls_key) {
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
        .with_scrub_key(std::env::var(custos_scrub::ScrubKey::ENV_VAR).ok())
        .with_mailer(mailer)
        .with_rate_limits(rate_limits)
        .with_executor_config({
            let mut cfg = custos_dsr::ExecutorConfig::new(
                std::env::var("CUSTOS_PUBLIC_URL").unwrap_or_else(|_| format!("{scheme}://{addr}")),
            );
            // The map names its connection settings as variables.
            cfg.env = Arc::new(std::env::vars().collect());
            cfg
        });
    let state = configure(state);
    tracing::info!(mailer = ?state.mailer, "outgoing mail");
    reload_map_on_hangup(state.map.clone());
    // Data-subject requests are carried out in the background by every
    // server sharing the store (steps are leased in the database).
    let executor = state.executor().spawn();
    let app = custos_server::router(state);
    match tls {
        // The peer address keys the public endpoints' rate limits.
        None => axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?,
        Some(config) => {
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                stopper.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
            });
            axum_server::from_tcp_rustls(listener.into_std()?, config)?
                .handle(handle)
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .context("serving HTTPS")?;
        }
    }
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
