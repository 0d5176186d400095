//! The config parser (`config::load_str`, both stages: TOML with every unknown key
//! found, then validation): whatever the text, it does not panic; a refused config has
//! at least one error, and every diagnostic points inside the text.

#![no_main]

use std::path::Path;

use deployhook::config::{self, Severity};
use deployhook_fuzz::WHSEC;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Secret files are read whole: keep the fuzzer away from endless device files (an
    // operator's config is trusted to name a real file). `\u` escapes could spell them.
    if ["/dev", "/proc", "/sys", "\\u", "\\U"]
        .iter()
        .any(|p| text.contains(p))
    {
        return;
    }
    let env = |name: &str| match name {
        "HOOK_SECRET" => Some("s3cret".to_owned()),
        "HOOK_WHSEC" => Some(WHSEC.to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    };
    let path = Path::new("/nonexistent/deployhook-fuzz/hooks.toml");
    let lines = text.split('\n').count();
    let in_text = |d: &config::Diagnostic| {
        let shown = d.to_string();
        assert!(
            shown.starts_with("/nonexistent/deployhook-fuzz/hooks.toml"),
            "{shown}"
        );
        if let Some((line, col)) = d.position {
            assert!(
                line >= 1 && line <= lines,
                "line {line} of {lines}: {shown}"
            );
            let width = text.split('\n').nth(line - 1).unwrap().chars().count();
            assert!(
                col >= 1 && col <= width + 1,
                "column {col} of {width}: {shown}"
            );
        }
    };
    match config::load_str(path, text, &env) {
        Ok(loaded) => {
            loaded.warnings.iter().for_each(in_text);
            assert!(
                loaded
                    .warnings
                    .iter()
                    .all(|w| w.severity == Severity::Warning)
            );
            let cfg = loaded.config;
            for (i, hook) in cfg.hooks.iter().enumerate() {
                assert!(!hook.id.is_empty());
                assert!(
                    cfg.hooks[..i].iter().all(|h| h.id != hook.id),
                    "duplicate hook id {:?} accepted",
                    hook.id
                );
                assert!(std::ptr::eq(cfg.hook(&hook.id).unwrap(), hook));
                for (j, rule) in hook.rules.iter().enumerate() {
                    assert_eq!(rule.index, j);
                    assert!(
                        !rule.commands.is_empty(),
                        "a rule without commands accepted"
                    );
                }
            }
            assert!(cfg.server.state_dir.is_absolute());
        }
        Err(invalid) => {
            invalid.diagnostics.iter().for_each(in_text);
            assert!(
                invalid
                    .diagnostics
                    .iter()
                    .any(|d| d.severity == Severity::Error),
                "refused without an error: {invalid}"
            );
        }
    }
});
