//! Hot reload: load a new config, plan it against the live one, and swap atomically only when
//! it is valid and safe. A refused config leaves the live one in place and is logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::ConfigErrors;
use crate::plan::{Plan, plan};
use crate::set::ConfigSet;

/// Why a reload was refused. The live config is unchanged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReloadError {
    #[error("new config is invalid:\n{0}")]
    Invalid(ConfigErrors),
    #[error("new config is unsafe to apply:\n{0}")]
    Unsafe(Plan),
    /// The gate of the running process (see [`ConfigHandle::set_gate`]) refused it.
    #[error("new config cannot go live here: {0}")]
    Refused(String),
}

/// What a valid and safe new config must pass before it goes live in this process: what the
/// process needs beyond the config itself (e.g. a data key for every tenant). It may prepare
/// that (create the keys) or refuse the config with the reason and the remedy.
pub type ReloadGate = Box<dyn Fn(&ConfigSet) -> Result<(), String> + Send + Sync>;

/// The live config, shared by every request. Readers take a cheap `Arc` snapshot and keep
/// using it for the whole request, even if a reload swaps the config meanwhile.
pub struct ConfigHandle {
    current: RwLock<Arc<ConfigSet>>,
    /// Serialises reloads so two of them never plan against the same old config.
    reloading: Mutex<()>,
    gate: RwLock<Option<ReloadGate>>,
    /// Every config that went live, for the parts of a process that act on a change
    /// (the projector's topic subscriptions).
    changes: tokio::sync::watch::Sender<Arc<ConfigSet>>,
}

impl std::fmt::Debug for ConfigHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ConfigHandle")
            .field("current", &self.current)
            .field("gate", &self.read_gate().is_some())
            .finish_non_exhaustive()
    }
}

impl ConfigHandle {
    pub fn new(config: ConfigSet) -> Self {
        let config = Arc::new(config);
        ConfigHandle {
            current: RwLock::new(Arc::clone(&config)),
            reloading: Mutex::new(()),
            gate: RwLock::new(None),
            changes: tokio::sync::watch::Sender::new(config),
        }
    }

    /// Every later reload passes `gate` after validation and planning, before it goes live.
    pub fn set_gate(&self, gate: ReloadGate) {
        *self
            .gate
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(gate);
    }

    fn read_gate(&self) -> std::sync::RwLockReadGuard<'_, Option<ReloadGate>> {
        self.gate
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The configs that go live from now on (the current one is marked seen).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<ConfigSet>> {
        self.changes.subscribe()
    }

    /// The live config. The lock is held only to clone the `Arc`.
    pub fn current(&self) -> Arc<ConfigSet> {
        // a poisoned lock still holds a whole Arc: the swap is a single assignment
        let guard = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Arc::clone(&guard)
    }

    /// Load `dir`, plan it against the live config and swap when it is valid and safe.
    /// Returns the applied plan; on refusal the live config stays and the reason is logged at
    /// warn level.
    pub fn reload_from(&self, dir: &Path) -> Result<Plan, ReloadError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let new = match ConfigSet::load_dir(dir) {
            Ok(new) => new,
            Err(errors) => {
                tracing::warn!(
                    dir = %dir.display(),
                    error_count = errors.len(),
                    errors = %errors,
                    "tenant config reload refused: invalid config, the live config stays"
                );
                return Err(ReloadError::Invalid(errors));
            }
        };
        let live = self.current();
        let plan = plan(&live, &new);
        if !plan.is_safe() {
            tracing::warn!(
                dir = %dir.display(),
                refusal_count = plan.refusals.len(),
                plan = %plan,
                "tenant config reload refused: unsafe changes, the live config stays"
            );
            return Err(ReloadError::Unsafe(plan));
        }
        if let Some(gate) = self.read_gate().as_ref()
            && let Err(reason) = gate(&new)
        {
            tracing::error!(
                dir = %dir.display(),
                %reason,
                "tenant config reload refused: the new config cannot go live in this process, the live config stays"
            );
            return Err(ReloadError::Refused(reason));
        }
        let new = Arc::new(new);
        {
            let mut guard = self
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *guard = Arc::clone(&new);
        }
        self.changes.send_replace(new);
        tracing::info!(
            dir = %dir.display(),
            change_count = plan.changes.len(),
            warning_count = plan.warnings().count(),
            "tenant config reloaded"
        );
        Ok(plan)
    }

    /// Reload from `dir` on every SIGHUP, on the current tokio runtime. The signal handler is
    /// installed before this returns, so a SIGHUP sent afterwards never kills the process.
    /// Reloading reads files, so it runs on the blocking pool.
    #[cfg(unix)]
    pub fn spawn_sighup_reloader(
        self: Arc<Self>,
        dir: PathBuf,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!(dir = %dir.display(), "SIGHUP: reloading tenant config");
                let handle = Arc::clone(&self);
                let dir = dir.clone();
                // the outcome is logged inside reload_from
                let _ = tokio::task::spawn_blocking(move || handle.reload_from(&dir)).await;
            }
        }))
    }
}
