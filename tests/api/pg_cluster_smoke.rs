//! The throwaway PostgreSQL cluster (tests/support/pg_cluster.rs) does what the store's
//! tests will rely on: a database of its own per test, the role's password required over
//! the socket and over TLS, plaintext TCP refused by the server, a certificate the CA file
//! vouches for, and data that survives a stop and a start. Checked with tokio-postgres, the
//! client the store uses.

use std::collections::HashSet;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Config, NoTls, Socket};

use crate::pg_cluster::Cluster;

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A client whose connection is driven on the current runtime.
async fn connect<T>(config: &Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// TLS that trusts only the certificates in `ca_file` (none when `None`).
fn tls_trusting(ca_file: Option<&Path>) -> postgres_rustls::MakeTlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca_file) = ca_file {
        for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    postgres_rustls::MakeTlsConnector::new(Arc::new(config).into())
}

/// The server's own words when it turned the connection away.
fn refusal(result: Result<Client, tokio_postgres::Error>) -> (SqlState, String) {
    let err = result.expect_err("the connection should have been refused");
    let db = err
        .as_db_error()
        .unwrap_or_else(|| panic!("refused by the client, not the server: {err}"));
    (db.code().clone(), db.message().to_owned())
}

#[test]
fn each_database_is_an_empty_one_of_its_own() {
    let Some(pg) = Cluster::shared() else { return };
    let (a, b) = (pg.database(), pg.database());
    assert_ne!(a.name, b.name);
    pg.psql(&a.name, "CREATE TABLE only_in_a (x int)");
    let count = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'";
    assert_eq!(pg.psql(&a.name, count), "1\n");
    assert_eq!(pg.psql(&b.name, count), "0\n");
    let owner =
        "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()";
    assert_eq!(pg.psql(&b.name, owner), "deployhook\n");
}

#[test]
fn databases_asked_for_at_once_are_all_different() {
    let Some(pg) = Cluster::shared() else { return };
    let threads: Vec<_> = (0..8)
        .map(|_| std::thread::spawn(|| pg.database().name))
        .collect();
    let names: HashSet<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(names.len(), 8, "{names:?}");
    let listed = pg.psql("postgres", "SELECT datname FROM pg_database");
    for name in &names {
        assert!(listed.lines().any(|l| l == name), "{name} not in {listed}");
    }
}

#[test]
fn the_role_needs_its_password_over_the_socket() {
    let Some(pg) = Cluster::shared() else { return };
    let db = pg.database();
    assert!(!db.socket_url.contains(pg.password()));
    assert_eq!(
        std::fs::read_to_string(pg.password_file()).unwrap(),
        pg.password()
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(pg.password_file()).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let config: Config = db.socket_url.parse().unwrap();
    block_on(async {
        let client = connect(config.clone().password(pg.password()), NoTls)
            .await
            .unwrap();
        let row = client
            .query_one("SELECT current_user::text, current_database()::text", &[])
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "deployhook");
        assert_eq!(row.get::<_, String>(1), db.name);
        // The owner may make tables (PostgreSQL 15 took that from PUBLIC in public).
        client
            .batch_execute("CREATE TABLE mine (x int)")
            .await
            .unwrap();

        let (code, message) = refusal(connect(config.clone().password("wrong"), NoTls).await);
        assert_eq!(code, SqlState::INVALID_PASSWORD, "{message}");
        // Without one, the server asks for it (SCRAM) and the client has none to give:
        // never peer or trust.
        let err = connect(&config, NoTls).await.expect_err("refused");
        let why = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(why.as_deref(), Some("password missing"), "{err:?}");
    });
}

#[test]
fn tcp_is_tls_only_and_the_ca_file_vouches_for_127_0_0_1() {
    let Some(pg) = Cluster::shared() else { return };
    let db = pg.database();
    let mut config: Config = db.tcp_url.parse().unwrap();
    config.password(pg.password());
    assert_eq!(config.get_ssl_mode(), SslMode::Require);
    block_on(async {
        let client = connect(&config, tls_trusting(Some(pg.ca_file())))
            .await
            .unwrap();
        let row = client
            .query_one(
                "SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        assert!(row.get::<_, bool>(0));
        assert_eq!(row.get::<_, String>(1), "deployhook");

        // The success above was verified: a client trusting nobody fails the handshake.
        let err = connect(&config, tls_trusting(None)).await.err();
        let err = err.expect("a certificate nobody vouches for must not be accepted");
        assert!(err.as_db_error().is_none(), "{err}");

        let mut plain = config.clone();
        plain.ssl_mode(SslMode::Disable);
        let (code, message) = refusal(connect(&plain, NoTls).await);
        assert_eq!(
            code,
            SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{message}"
        );
        assert!(message.contains("no encryption"), "{message}");
    });
}

#[test]
fn data_survives_a_stop_and_a_start_and_a_drop_removes_everything() {
    let Some(pg) = Cluster::private() else { return };
    let db = pg.database();
    let mut config: Config = db.socket_url.parse().unwrap();
    config.password(pg.password());
    block_on(async {
        let client = connect(&config, NoTls).await.unwrap();
        let made = "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)";
        client.batch_execute(made).await.unwrap();
    });
    let socket = pg.socket_dir().join(format!(".s.PGSQL.{}", pg.port()));
    assert!(socket.exists());

    pg.stop();
    assert!(!socket.exists());
    let err = block_on(connect(&config, NoTls)).err();
    let err = err.expect("nobody should answer while stopped");
    assert!(err.as_db_error().is_none(), "{err}");
    assert!(TcpStream::connect(("127.0.0.1", pg.port())).is_err());

    pg.start();
    assert_eq!(pg.psql(&db.name, "SELECT x FROM kept"), "42\n");
    let x: i32 = block_on(async {
        let client = connect(&config, NoTls).await.unwrap();
        client
            .query_one("SELECT x FROM kept", &[])
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(x, 42);

    let dir = pg.socket_dir().parent().unwrap().to_owned();
    let port = pg.port();
    drop(pg);
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}
