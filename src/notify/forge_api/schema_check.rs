//! A small JSON Schema checker for the tests: enough of OpenAPI 3.0's schema dialect to
//! check request bodies against GitHub's request schemas (type, `nullable`, properties,
//! required, enum, additionalProperties, items, oneOf, anyOf, allOf, minLength and
//! maxLength). A schema keyword it does not know is an error, not a pass, so a newer
//! fragment cannot be checked less than it says.

use serde_json::{Map, Value};

/// Keywords that only describe (they constrain nothing), and OpenAPI's `x-` extensions.
const ANNOTATIONS: &[&str] = &[
    "description",
    "default",
    "example",
    "examples",
    "title",
    "deprecated",
    "readOnly",
    "writeOnly",
    "format",
    "externalDocs",
];

/// How strictly objects are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objects {
    /// As the schema says: a property it does not list is allowed unless
    /// `additionalProperties` says otherwise.
    AsWritten,
    /// A property the schema does not list is an error unless `additionalProperties`
    /// allows it explicitly. GitHub ignores unknown fields, so a misspelt one would
    /// otherwise pass here and be dropped there.
    Closed,
}

/// Checks `value` against `schema`; every problem found, each with where it is.
pub fn check(schema: &Value, value: &Value, objects: Objects) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    walk(schema, value, objects, "$", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn walk(schema: &Value, value: &Value, objects: Objects, at: &str, out: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        match schema {
            Value::Bool(true) => {}
            Value::Bool(false) => out.push(format!("{at}: no value is allowed here")),
            _ => out.push(format!("{at}: the schema is not an object")),
        }
        return;
    };
    for key in schema.keys() {
        let known = matches!(
            key.as_str(),
            "type"
                | "nullable"
                | "properties"
                | "required"
                | "enum"
                | "additionalProperties"
                | "items"
                | "oneOf"
                | "anyOf"
                | "allOf"
                | "minLength"
                | "maxLength"
        );
        if !known && !ANNOTATIONS.contains(&key.as_str()) && !key.starts_with("x-") {
            out.push(format!("{at}: schema keyword {key:?} is not supported"));
        }
    }
    let nullable = schema.get("nullable") == Some(&Value::Bool(true));
    if value.is_null() && nullable {
        return;
    }
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|t| is_type(value, t)) {
            out.push(format!(
                "{at}: {} is not of type {}",
                kind(value),
                names.join(" or ")
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(format!(
            "{at}: {value} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Value::String(s) = value {
        let len = s.chars().count();
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && (len as u64) < min
        {
            out.push(format!("{at}: {len} characters, fewer than {min}"));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && (len as u64) > max
        {
            out.push(format!("{at}: {len} characters, more than {max}"));
        }
    }
    if let Value::Object(fields) = value {
        check_object(schema, fields, objects, at, out);
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            walk(item, v, objects, &format!("{at}[{i}]"), out);
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            walk(s, value, objects, at, out);
        }
    }
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(choices) = schema.get(keyword).and_then(Value::as_array) {
            let passing = choices
                .iter()
                .filter(|s| check(s, value, objects).is_ok())
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                out.push(format!(
                    "{at}: {passing} of the {keyword} schemas match, not {}",
                    if exactly_one {
                        "exactly one"
                    } else {
                        "at least one"
                    }
                ));
            }
        }
    }
}

fn check_object(
    schema: &Map<String, Value>,
    fields: &Map<String, Value>,
    objects: Objects,
    at: &str,
    out: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    for name in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !fields.contains_key(name) {
            out.push(format!("{at}: required property {name:?} is missing"));
        }
    }
    for (name, v) in fields {
        let here = format!("{at}.{name}");
        if let Some(s) = properties.and_then(|p| p.get(name)) {
            walk(s, v, objects, &here, out);
            continue;
        }
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => out.push(format!("{here}: not a property of the schema")),
            Some(Value::Bool(true)) => {}
            Some(extra) => walk(extra, v, objects, &here, out),
            None if objects == Objects::Closed && properties.is_some() => {
                out.push(format!("{here}: not a property of the schema"));
            }
            None => {}
        }
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "number" => value.is_number(),
        "integer" => {
            value.is_i64() || value.is_u64() || value.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
