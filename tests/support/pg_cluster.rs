//! A throwaway PostgreSQL cluster for the tests: initdb and pg_ctl in a temp dir, on a free
//! loopback port, one empty database per test, stopped and removed when the test process ends.
//!
//! Self-contained (std, tempfile, nix) because it is included by path from two places: the
//! integration test binary and the library's unit tests. PostgreSQL refuses to run as root,
//! so when the tests run as root (CI) the server and psql run as the `postgres` user through
//! util-linux's `runuser`.
//!
//! Authentication is set up as the store will meet it in production: the role `deployhook`
//! needs its password (scram-sha-256) over the unix socket and over TCP, and TCP is
//! `hostssl` only, with a certificate for 127.0.0.1 and localhost signed by a CA of its own.

// Each includer uses a different part of the harness; whatever one of them leaves unused
// would otherwise be a dead-code warning there (and `-D warnings` in CI).
#![allow(dead_code)]

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The role the tests connect as (the store's role in production).
const ROLE: &str = "deployhook";
/// How long pg_ctl may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// Attempts at a free port: another process may take the one we picked before the
/// server binds it.
const PORT_ATTEMPTS: u32 = 3;

/// One running PostgreSQL server in a temp dir of its own.
pub struct Cluster {
    install: Install,
    /// The temp dir holding everything below; the watcher removes it.
    dir: PathBuf,
    data_dir: PathBuf,
    socket_dir: PathBuf,
    log_file: PathBuf,
    ca_file: PathBuf,
    password: String,
    password_file: PathBuf,
    port: u16,
    next_db: AtomicU32,
    /// Serializes stop() and start(): two pg_ctl runs on one data dir would race.
    server: Mutex<()>,
    /// `sh` waiting for its stdin (our pipe) to close, then stopping the server and
    /// removing `dir`: statics are never dropped, but the process's end closes the pipe.
    watcher: Child,
}

/// A fresh empty database owned by the role `deployhook`.
pub struct TestDb {
    pub name: String,
    /// Over the unix socket, no password inside: e.g.
    /// `postgres:///t_3?host=/tmp/.../sock&port=54321&user=deployhook`
    pub socket_url: String,
    /// Over TCP to 127.0.0.1 with TLS required, no password inside:
    /// `postgres://deployhook@127.0.0.1:54321/t_3?sslmode=require`
    pub tcp_url: String,
}

/// Where PostgreSQL's programs are, and as whom they run.
struct Install {
    bin_dir: PathBuf,
    /// `Some("postgres")` when the tests run as root: the server refuses to run as root.
    run_as: Option<OsUser>,
    /// The cluster's superuser: the OS user the server runs as, so that peer
    /// authentication over the socket lets psql in.
    superuser: String,
}

struct OsUser {
    name: String,
    uid: nix::unistd::Uid,
    gid: nix::unistd::Gid,
}

impl Cluster {
    /// The one cluster of this test process, started on first use (OnceLock).
    /// Under CI (env CI set) a missing PostgreSQL panics with what to install; otherwise
    /// returns None after printing to stderr why the test does nothing.
    pub fn shared() -> Option<&'static Cluster> {
        static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
        SHARED
            .get_or_init(|| Install::find_or_skip().map(Cluster::start_new))
            .as_ref()
    }

    /// A cluster of the caller's own, for a test that stops the server: stopping the
    /// shared one would fail every other test using it at that moment. Stopped and
    /// removed when dropped. `None` as for [`Cluster::shared`].
    pub fn private() -> Option<Cluster> {
        Install::find_or_skip().map(Cluster::start_new)
    }

    /// A fresh empty database owned by the role `deployhook`, unique in this process.
    pub fn database(&self) -> TestDb {
        let name = format!("t_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {ROLE}"));
        let port = self.port;
        TestDb {
            socket_url: format!(
                "postgres:///{name}?host={}&port={port}&user={ROLE}",
                self.socket_dir.display()
            ),
            tcp_url: format!("postgres://{ROLE}@127.0.0.1:{port}/{name}?sslmode=require"),
            name,
        }
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A PEM CA certificate that signed the server's TLS certificate (for 127.0.0.1 and localhost).
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The `deployhook` role's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A 0600 file holding the password (no trailing newline).
    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// Stops the server (pg_ctl stop -m fast). Safe to call from any thread.
    pub fn stop(&self) {
        let _one_at_a_time = self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut cmd = self.install.command("pg_ctl", &self.dir);
        cmd.args(["stop", "-m", "fast", "-w", "-s", "-t", PG_CTL_TIMEOUT_SECS])
            .arg("-D")
            .arg(&self.data_dir);
        run("stopping the test PostgreSQL server", &mut cmd, None);
    }

    /// Starts the server again on the same port and socket dir, waiting until it accepts
    /// connections. Safe to call from any thread.
    pub fn start(&self) {
        let _one_at_a_time = self
            .server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(why) = self.pg_ctl_start() {
            panic!("starting the test PostgreSQL server again: {why}");
        }
    }

    /// Runs one SQL statement (or a few) as the superuser in `db` with psql; returns stdout
    /// (rows only, unaligned, `|` between columns).
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut cmd = self.install.command("psql", &self.dir);
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string()])
            .args(["-U", &self.install.superuser, "-d", db]);
        run(&format!("psql in {db}: {sql}"), &mut cmd, Some(sql))
    }

    /// Sets up and starts a cluster in a new temp dir; panics saying what failed.
    fn start_new(install: Install) -> Cluster {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("deployhook-pg-")
            .tempdir()
            .expect("a temp dir for the test PostgreSQL cluster")
            .keep();
        // The watcher comes first: whatever panics below, it still removes the dir.
        let watcher = install.spawn_watcher(&dir);
        // 0755: the server user must reach its files; the data dir is 0700 itself.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        install.give(&dir);
        let socket_dir = dir.join("sock");
        fs::create_dir(&socket_dir).unwrap();
        install.give(&socket_dir);
        let password = random_hex(16);
        let password_file = dir.join("password");
        write_private(&password_file, &password);
        let tls = make_tls(&install, &dir);
        let mut cluster = Cluster {
            data_dir: dir.join("data"),
            log_file: dir.join("postgres.log"),
            ca_file: tls.ca,
            socket_dir,
            password,
            password_file,
            port: 0,
            next_db: AtomicU32::new(1),
            server: Mutex::new(()),
            watcher,
            install,
            dir,
        };
        cluster.initdb();
        cluster.write_hba();
        cluster.start_on_free_port(&tls.cert, &tls.key);
        cluster.psql(
            "postgres",
            &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{}'", cluster.password),
        );
        eprintln!(
            "test PostgreSQL ({}) up in {:.2?} on 127.0.0.1:{} and {}",
            cluster.install.bin_dir.display(),
            began.elapsed(),
            cluster.port,
            cluster.socket_dir.display()
        );
        cluster
    }

    fn initdb(&self) {
        let mut cmd = self.install.command("initdb", &self.dir);
        cmd.arg("-D")
            .arg(&self.data_dir)
            .args(["-U", &self.install.superuser])
            // Not trust, not even until pg_hba.conf is rewritten below.
            .args(["--auth-local=peer", "--auth-host=scram-sha-256"])
            .args(["-E", "UTF8", "--locale=C"])
            // A throwaway cluster need not survive a power cut; this is most of initdb's time.
            .args(["--no-sync", "--no-instructions"]);
        run("initdb for the test PostgreSQL cluster", &mut cmd, None);
    }

    /// The superuser by peer over the socket (psql here); the role `deployhook` by password
    /// over the socket and over TLS on 127.0.0.1. With no `host` line, plaintext TCP is
    /// refused by the server itself, and nobody else gets in at all.
    fn write_hba(&self) {
        let superuser = &self.install.superuser;
        let hba = format!(
            "# TYPE  DATABASE  USER  ADDRESS  METHOD\n\
             local   all  {superuser}  peer\n\
             local   all  {ROLE}  scram-sha-256\n\
             hostssl all  {ROLE}  127.0.0.1/32  scram-sha-256\n"
        );
        let path = self.data_dir.join("pg_hba.conf");
        fs::write(&path, hba).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.install.give(&path);
    }

    /// Picks a free port, writes the settings with it, starts; another port if that one
    /// was taken in between.
    fn start_on_free_port(&mut self, cert_file: &Path, key_file: &Path) {
        for attempt in 1..=PORT_ATTEMPTS {
            self.port = free_port();
            self.write_settings(cert_file, key_file);
            match self.pg_ctl_start() {
                Ok(()) => return,
                Err(why) if attempt < PORT_ATTEMPTS && why.contains("could not bind") => {
                    eprintln!(
                        "test PostgreSQL: port {} was taken, trying another",
                        self.port
                    );
                }
                Err(why) => panic!("starting the test PostgreSQL server: {why}"),
            }
        }
    }

    /// Our settings in a file of their own, included last by postgresql.conf.
    fn write_settings(&self, cert_file: &Path, key_file: &Path) {
        let quoted = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
        let mut text = String::new();
        let _ = writeln!(text, "port = {}", self.port);
        let _ = writeln!(text, "listen_addresses = '127.0.0.1'");
        let _ = writeln!(
            text,
            "unix_socket_directories = {}",
            quoted(&self.socket_dir)
        );
        // Many tests at once, each with a pool of its own.
        let _ = writeln!(text, "max_connections = 200");
        // Speed over durability: the tests kill deployhook, never PostgreSQL, and nothing
        // measures performance against this cluster, so nothing needs the writes on disk.
        let _ = writeln!(text, "fsync = off");
        let _ = writeln!(text, "full_page_writes = off");
        // scram-sha-256 in pg_hba.conf needs the password stored as SCRAM (md5 before 14).
        let _ = writeln!(text, "password_encryption = 'scram-sha-256'");
        let _ = writeln!(text, "ssl = on");
        let _ = writeln!(text, "ssl_cert_file = {}", quoted(cert_file));
        let _ = writeln!(text, "ssl_key_file = {}", quoted(key_file));
        let settings = self.data_dir.join("deployhook.conf");
        fs::write(&settings, text).unwrap_or_else(|e| panic!("{}: {e}", settings.display()));
        self.install.give(&settings);
        let main = self.data_dir.join("postgresql.conf");
        let current = fs::read_to_string(&main).unwrap();
        let include = "include 'deployhook.conf'\n";
        if !current.contains(include) {
            fs::write(&main, current + include).unwrap();
        }
    }

    /// `pg_ctl start -w`: returns once the server accepts connections; on failure, what
    /// pg_ctl and the server's log said.
    fn pg_ctl_start(&self) -> Result<(), String> {
        let logged_before = fs::metadata(&self.log_file).map_or(0, |m| m.len());
        let mut cmd = self.install.command("pg_ctl", &self.dir);
        cmd.args(["start", "-w", "-s", "-t", PG_CTL_TIMEOUT_SECS])
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file);
        let out = output(&mut cmd, None);
        if out.status.success() {
            return Ok(());
        }
        Err(format!(
            "{cmd:?} failed ({}): {}\nserver log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            read_from(&self.log_file, logged_before)
        ))
    }
}

