//! Which PostgreSQL database the store uses (`[store] url`), read and checked before
//! anything connects: it names a user and a database, holds no password (that comes
//! from `password_file`), and every TCP host is reached over TLS.

use std::fmt;

use tokio_postgres::config::{Host, SslMode};

/// Advice the messages share.
const EXAMPLE: &str = "postgres://deployhook@db.example.com/deployhook";

/// A checked PostgreSQL connection target, without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    needs_tls: bool,
    describe: String,
}

impl PgTarget {
    /// Parses a PostgreSQL URL (`postgres://` or `postgresql://`) or a key=value string,
    /// as `tokio_postgres::Config` reads them, and checks it. A TCP target gets
    /// `sslmode=require` (`disable` and `prefer` are refused); a target of local sockets
    /// only gets `sslmode=disable`, as PostgreSQL has no TLS on sockets. The messages
    /// never quote the string, which may hold a password.
    pub fn parse(url: &str) -> Result<PgTarget, String> {
        if let Some(scheme) = url_scheme(url)
            && !matches!(scheme, "postgres" | "postgresql")
        {
            return Err(format!(
                "is a {scheme}:// URL; use postgres:// or postgresql:// (like {EXAMPLE}), or a key=value string like \"host=db.example.com user=deployhook dbname=deployhook\""
            ));
        }
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|c| format!(": {c}"))
                .unwrap_or_default();
            format!(
                "is not a PostgreSQL URL or key=value string ({e}{cause}); write it like {EXAMPLE}"
            )
        })?;
        if config.get_password().is_some() {
            return Err(
                "holds a password: remove it from the URL and put it in password_file (a file, or \"%d/NAME\" for a systemd credential)"
                    .to_owned(),
            );
        }
        if config.get_user().is_none_or(str::is_empty) {
            return Err(format!(
                "names no user: add user, like {EXAMPLE} (or ?user=deployhook)"
            ));
        }
        if config.get_dbname().is_none_or(str::is_empty) {
            return Err(format!(
                "names no database: add its name, like {EXAMPLE} (or ?dbname=deployhook)"
            ));
        }
        let needs_tls = check_hosts(&config)?;
        if needs_tls {
            match written_ssl_mode(url) {
                SslMode::Disable => return Err(
                    "sslmode=disable turns TLS off, and TLS is required for TCP hosts; remove sslmode (require is used)"
                        .to_owned(),
                ),
                SslMode::Prefer => return Err(
                    "sslmode=prefer would fall back to an unencrypted connection, and TLS is required for TCP hosts; remove sslmode (require is used)"
                        .to_owned(),
                ),
                _ => {}
            }
            config.ssl_mode(SslMode::Require);
        } else {
            config.ssl_mode(SslMode::Disable);
        }
        let describe = describe(&config);
        Ok(PgTarget {
            config,
            needs_tls,
            describe,
        })
    }

    /// The connection settings, without a password (set it from `password_file`).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Whether the target is reached over TCP, and so over TLS (`sslmode=require`);
    /// `false`: local sockets only, without TLS.
    pub fn needs_tls(&self) -> bool {
        self.needs_tls
    }

    /// For logs and messages: `postgres deployhook@db1.internal:5432/deployhook`. Never
    /// holds a password.
    pub fn describe(&self) -> String {
        self.describe.clone()
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgTarget").field(&self.describe).finish()
    }
}

/// The scheme of something written like a URL (`mysql://...`); `None` for a key=value
/// string.
fn url_scheme(s: &str) -> Option<&str> {
    let (scheme, _) = s.trim_start().split_once("://")?;
    let mut chars = scheme.chars();
    (chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then_some(scheme)
}

/// Checks the hosts; returns whether any is reached over TCP.
fn check_hosts(config: &tokio_postgres::Config) -> Result<bool, String> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    if hosts.is_empty() && addrs.is_empty() {
        return Err(format!(
            "names no host: add one, like {EXAMPLE}, or ?host=/run/postgresql for a local socket"
        ));
    }
    let sockets = hosts.iter().any(|h| matches!(h, Host::Unix(_)));
    let tcp = !addrs.is_empty() || hosts.iter().any(|h| matches!(h, Host::Tcp(_)));
    if sockets && tcp {
        return Err(
            "mixes local sockets and TCP hosts: TLS is required over TCP and PostgreSQL has none on sockets; name only one kind"
                .to_owned(),
        );
    }
    if !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(
            "hostaddr needs a host name beside each address (host=name1,name2 hostaddr=ip1,ip2): TLS checks the server's certificate against the name"
                .to_owned(),
        );
    }
    Ok(tcp)
}

