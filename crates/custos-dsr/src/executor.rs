//! The executor: what it works with, and its rounds of work.
//!
//! Every server runs one in the background ([`Executor::spawn`]). A round
//! plans verified requests, claims ready steps (leases in the database, so
//! any number of servers share the work and a crashed server's steps are
//! taken over when their lease runs out), runs them, and moves requests on.

use std::sync::Arc;
use std::time::Duration;

use custos_map::MapSource;
use custos_store::{StoreError, Vault};

use crate::config::ExecutorConfig;
use crate::mail::Mailer;
use crate::plan::plan;
use crate::progress::progress;
use crate::steps::run_step;

/// What carrying out requests needs: the vault, the data map in service,
/// outgoing mail and the executor's settings. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Executor {
    pub(crate) vault: Vault,
    pub(crate) map: Arc<MapSource>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) cfg: Arc<ExecutorConfig>,
}

/// An executor running in the background; [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    stop: Arc<tokio::sync::Notify>,
    task: tokio::task::JoinHandle<()>,
}

/// How often expired archives are swept.
const ARCHIVE_SWEEP_EVERY: Duration = Duration::from_secs(60);

impl Executor {
    /// An executor over `vault` with the map of `map` (re-read on every
    /// round, so a reload takes effect at once).
    pub fn new(
        vault: Vault,
        map: Arc<MapSource>,
        mailer: Arc<dyn Mailer>,
        cfg: Arc<ExecutorConfig>,
    ) -> Self {
        Self {
            vault,
            map,
            mailer,
            cfg,
        }
    }

    /// Outgoing mail (verification codes are sent by the HTTP surface
    /// through the same transport).
    pub fn mailer(&self) -> &dyn Mailer {
        &*self.mailer
    }

    /// The executor's settings.
    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Runs rounds in the background until stopped; after a round without
    /// work it waits to be woken by new work, at most
    /// [`ExecutorConfig::idle`].
    pub fn spawn(&self) -> Running {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        let ex = self.clone();
        let task = tokio::spawn(async move {
            let mut last_sweep = std::time::Instant::now();
            loop {
                let worked = match ex.round().await {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::warn!(error = %e, "request executor round failed");
                        false
                    }
                };
                if last_sweep.elapsed() > ARCHIVE_SWEEP_EVERY {
                    last_sweep = std::time::Instant::now();
                    if let Err(e) = ex.vault.execution().sweep_archives().await {
                        tracing::warn!(error = %e, "archive sweep failed");
                    }
                }
                if !worked {
                    let execution = ex.vault.execution();
                    tokio::select! {
                        _ = stopped.notified() => return,
                        _ = execution.wait_for_work(ex.cfg.idle) => {}
                    }
                }
            }
        });
        Running { stop, task }
    }

    /// One round: plan, run ready steps, move requests on. Returns whether
    /// anything was done.
    pub async fn round(&self) -> Result<bool, StoreError> {
        let planned = self.plan_verified().await?;
        let ran = self.run_ready_steps(50).await?;
        self.move_requests_on().await?;
        Ok(planned + ran > 0)
    }

    /// Plans every verified request (up to 20 a round); returns how many.
    pub async fn plan_verified(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for req in self.vault.execution().to_plan(20).await? {
            match plan(self, &req).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(request = %req.id, error = %e, "could not plan request"),
            }
        }
        Ok(n)
    }

    /// Claims and runs up to `max` ready steps, [`ExecutorConfig::parallel`]
    /// at a time; returns how many ran.
    pub async fn run_ready_steps(&self, max: usize) -> Result<usize, StoreError> {
        let lease = i64::try_from(self.cfg.lease.as_micros()).unwrap_or(i64::MAX);
        let mut n = 0;
        while n < max {
            let mut claimed = Vec::new();
            while claimed.len() < self.cfg.parallel.max(1) && n + claimed.len() < max {
                match self
                    .vault
                    .execution()
                    .claim_step(&self.cfg.owner, lease)
                    .await?
                {
                    Some(c) => claimed.push(c),
                    None => break,
                }
            }
            if claimed.is_empty() {
                break;
            }
            n += claimed.len();
            let ends = futures_util::future::join_all(claimed.iter().map(|c| async move {
                let end = run_step(self, c).await;
                self.vault.execution().end_step(c, end).await
            }))
            .await;
            for e in ends {
                match e {
                    // Our lease was taken over meanwhile (or a processor
                    // confirmed first): the other answer stands.
                    Ok(()) | Err(StoreError::Request(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Moves open requests on from their steps (and builds access archives).
    pub async fn move_requests_on(&self) -> Result<(), StoreError> {
        for req in self.vault.execution().in_progress(200).await? {
            if let Err(e) = progress(self, &req).await {
                tracing::warn!(request = %req.id, error = %e, "could not move request on");
            }
        }
        Ok(())
    }
}

impl Running {
    /// Stops after the step in hand (its lease lapses if it was cut short).
    pub async fn stop(self) {
        self.stop.notify_one();
        self.task.abort();
        let _ = self.task.await;
    }
}