impl Drop for Cluster {
    /// Only a private cluster is ever dropped: closing the watcher's stdin makes it stop
    /// the server and remove the dir; waiting for it makes that done when drop returns.
    fn drop(&mut self) {
        drop(self.watcher.stdin.take());
        let _ = self.watcher.wait();
    }
}

impl Install {
    /// What is needed, or `None` after saying on stderr why not (a panic under CI,
    /// where .ci/run installs PostgreSQL, so a missing one is a broken CI, not a skip).
    fn find_or_skip() -> Option<Install> {
        match Install::find() {
            Ok(install) => Some(install),
            Err(why) => {
                assert!(std::env::var_os("CI").is_none(), "{why}");
                eprintln!("SKIPPED a PostgreSQL test: {why}");
                None
            }
        }
    }

    fn find() -> Result<Install, String> {
        let bin_dir = bin_dir().ok_or(
            "PostgreSQL's initdb is neither in PATH nor in /usr/lib/postgresql/<version>/bin/ \
             (Debian: apt-get install postgresql; .ci/run installs it)",
        )?;
        for program in ["initdb", "pg_ctl", "psql"] {
            if !is_executable(&bin_dir.join(program)) {
                return Err(format!("{} has no {program}", bin_dir.display()));
            }
        }
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .ok()
            .flatten()
            .ok_or("the user running the tests has no name")?;
        if !me.uid.is_root() {
            return Ok(Install {
                bin_dir,
                run_as: None,
                superuser: me.name,
            });
        }
        let postgres = nix::unistd::User::from_name("postgres")
            .ok()
            .flatten()
            .ok_or(
                "the tests run as root, which PostgreSQL refuses, and there is no `postgres` \
                 user to run it as (Debian's postgresql package creates it)",
            )?;
        if find_in_path("runuser").is_none() {
            return Err(
                "the tests run as root and need util-linux's runuser to run \
                        PostgreSQL as the `postgres` user"
                    .to_owned(),
            );
        }
        Ok(Install {
            bin_dir,
            superuser: postgres.name.clone(),
            run_as: Some(OsUser {
                name: postgres.name,
                uid: postgres.uid,
                gid: postgres.gid,
            }),
        })
    }

