//! Waking the request executor when there is work, instead of polling.
//!
//! A change that gives the executor something to do (a request verified, a
//! manual or processor step confirmed) calls [`WorkSignal::wake`] after it
//! committed. In the process that is a [`Notify`] permit, which a waiter
//! that is not waiting yet still receives (no lost wake-ups). On PostgreSQL
//! it is also a `NOTIFY` on [`CHANNEL`], which every server's listener turns
//! into the same permit, so the server that has a free executor starts at
//! once whichever server took the call.
//!
//! The listener is started by the first [`WorkSignal::wait`] (only servers
//! run executors) and stops with the vault. A lost notification (listener
//! reconnecting) costs at most the executor's fallback pause: after a
//! reconnect the listener wakes the executor once to catch up.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::db::Engine;

/// The PostgreSQL channel custos' servers listen on for work.
pub(crate) const CHANNEL: &str = "custos_work";

/// Pause before a failed listener connects again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The executor's wake-up, one per vault.
pub(crate) struct WorkSignal {
    local: Arc<Notify>,
    /// The data store's URL on PostgreSQL (for the listener's own
    /// connection); never logged: it may hold a password.
    postgres_url: Option<String>,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for WorkSignal {
    fn drop(&mut self) {
        self.stop();
    }
}

impl WorkSignal {
    pub(crate) fn new(engine: Engine, database_url: &str) -> Self {
        Self {
            local: Arc::new(Notify::new()),
            postgres_url: (engine == Engine::Postgres).then(|| database_url.to_owned()),
            listener: Mutex::new(None),
        }
    }

    /// Tells this process's executor, and on PostgreSQL every server's,
    /// that there is work. Best effort: a failed `NOTIFY` is logged and
    /// the other servers find the work on their fallback pause.
    pub(crate) async fn wake(&self, pool: &sqlx::AnyPool) {
        self.local.notify_one();
        if self.postgres_url.is_some() {
            let r = sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANNEL)
                .execute(pool)
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %crate::db_kind(&e), "could not notify other servers of new work");
            }
        }
    }

    /// Waits until woken or until `fallback` has passed; returns whether it
    /// was woken.
    pub(crate) async fn wait(&self, fallback: Duration) -> bool {
        self.listen();
        tokio::time::timeout(fallback, self.local.notified())
            .await
            .is_ok()
    }

    /// Ends the listener, if any (the vault is closing).
    pub(crate) fn stop(&self) {
        if let Some(task) = self.lock().take() {
            task.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<tokio::task::JoinHandle<()>>> {
        self.listener
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the PostgreSQL listener once (needs a Tokio runtime).
    fn listen(&self) {
        let Some(url) = &self.postgres_url else {
            return;
        };
        let mut listener = self.lock();
        if listener.is_none() {
            let url = url.clone();
            let local = self.local.clone();
            *listener = Some(tokio::spawn(async move {
                loop {
                    if let Err(e) = listen_until_error(&url, &local).await {
                        tracing::warn!(error = %crate::db_kind(&e), "work listener lost its connection; reconnecting");
                    }
                    // Whatever was notified meanwhile is looked for now.
                    local.notify_one();
                    tokio::time::sleep(RECONNECT_AFTER).await;
                }
            }));
        }
    }
}

async fn listen_until_error(url: &str, local: &Notify) -> Result<(), sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    loop {
        listener.recv().await?;
        local.notify_one();
    }
}

impl std::fmt::Debug for WorkSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkSignal")
            .field("postgres", &self.postgres_url.is_some())
            .finish_non_exhaustive()
    }
}
