//! The API's bearer token when hooks.toml names none (`[server] api_token_file`): made at
//! the daemon's first start as `state_dir/api-token` (mode 0600, 32 random bytes as hex),
//! and found by the CLI on its own where it may read it. The API never answers without a
//! token: being on loopback is not enough (a reverse proxy, a web page, a deploy command
//! are all on loopback too).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::secret::Secret;

/// The token file's name in `state_dir`.
pub const FILE: &str = "api-token";

/// The environment variable naming a token file for the CLI.
pub const ENV: &str = "DEPLOYHOOK_TOKEN_FILE";

/// Reads `state_dir/api-token`, creating it first if it is missing.
pub fn load_or_create(state_dir: &Path) -> std::io::Result<Secret> {
    let path = state_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(Secret::new(t.trim().as_bytes().to_vec())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let token = crate::verify::to_hex(&random);
    // Written whole under a temporary name, then renamed: a reader never sees half.
    let tmp = state_dir.join(format!(".{FILE}.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(Secret::new(token.into_bytes()))
}

/// The configs the CLI looks in when it is given none.
pub const DEFAULT_CONFIGS: [&str; 2] = ["hooks.toml", crate::cli::DEFAULT_CONFIG];

/// The token file the CLI uses: `--token-file`, else `$DEPLOYHOOK_TOKEN_FILE`, else the one
/// the config (`--config`, else `./hooks.toml`, else `/etc/deployhook/hooks.toml`) names or
/// its `state_dir`'s `api-token`. `None` when there is no config to ask.
pub fn for_cli(token_file: Option<&Path>, config: Option<&Path>) -> Option<PathBuf> {
    if let Some(t) = token_file {
        return Some(t.to_path_buf());
    }
    if let Some(t) = std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(t));
    }
    let config = match config {
        Some(c) => c.to_path_buf(),
        None => DEFAULT_CONFIGS
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?,
    };
    named_by(&config)
}

/// The token file a config means: its `api_token_file`, else `state_dir/api-token`, both
/// relative to the config's folder. Only those two keys are read (the rest of the file,
/// its secrets included, is not the CLI's business).
fn named_by(config: &Path) -> Option<PathBuf> {
    #[derive(serde::Deserialize)]
    struct File {
        server: Option<Server>,
    }
    #[derive(serde::Deserialize)]
    struct Server {
        api_token_file: Option<String>,
        state_dir: Option<String>,
    }
    let text = std::fs::read_to_string(config).ok()?;
    let file: File = toml::from_str(&text).ok()?;
    let base = config.parent().unwrap_or(Path::new("."));
    let server = file.server;
    let named = server.as_ref().and_then(|s| s.api_token_file.clone());
    Some(named.map_or_else(
        || {
            let state = server
                .and_then(|s| s.state_dir)
                .unwrap_or_else(|| "state".to_owned());
            base.join(state).join(FILE)
        },
        |t| base.join(t),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn made_once_private_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(first.expose().len(), 64);
        let path = dir.path().join(FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_create(dir.path()).unwrap();
        assert_eq!(again.expose(), first.expose());
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_or_create(other.path()).unwrap().expose(),
            first.expose()
        );
    }

    #[test]
    fn the_cli_finds_the_token_its_config_means() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("hooks.toml");
        std::fs::write(
            &config,
            "[server]\nstate_dir = \"var\"\n[[hook]]\nid = \"x\"\n",
        )
        .unwrap();
        assert_eq!(named_by(&config), Some(dir.path().join("var/api-token")));
        std::fs::write(&config, "[server]\napi_token_file = \"tok\"\n").unwrap();
        assert_eq!(named_by(&config), Some(dir.path().join("tok")));
        std::fs::write(&config, "").unwrap();
        assert_eq!(named_by(&config), Some(dir.path().join("state/api-token")));
        let explicit = Path::new("/x/t");
        assert_eq!(
            for_cli(Some(explicit), Some(&config)),
            Some(explicit.into())
        );
    }
}