    /// One of PostgreSQL's programs, run as the server's user, in `cwd` (the user's
    /// cwd must be readable by it: initdb and pg_ctl look at theirs).
    fn command(&self, program: &str, cwd: &Path) -> Command {
        let path = self.bin_dir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &user.name, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.current_dir(cwd);
        cmd
    }

    /// Hands `path` to the server's user (when that is another user).
    fn give(&self, path: &Path) {
        if let Some(user) = &self.run_as {
            nix::unistd::chown(path, Some(user.uid), Some(user.gid))
                .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), user.name));
        }
    }

    /// `sh`, in a process group of its own so that a Ctrl-C of the tests does not kill it
    /// before it has cleaned up, blocked reading its stdin: our pipe, closed when this
    /// process ends (however it ends) or the cluster is dropped. It then stops the server,
    /// if one is running, and removes the temp dir.
    fn spawn_watcher(&self, dir: &Path) -> Child {
        let script = r#"dir=$1; shift; read -r _; "$@" >/dev/null 2>&1; rm -rf -- "$dir""#;
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script, "deployhook-pg-watcher"]).arg(dir);
        if let Some(user) = &self.run_as {
            cmd.args(["runuser", "-u", &user.name, "--"]);
        }
        cmd.arg(self.bin_dir.join("pg_ctl"))
            .args(["stop", "-m", "immediate", "-s", "-D"])
            .arg(dir.join("data"))
            .current_dir("/")
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn()
            .unwrap_or_else(|e| panic!("starting the test PostgreSQL cluster's watcher: {e}"))
    }
}