/// The `sslmode` the string itself sets, or `Require` when it sets none.
/// `tokio_postgres::Config` cannot tell an absent `sslmode` from `prefer`, its default;
/// so the string is read again with `sslmode=require` put before its own parameters
/// (a later one wins), and what comes out is what it names, if anything.
fn written_ssl_mode(s: &str) -> SslMode {
    let with_require = match s.split_once("://") {
        Some((scheme, rest)) if url_scheme(s).is_some() => {
            // The parameters start at the first `?` after the user (as tokio-postgres
            // reads a URL: the user info ends at the first `@`).
            let after_user = rest.find('@').map_or(0, |i| i + 1);
            match rest[after_user..].find('?') {
                Some(q) => {
                    let (head, tail) = rest.split_at(after_user + q + 1);
                    format!("{scheme}://{head}sslmode=require&{tail}")
                }
                None => format!("{s}?sslmode=require"),
            }
        }
        _ => format!("sslmode=require {s}"),
    };
    with_require
        .parse::<tokio_postgres::Config>()
        .map_or(SslMode::Require, |c| c.get_ssl_mode())
}

/// `postgres user@host:port,host:port/dbname`, with a `hostaddr` in brackets after its
/// host.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let places: Vec<String> = (0..hosts.len().max(addrs.len()))
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let name = match hosts.get(i) {
                Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
                Some(Host::Tcp(h)) => h.clone(),
                Some(Host::Unix(p)) => p.display().to_string(),
                None => String::new(),
            };
            match addrs.get(i) {
                Some(a) => format!("{name}:{port} ({a})"),
                None => format!("{name}:{port}"),
            }
        })
        .collect();
    format!(
        "postgres {}@{}/{}",
        config.get_user().unwrap_or_default(),
        places.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(url: &str) -> String {
        PgTarget::parse(url).expect_err(url)
    }

    #[test]
    fn a_tcp_url_gets_tls() {
        let t = PgTarget::parse("postgres://deployhook@db1.internal/deployhook").unwrap();
        assert!(t.needs_tls());
        assert_eq!(t.config().get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config().get_user(), Some("deployhook"));
        assert_eq!(t.config().get_dbname(), Some("deployhook"));
        assert_eq!(t.config().get_password(), None);
        assert_eq!(
            t.describe(),
            "postgres deployhook@db1.internal:5432/deployhook"
        );
        assert_eq!(
            format!("{t:?}"),
            "PgTarget(\"postgres deployhook@db1.internal:5432/deployhook\")"
        );
    }

    #[test]
    fn sslmode_require_and_other_options_are_kept() {
        for url in [
            "postgresql://deployhook@db1.internal:6432/deployhook?sslmode=require",
            "postgres://deployhook@db1.internal:6432/deployhook?connect_timeout=5&sslmode=require",
            "host=db1.internal port=6432 user=deployhook dbname=deployhook sslmode=require",
        ] {
            let t = PgTarget::parse(url).unwrap();
            assert_eq!(t.config().get_ssl_mode(), SslMode::Require, "{url}");
            assert_eq!(
                t.describe(),
                "postgres deployhook@db1.internal:6432/deployhook"
            );
        }
        let t = PgTarget::parse(
            "postgres://deployhook@a.internal,b.internal:6432/jobs?target_session_attrs=read-write",
        )
        .unwrap();
        assert_eq!(
            t.describe(),
            "postgres deployhook@a.internal:5432,b.internal:6432/jobs"
        );
        let t = PgTarget::parse("postgres://deployhook@[::1]/jobs").unwrap();
        assert_eq!(t.describe(), "postgres deployhook@[::1]:5432/jobs");
    }

    #[test]
    fn a_unix_socket_needs_no_tls_and_its_sslmode_is_ignored() {
        for url in [
            "postgres:///deployhook?host=/run/postgresql&user=deployhook",
            "postgres://deployhook@%2Frun%2Fpostgresql/deployhook?sslmode=prefer",
            "host=/run/postgresql user=deployhook dbname=deployhook sslmode=require",
        ] {
            let t = PgTarget::parse(url).unwrap();
            assert!(!t.needs_tls(), "{url}");
            assert_eq!(t.config().get_ssl_mode(), SslMode::Disable, "{url}");
            assert_eq!(
                t.describe(),
                "postgres deployhook@/run/postgresql:5432/deployhook"
            );
        }
    }

    #[test]
    fn a_password_is_refused_without_being_repeated() {
        for url in [
            "postgres://deployhook:hunter2@db1.internal/deployhook",
            "postgres://deployhook@db1.internal/deployhook?password=hunter2",
            "host=db1.internal user=deployhook dbname=deployhook password=hunter2",
        ] {
            let e = err(url);
            assert_eq!(
                e,
                "holds a password: remove it from the URL and put it in password_file (a file, or \"%d/NAME\" for a systemd credential)"
            );
        }
    }

    #[test]
    fn user_database_and_host_are_required() {
        assert_eq!(
            err("postgres://db1.internal/deployhook"),
            "names no user: add user, like postgres://deployhook@db.example.com/deployhook (or ?user=deployhook)"
        );
        assert_eq!(
            err("postgres://@db1.internal/deployhook"),
            err("postgres://db1.internal/deployhook")
        );
        assert_eq!(
            err("postgres://deployhook@db1.internal"),
            "names no database: add its name, like postgres://deployhook@db.example.com/deployhook (or ?dbname=deployhook)"
        );
        assert_eq!(
            err("user=deployhook dbname=deployhook"),
            "names no host: add one, like postgres://deployhook@db.example.com/deployhook, or ?host=/run/postgresql for a local socket"
        );
    }

    #[test]
    fn tcp_without_tls_is_refused() {
        for url in [
            "postgres://deployhook@db1.internal/deployhook?sslmode=disable",
            "host=db1.internal user=deployhook dbname=deployhook sslmode=disable",
        ] {
            assert_eq!(
                err(url),
                "sslmode=disable turns TLS off, and TLS is required for TCP hosts; remove sslmode (require is used)"
            );
        }
        for url in [
            "postgres://deployhook@db1.internal/deployhook?sslmode=prefer",
            "postgres://deployhook@db1.internal/deployhook?sslmode=require&sslmode=prefer",
            "host=db1.internal user=deployhook dbname=deployhook sslmode=prefer",
        ] {
            assert_eq!(
                err(url),
                "sslmode=prefer would fall back to an unencrypted connection, and TLS is required for TCP hosts; remove sslmode (require is used)"
            );
        }
    }

    #[test]
    fn sockets_and_tcp_do_not_mix_and_hostaddr_needs_names() {
        assert!(
            err("host=/run/postgresql,db1.internal user=d dbname=d")
                .starts_with("mixes local sockets and TCP hosts")
        );
        assert!(err("hostaddr=10.0.0.5 user=d dbname=d").starts_with("hostaddr needs a host name"));
        let t = PgTarget::parse("host=db1.internal hostaddr=10.0.0.5 user=d dbname=d").unwrap();
        assert!(t.needs_tls());
        assert_eq!(t.describe(), "postgres d@db1.internal:5432 (10.0.0.5)/d");
    }

    #[test]
    fn other_schemes_and_unreadable_strings_are_refused() {
        assert_eq!(
            err("mysql://deployhook@db1.internal/deployhook"),
            "is a mysql:// URL; use postgres:// or postgresql:// (like postgres://deployhook@db.example.com/deployhook), or a key=value string like \"host=db.example.com user=deployhook dbname=deployhook\""
        );
        assert_eq!(
            err("postgres://deployhook@db1.internal/deployhook?colour=blue"),
            "is not a PostgreSQL URL or key=value string (invalid connection string: unknown option `colour`); write it like postgres://deployhook@db.example.com/deployhook"
        );
        assert!(err("db1.internal").starts_with("is not a PostgreSQL URL"));
    }
}
