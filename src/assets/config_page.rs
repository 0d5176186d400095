//! hooks.toml(5): the configuration's man page, written from the JSON Schema (so every
//! key `config::raw` accepts, with its doc comment, is on it, and nothing else).

use roff::{Inline, Roff, bold, italic, roman};
use serde_json::Value;

/// The page's file name.
pub const FILE: &str = "hooks.toml.5";

/// The man page of `schema` (the hooks.toml JSON Schema), as roff.
pub fn page(schema: &Value) -> String {
    let mut page = Roff::new();
    let version = concat!("deployhook ", env!("CARGO_PKG_VERSION"));
    page.control("TH", ["HOOKS.TOML", "5", "", version, "File Formats"]);
    page.control("SH", ["NAME"]);
    page.text([roman("hooks.toml - the configuration of deployhook")]);
    page.control("SH", ["DESCRIPTION"]);
    page.text(marked(text(schema)));
    page.control("PP", []);
    page.text(marked(
        "Durations are written `30s`, `5m`, `1h`; sizes `512KiB`, `10MiB`. Each table below \
         lists its keys with their types; `deployhook check --config FILE` reports every \
         problem in a file as file:line:column.",
    ));
    let definitions = &schema["definitions"];
    // The daemon's own tables first, then the hooks and what they tell.
    let mut tables: Vec<(&str, &Value)> = properties(schema).collect();
    tables.sort_by_key(|(key, _)| {
        ["server", "store", "hook", "notify"]
            .iter()
            .position(|k| k == key)
    });
    for (key, property) in tables {
        table(&mut page, definitions, key, property, 0);
    }
    page.control("SH", ["SEE ALSO"]);
    page.text([
        bold("deployhook"),
        roman("(1), "),
        bold("deployhook-check"),
        roman("(1), "),
        bold("deployhook-serve"),
        roman("(1); the schema itself, for editors: /usr/share/deployhook/hooks.schema.json"),
    ]);
    page.render()
}

/// A schema's properties, in the schema's order.
fn properties(schema: &Value) -> impl Iterator<Item = (&str, &Value)> {
    schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v))
}

fn text(schema: &Value) -> &str {
    schema["description"].as_str().unwrap_or("")
}

/// `text` with its `code` spans in bold.
fn marked(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, piece)| !piece.is_empty())
        .map(|(i, piece)| {
            if i % 2 == 1 {
                bold(piece)
            } else {
                roman(piece)
            }
        })
        .collect()
}

/// The definition a property refers to, when it is a table (or a list of tables), and
/// whether it is a list.
fn table_of<'a>(property: &Value, definitions: &'a Value) -> Option<(&'a Value, bool)> {
    let (target, list) = if let Some(r) = property["items"]["$ref"].as_str() {
        (r, true)
    } else if let Some(r) = property["allOf"][0]["$ref"].as_str() {
        (r, false)
    } else {
        (property["$ref"].as_str()?, false)
    };
    let def = &definitions[target.strip_prefix("#/definitions/")?];
    def.get("properties").is_some().then_some((def, list))
}

/// One table's section: its keys, then its own tables (`[server.tls]`, `[[hook.rule]]`).
fn table(page: &mut Roff, definitions: &Value, path: &str, property: &Value, depth: usize) {
    let Some((def, list)) = table_of(property, definitions) else {
        return;
    };
    let header = if list {
        format!("[[{path}]]")
    } else {
        format!("[{path}]")
    };
    page.control(if depth == 0 { "SH" } else { "SS" }, [header.as_str()]);
    page.text(marked(text(property)));
    let mut nested = Vec::new();
    for (key, p) in properties(def) {
        if table_of(p, definitions).is_some() && depth < 4 {
            nested.push((key, p));
            continue;
        }
        page.control("TP", []);
        let mut head = vec![bold(key), roman(" (")];
        head.push(italic(kind(p, definitions)));
        head.push(roman(")"));
        page.text(head);
        page.text(marked(text(p)));
    }
    for (key, p) in nested {
        table(page, definitions, &format!("{path}.{key}"), p, depth + 1);
    }
}

/// What a key holds, in a few words.
fn kind(p: &Value, definitions: &Value) -> String {
    if let Some(values) = p["enum"].as_array() {
        let names: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        return format!("one of: {}", names.join(", "));
    }
    let named = p["$ref"]
        .as_str()
        .or_else(|| p["allOf"][0]["$ref"].as_str())
        .and_then(|r| r.strip_prefix("#/definitions/"));
    if let Some(name) = named {
        let def = &definitions[name];
        return match name {
            "StringList" => "string or list of strings".to_owned(),
            "Command" => "command: a string for sh -c, or a list of arguments".to_owned(),
            _ if def["enum"].is_array() => kind(def, definitions),
            _ => name.to_lowercase(),
        };
    }
    match &p["type"] {
        Value::String(t) if t == "array" => format!("list of {}", kind(&p["items"], definitions)),
        Value::String(t) if t == "object" => "table".to_owned(),
        Value::String(t) => t.clone(),
        _ => "value".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_and_key_of_the_schema_is_on_the_page() {
        let schema = serde_json::to_value(super::super::schema()).unwrap();
        let page = page(&schema);
        let at = |header: &str| {
            page.find(&format!(".SH {header}\n"))
                .or_else(|| page.find(&format!(".SS {header}\n")))
                .unwrap_or_else(|| panic!("{header} missing"))
        };
        let order: Vec<usize> = ["[server]", "[store]", "[[hook]]", "[[notify]]"]
            .iter()
            .map(|h| at(h))
            .collect();
        assert!(order.is_sorted(), "{order:?}");
        at("[server.tls]");
        at("[[hook.rule]]");
        // Every key of every table, in bold, with its type in italics.
        let definitions = &schema["definitions"];
        for def in definitions.as_object().unwrap().values() {
            for (key, p) in properties(def) {
                if table_of(p, definitions).is_none() {
                    assert!(
                        page.contains(&format!("\\fB{key}\\fR (\\fI")),
                        "key {key} missing"
                    );
                }
            }
        }
        assert!(page.contains("\\fBbackend\\fR (\\fIone of: sqlite, postgres\\fR)"));
        assert!(page.contains("\\fBrun_on\\fR (\\fIlist of string\\fR)"));
    }
}
