//! A rule's `secrets` (variables read from files when a job starts) and `lock` (shared
//! between hooks), checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use toml::Spanned;

use super::validate::{Validator, valid_var_name};

impl Validator<'_> {
    /// `secrets = { NAME = "file" }`: each name a variable name (not `DEPLOYHOOK_*`, not
    /// also in `env`), each file readable now (and warned about when others may read it).
    /// `None` once a problem is reported.
    pub(super) fn rule_secrets(
        &mut self,
        raw: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
        env: Option<&Vec<(String, String)>>,
    ) -> Option<Vec<(String, PathBuf)>> {
        let before = self.errors();
        let mut out = Vec::new();
        for (k, v) in raw.map(Spanned::into_inner).unwrap_or_default() {
            let name = k.get_ref();
            if !valid_var_name(name) {
                self.error(k.span(), format!("secrets: {name:?} is not a valid variable name (letters, digits and _, not starting with a digit)"));
                continue;
            }
            if name.starts_with("DEPLOYHOOK_") {
                self.error(
                    k.span(),
                    format!("secrets: {name} is set by deployhook itself for every job"),
                );
                continue;
            }
            if env.into_iter().flatten().any(|(e, _)| e == name) {
                self.error(
                    k.span(),
                    format!("secrets: {name} is in env as well; set it in one of them"),
                );
                continue;
            }
            if let Some(path) = self.secret_path(v.get_ref(), &v.span()) {
                out.push((name.clone(), path));
            }
        }
        (self.errors() == before).then_some(out)
    }

    /// Where a secret file is (`%d/NAME`: in `$CREDENTIALS_DIRECTORY`), checked readable
    /// now; a file others may read is warned about.
    fn secret_path(&mut self, name: &str, span: &std::ops::Range<usize>) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.secret_file_path(name, span)?;
        match std::fs::File::open(&path).and_then(|f| f.metadata()) {
            Ok(meta) if meta.is_file() => {
                if meta.permissions().mode() & 0o044 != 0 {
                    self.warning(
                        span.clone(),
                        format!(
                            "secret file {} is readable by other users; chmod 600 it",
                            path.display()
                        ),
                    );
                }
                Some(path)
            }
            Ok(_) => {
                self.error(
                    span.clone(),
                    format!("secret file {} is not a file", path.display()),
                );
                None
            }
            Err(e) => {
                self.error(
                    span.clone(),
                    format!("cannot read secret file {}: {e}", path.display()),
                );
                None
            }
        }
    }

    /// `lock = "name"`.
    pub(super) fn lock(&mut self, raw: Option<Spanned<String>>) -> Result<Option<String>, ()> {
        self.field(raw, "lock", |l| {
            if l.is_empty() || l.len() > 128 || l.chars().any(char::is_control) {
                Err("must be a name of 1 to 128 characters, like \"prod-web\"".to_owned())
            } else {
                Ok(l.clone())
            }
        })
    }
}
