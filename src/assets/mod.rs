//! Generated files for packaging: the man pages and shell completions (from the CLI
//! definition), the hooks.toml JSON Schema (from the config types) and hooks.toml(5) (from
//! the schema). Packages run `deployhook generate --out DIR` at build time, so none of
//! these is written by hand.

mod config_page;

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Value, json};

use crate::cli::Cli;
use crate::config::raw::{RawCommand, RawConfig, StringList};

/// The schema's file name, in `DIR` and in the package (`/usr/share/deployhook/`).
pub const SCHEMA_FILE: &str = "hooks.schema.json";

const BIN: &str = "deployhook";

/// `deployhook generate --out DIR`: writes every file and prints each one's path.
pub fn main(out: &Path) -> ExitCode {
    match generate(out) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("deployhook: generate into {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// Writes the man pages (the commands' and hooks.toml(5)), the bash, zsh and fish completions and the schema into `out`
/// (created if missing); returns their paths.
pub fn generate(out: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(out)?;
    let mut written = Vec::new();

    // `build` names the subcommands `deployhook-serve` etc., which become their pages'
    // names; the help subcommand gets no page.
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    man_pages(&cmd, out, &mut written)?;

    let mut cmd = for_completion();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        written.push(clap_complete::generate_to(shell, &mut cmd, BIN, out)?);
    }

    let path = out.join(SCHEMA_FILE);
    fs::write(&path, schema_json())?;
    written.push(path);

    let path = out.join(config_page::FILE);
    let schema = serde_json::to_value(schema()).expect("a schema is plain JSON");
    fs::write(&path, config_page::page(&schema))?;
    written.push(path);
    Ok(written)
}

/// One page for the command and one for each subcommand that is not hidden.
fn man_pages(cmd: &clap::Command, out: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    written.push(clap_mangen::Man::new(cmd.clone()).generate_to(out)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        man_pages(sub, out, written)?;
    }
    Ok(())
}

/// The command line as completions offer it. clap_complete also offers hidden subcommands,
/// and `generate` and `sandbox-exec` are not for people to type, so they are left out.
fn for_completion() -> clap::Command {
    let cli = Cli::command();
    let mut cmd = clap::Command::new(BIN)
        .version(env!("CARGO_PKG_VERSION"))
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cli.get_about() {
        cmd = cmd.about(about.clone());
    }
    cmd.args(cli.get_arguments().cloned())
}

/// The JSON Schema of hooks.toml, as written to `hooks.schema.json` (pretty, with a final
/// newline, and the same bytes on every run so the shipped copy can be compared).
pub fn schema_json() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).expect("a schema is plain JSON");
    text.push('\n');
    text
}

/// The JSON Schema of hooks.toml, read off the serde types in `config::raw`.
///
/// Draft 7: the draft TOML editors' schema support (Taplo, behind Even Better TOML) has
/// handled longest. The schema describes the shape of the file, with the few value checks that are
/// cheap to state (forge names, queue modes, positive counts); `deployhook check` remains
/// the full check (durations, sizes, globs, which keys go together, files that must exist).
pub fn schema() -> Schema {
    let mut settings = SchemaSettings::draft07();
    // First, so that draft 7's own transforms (a `$ref` may have no siblings) see the result.
    settings
        .transforms
        .insert(0, Box::new(RecursiveTransform(for_toml_editors)));
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<RawConfig>();
    schema.insert("title".to_owned(), "deployhook hooks.toml".into());
    schema.insert(
        "description".to_owned(),
        "deployhook's configuration: the [server] table and one [[hook]] per webhook \
         endpoint. Unknown keys are errors; relative paths resolve against the file's folder. \
         Check a file with `deployhook check --config FILE`."
            .into(),
    );
    schema
}

/// Fits each schemars schema to TOML and to an editor's hover text.
fn for_toml_editors(schema: &mut Schema) {
    no_null(schema);
    // A doc comment's line breaks are only wrapping; editors would show them.
    if let Some(Value::String(text)) = schema.get_mut("description") {
        *text = text.replace('\n', " ");
    }
}

/// TOML has no null: an `Option` field is left out by leaving out the key, so the schema
/// says the value's type alone (schemars would also allow `null`, as JSON can carry one).
fn no_null(schema: &mut Schema) {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [only] = types.as_slice() {
            let only = only.clone();
            schema.insert("type".to_owned(), only);
        }
    }
    if let Some(Value::Array(any_of)) = schema.get_mut("anyOf") {
        any_of.retain(|s| *s != json!({ "type": "null" }));
        if any_of.len() == 1
            && let Some(Value::Object(only)) = any_of.pop()
        {
            schema.remove("anyOf");
            for (key, value) in only {
                schema.insert(key, value);
            }
        }
    }
}

/// serde accepts a string (a list of one) or an array of strings.
impl JsonSchema for StringList {
    fn schema_name() -> Cow<'static, str> {
        "StringList".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "One value, or a list of them (while a secret is rotated).",
            "anyOf": [
                { "type": "string" },
                { "type": "array", "items": { "type": "string" } }
            ]
        })
    }
}

/// serde accepts an array of strings (argv) or a string (for `/bin/sh -c`).
impl JsonSchema for RawCommand {
    fn schema_name() -> Cow<'static, str> {
        "Command".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An argv list like [\"make\", \"deploy\"], executed directly, or a string run by /bin/sh -c.",
            "anyOf": [
                { "type": "array", "items": { "type": "string" } },
                { "type": "string" }
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueMode;
    use crate::event::Forge;

    fn property<'a>(schema: &'a Value, def: &str, key: &str) -> &'a Value {
        &schema["definitions"][def]["properties"][key]
    }

    #[test]
    fn forge_names_are_the_ones_config_accepts() {
        let schema = schema().to_value();
        let names: Vec<&str> = Forge::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(property(&schema, "Hook", "forge")["enum"], json!(names));
    }

    #[test]
    fn queue_modes_are_the_ones_config_accepts() {
        let schema = schema().to_value();
        let modes = [QueueMode::Supersede, QueueMode::Fifo].map(QueueMode::as_str);
        assert_eq!(property(&schema, "Rule", "queue")["enum"], json!(modes));
    }

    #[test]
    fn spans_and_options_do_not_show() {
        let schema = schema().to_value();
        assert_eq!(
            property(&schema, "Server", "listen"),
            &json!({
                "description": "`address:port` to receive webhooks on. Default `\"127.0.0.1:9000\"`.",
                "type": "string"
            })
        );
        assert_eq!(
            schema["required"],
            Value::Null,
            "no key is required by serde"
        );
        assert_eq!(
            property(&schema, "Rule", "env")["additionalProperties"],
            json!({"type": "string"})
        );
    }

    #[test]
    fn the_same_bytes_every_time() {
        assert_eq!(schema_json(), schema_json());
        assert!(schema_json().ends_with("}\n"));
    }
}
