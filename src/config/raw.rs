//! hooks.toml exactly as written: the serde shapes, with spans kept for messages. Every
//! field is optional here so that `validate` can report all missing keys at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, SeqAccess, Visitor};
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: Option<Spanned<RawServer>>,
    #[serde(default)]
    pub hook: Vec<Spanned<RawHook>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<String>>,
    pub max_body: Option<Spanned<String>>,
    pub max_concurrent_jobs: Option<Spanned<i64>>,
    pub api_token_file: Option<Spanned<String>>,
    pub kill_grace: Option<Spanned<String>>,
    pub max_log_size: Option<Spanned<String>>,
    pub keep_jobs: Option<Spanned<i64>>,
    pub keep_for: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHook {
    pub id: Option<Spanned<String>>,
    pub forge: Option<Spanned<String>>,
    pub secret_file: Option<Spanned<StringList>>,
    pub secret_env: Option<Spanned<StringList>>,
    pub secret: Option<Spanned<StringList>>,
    pub legacy_sha1: Option<Spanned<bool>>,
    pub repository: Option<Spanned<String>>,
    pub clone_url: Option<Spanned<String>>,
    pub ssh_key_file: Option<Spanned<String>>,
    pub known_hosts_file: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub token_user: Option<Spanned<String>>,
    pub shallow: Option<Spanned<bool>>,
    pub submodules: Option<Spanned<bool>>,
    #[serde(default)]
    pub rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub branches: Option<Spanned<Vec<Spanned<String>>>>,
    pub tags: Option<Spanned<Vec<Spanned<String>>>>,
    pub paths: Option<Spanned<Vec<Spanned<String>>>>,
    pub commands: Option<Spanned<Vec<Spanned<RawCommand>>>>,
    pub timeout: Option<Spanned<String>>,
    pub queue: Option<Spanned<String>>,
    pub retry_interrupted: Option<Spanned<bool>>,
    pub env: Option<Spanned<BTreeMap<Spanned<String>, Spanned<String>>>>,
    pub run_as: Option<Spanned<String>>,
    pub limits: Option<Spanned<RawLimits>>,
    pub sandbox: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub cpu: Option<Spanned<String>>,
    pub memory: Option<Spanned<String>>,
    pub nofile: Option<Spanned<i64>>,
    pub nproc: Option<Spanned<i64>>,
}

/// One value or several: `secret_file = "a"` or `secret_file = ["new", "old"]` while a
/// secret is being rotated.
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<StringList, E> {
                Ok(StringList(vec![s.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(StringList(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// A command as written: an argv list, or a string for `/bin/sh -c`.
pub enum RawCommand {
    Argv(Vec<String>),
    Shell(String),
}

impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a command: an argv list like ["make", "deploy"] or a shell string"#)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Shell(s.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawCommand, A::Error> {
                let mut v = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    v.push(s);
                }
                Ok(RawCommand::Argv(v))
            }
        }
        d.deserialize_any(V)
    }
}
