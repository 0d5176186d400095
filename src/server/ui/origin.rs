//! Cross-origin protection for the dashboard's forms, as Go 1.25's
//! `http.CrossOriginProtection` decides it: a state-changing request is refused when the
//! browser says it comes from another site (`Sec-Fetch-Site`), or, from browsers that do
//! not send that, when its `Origin` is not the page's own host. Requests without either
//! header are not from a browser's cross-site form, and pass (the session still decides).

/// Whether a request may change state; `Err` says why not.
pub fn check(
    method: &str,
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
) -> Result<(), String> {
    if matches!(method, "GET" | "HEAD" | "OPTIONS") {
        return Ok(());
    }
    if let Some(site) = sec_fetch_site {
        return match site {
            "same-origin" | "none" => Ok(()),
            other => Err(format!(
                "refused: a {other} request may not change anything here (Sec-Fetch-Site)"
            )),
        };
    }
    let Some(origin) = origin else {
        return Ok(());
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    match host {
        Some(h) if h.eq_ignore_ascii_case(origin_host) => Ok(()),
        _ => Err(format!(
            "refused: a request from {origin:?} may not change anything here (Origin)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn the_decision_table() {
        let host = Some("deploy.example.com");
        let rows: &[(&str, Option<&str>, Option<&str>, bool)] = &[
            (
                "GET",
                Some("cross-site"),
                Some("https://evil.example"),
                true,
            ),
            ("HEAD", Some("cross-site"), None, true),
            (
                "POST",
                Some("same-origin"),
                Some("https://evil.example"),
                true,
            ),
            ("POST", Some("none"), None, true),
            ("POST", Some("same-site"), None, false),
            (
                "POST",
                Some("cross-site"),
                Some("https://deploy.example.com"),
                false,
            ),
            ("POST", None, Some("https://deploy.example.com"), true),
            ("POST", None, Some("https://DEPLOY.example.com"), true),
            ("POST", None, Some("https://evil.example"), false),
            ("POST", None, Some("https://deploy.example.com:8443"), false),
            ("POST", None, Some("null"), false),
            ("POST", None, None, true),
            ("PUT", Some("cross-site"), None, false),
        ];
        for (method, site, origin, allowed) in rows {
            assert_eq!(
                check(method, *site, *origin, host).is_ok(),
                *allowed,
                "{method} {site:?} {origin:?}"
            );
        }
        assert!(
            check(
                "POST",
                None,
                Some("http://127.0.0.1:9000"),
                Some("127.0.0.1:9000")
            )
            .is_ok()
        );
    }
}