/// PostgreSQL's bin dir: where the initdb found in PATH really is (so that psql comes
/// from the same version, not from Debian's /usr/bin/psql wrapper), else the newest
/// `/usr/lib/postgresql/<version>/bin/` (Debian keeps initdb out of PATH).
fn bin_dir() -> Option<PathBuf> {
    if let Some(initdb) = find_in_path("initdb") {
        let real = fs::canonicalize(&initdb).unwrap_or(initdb);
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.to_owned();
            let number: Vec<u32> = version
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            is_executable(&bin.join("initdb")).then_some((number, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The CA certificate the tests trust, and the server's certificate and key it signed.
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

/// Our own openssl config, so that the system's (its default extensions) cannot change
/// what the certificates say.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = deployhook test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

/// A CA and a server certificate for 127.0.0.1 and localhost (P-256 keys: fast to make),
/// with the openssl command line.
fn make_tls(install: &Install, dir: &Path) -> Tls {
    let tls = dir.join("tls");
    fs::create_dir(&tls).unwrap();
    let config = tls.join("openssl.cnf");
    fs::write(&config, OPENSSL_CONFIG).unwrap();
    let (ca_key, ca_file) = (tls.join("ca.key"), tls.join("ca.pem"));
    let (key_file, csr, cert_file) = (
        tls.join("server.key"),
        tls.join("server.csr"),
        tls.join("server.pem"),
    );
    let new_key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        "the test CA",
        Command::new("openssl")
            .args(["req", "-x509", "-days", "3650", "-extensions", "ca"])
            .args(new_key)
            .args(["-subj", "/CN=deployhook test CA", "-config"])
            .arg(&config)
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_file),
    );
    openssl(
        "the test server's key and request",
        Command::new("openssl")
            .args(["req", "-new"])
            .args(new_key)
            .args(["-subj", "/CN=localhost", "-config"])
            .arg(&config)
            .arg("-keyout")
            .arg(&key_file)
            .arg("-out")
            .arg(&csr),
    );
    openssl(
        "the test server's certificate",
        Command::new("openssl")
            .args(["x509", "-req", "-days", "3650", "-extensions", "server"])
            .args(["-set_serial", &format!("0x{}", random_hex(16))])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca_file)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&config)
            .arg("-out")
            .arg(&cert_file),
    );
    // The server refuses a key that anyone but its owner can read.
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
    install.give(&key_file);
    install.give(&cert_file);
    Tls {
        ca: ca_file,
        cert: cert_file,
        key: key_file,
    }
}

fn openssl(what: &str, cmd: &mut Command) {
    run(&format!("openssl making {what}"), cmd, None);
}

/// A port nothing listened on a moment ago (the server binds it next).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// `n` random bytes from the kernel, as hex.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0; n];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// What was appended to `path` from byte `from` on (the server's log since a start).
fn read_from(path: &Path, from: u64) -> String {
    let text = fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(0).min(text.len());
    String::from_utf8_lossy(&text[from..]).trim().to_owned()
}

/// Runs `cmd` (with `stdin` written to it); its stdout, or a panic with its stderr and
/// what it was doing.
fn run(what: &str, cmd: &mut Command, stdin: Option<&str>) -> String {
    let out = output(cmd, stdin);
    assert!(
        out.status.success(),
        "{what}: {cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // From a thread of its own: a program that answers while it reads (psql) could
    // otherwise fill its stdout pipe while we still write, and both would wait forever.
    let writer = child.stdin.take().map(|mut pipe| {
        let text = stdin.unwrap_or_default().to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for {cmd:?}: {e}"));
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    out
}
