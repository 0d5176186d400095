//! Finds every unknown key in hooks.toml at once, each with its position and a "did you
//! mean", and removes it so that the rest of the file can still be checked. The known
//! keys are read off the serde structs themselves, so they cannot drift apart.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, Source, did_you_mean};
use super::raw::{
    RawConfig, RawHook, RawLimits, RawNotify, RawRule, RawServer, RawStatus, RawStore, RawTls,
};

/// Removes unknown keys from the document and reports each one.
pub fn strip_unknown(root: &mut DeTable<'_>, src: &Source<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_table(root, fields::<RawConfig>(), "the top level", src, &mut out);
    if let Some(server) = root.get_mut("server")
        && let DeValue::Table(t) = server.get_mut()
    {
        check_table(t, fields::<RawServer>(), "[server]", src, &mut out);
        if let Some(tls) = t.get_mut("tls")
            && let DeValue::Table(tls) = tls.get_mut()
        {
            check_table(tls, fields::<RawTls>(), "[server.tls]", src, &mut out);
        }
    }
    if let Some(store) = root.get_mut("store")
        && let DeValue::Table(t) = store.get_mut()
    {
        check_table(t, fields::<RawStore>(), "[store]", src, &mut out);
    }
    if let Some(hooks) = root.get_mut("hook")
        && let DeValue::Array(hooks) = hooks.get_mut()
    {
        for hook in hooks.iter_mut() {
            let DeValue::Table(hook) = hook.get_mut() else {
                continue;
            };
            check_table(hook, fields::<RawHook>(), "[[hook]]", src, &mut out);
            if let Some(status) = hook.get_mut("status")
                && let DeValue::Table(status) = status.get_mut()
            {
                check_table(
                    status,
                    fields::<RawStatus>(),
                    "[hook.status]",
                    src,
                    &mut out,
                );
            }
            if let Some(rules) = hook.get_mut("rule")
                && let DeValue::Array(rules) = rules.get_mut()
            {
                for rule in rules.iter_mut() {
                    if let DeValue::Table(rule) = rule.get_mut() {
                        check_table(rule, fields::<RawRule>(), "[[hook.rule]]", src, &mut out);
                        if let Some(limits) = rule.get_mut("limits")
                            && let DeValue::Table(limits) = limits.get_mut()
                        {
                            check_table(limits, fields::<RawLimits>(), "limits", src, &mut out);
                        }
                    }
                }
            }
        }
    }
    if let Some(targets) = root.get_mut("notify")
        && let DeValue::Array(targets) = targets.get_mut()
    {
        for t in targets.iter_mut() {
            if let DeValue::Table(t) = t.get_mut() {
                check_table(t, fields::<RawNotify>(), "[[notify]]", src, &mut out);
            }
        }
    }
    out
}

fn check_table(
    table: &mut DeTable<'_>,
    known: &'static [&'static str],
    name: &str,
    src: &Source<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let unknown: Vec<(String, std::ops::Range<usize>)> = table
        .iter()
        .filter(|(k, _)| !known.contains(&k.get_ref().as_ref()))
        .map(|(k, _)| (k.get_ref().to_string(), k.span()))
        .collect();
    for (key, span) in unknown {
        let hint = match did_you_mean(&key, known) {
            Some(k) => format!("; did you mean `{k}`?"),
            None => format!("; known keys are {}", known.join(", ")),
        };
        out.push(src.error(span, format!("unknown key `{key}` in {name}{hint}")));
        table.remove(key.as_str());
    }
}

/// The field names a serde-derived struct accepts, as its derive passes them to
/// `deserialize_struct`.
pub fn fields<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let seen = Cell::new(&[][..]);
    let _ = T::deserialize(FieldProbe(&seen));
    seen.get()
}

struct FieldProbe<'a>(&'a Cell<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Stop
    }
}

impl<'de> de::Deserializer<'de> for FieldProbe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0.set(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_structs() {
        assert_eq!(
            &fields::<RawServer>()[..3],
            ["listen", "state_dir", "max_body"]
        );
        assert!(fields::<RawHook>().contains(&"secret_file"));
        assert!(fields::<RawRule>().contains(&"commands"));
    }
}
