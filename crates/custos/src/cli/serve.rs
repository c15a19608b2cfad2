//! `custos serve`: the HTTP server on the embedded store by default.

use std::net::SocketAddr;
use std::sync::Arc;

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
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let vault = args.store.open(true).await?;
        let admin = admin_token();
        serve(vault, admin, args.listen, |_| {}).await
    })
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
/// tour there).
pub(crate) async fn serve(
    vault: Vault,
    (admin, generated): (BearerSecret, bool),
    listen: SocketAddr,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    println!(
        "custos listening on http://{addr} ({:?} store)",
        vault.engine()
    );
    if generated {
        println!(
            "admin token (shown once; set CUSTOS_ADMIN_TOKEN to choose one): {}",
            admin.expose()
        );
    } else {
        println!("admin token: from CUSTOS_ADMIN_TOKEN");
    }
    println!("authenticate with: Authorization: Bearer <admin token or API key>");
    ready(addr);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let app = custos_server::router(AppState {
        vault: vault.clone(),
        admin_token: Arc::new(admin),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    vault.close().await;
    Ok(())
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
