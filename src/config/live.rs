//! The config the daemon runs on now. A reload swaps it whole: requests and jobs that
//! already hold the old one finish with it, new ones get the new one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use super::{Config, Diagnostic, Invalid, Severity, load};

pub struct LiveConfig {
    path: PathBuf,
    current: RwLock<Arc<Config>>,
}

impl LiveConfig {
    pub fn new(config: Config) -> Arc<LiveConfig> {
        Arc::new(LiveConfig {
            path: config.path.clone(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self) -> Arc<Config> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Re-reads the file. A valid one replaces the current config, except `listen`,
    /// `state_dir` and `[store]` (the open database, this daemon's node name, the lease),
    /// which need a restart and keep their running values (with a warning);
    /// an invalid one is refused and the current config keeps serving. Returns the
    /// warnings of the new config.
    pub fn reload(&self) -> Result<Vec<Diagnostic>, Invalid> {
        let mut loaded = load(&self.path)?;
        let old = self.get();
        let new = &mut loaded.config;
        let file = self.path.display().to_string();
        if new.server.listen != old.server.listen {
            loaded.warnings.push(restart_needed(&file, "server.listen"));
            new.server.listen = old.server.listen;
        }
        if new.server.state_dir != old.server.state_dir {
            loaded
                .warnings
                .push(restart_needed(&file, "server.state_dir"));
            new.server.state_dir.clone_from(&old.server.state_dir);
        }
        if new.store != old.store {
            loaded.warnings.push(restart_needed(&file, "[store]"));
            new.store.clone_from(&old.store);
        }
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded.config);
        Ok(loaded.warnings)
    }
}

fn restart_needed(file: &str, key: &str) -> Diagnostic {
    Diagnostic {
        severity: Severity::Warning,
        file: file.to_owned(),
        position: None,
        message: format!(
            "{key} changed: restart deployhook to apply it; the running value is kept"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_keeps_the_running_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooks.toml");
        std::fs::write(&path, "[store]\nnode_name = \"deploy-a\"\n").unwrap();
        let live = LiveConfig::new(load(&path).unwrap().config);
        std::fs::write(&path, "[store]\nnode_name = \"deploy-b\"\n").unwrap();
        let warnings = live.reload().unwrap();
        assert_eq!(
            warnings
                .iter()
                .map(|w| w.message.as_str())
                .collect::<Vec<_>>(),
            ["[store] changed: restart deployhook to apply it; the running value is kept"]
        );
        assert_eq!(live.get().store.node_name, "deploy-a");
    }
}
