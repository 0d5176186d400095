//! Several replicas on one PostgreSQL database, as real `deployhook serve` processes with
//! state dirs of their own: a delivery sent to two at once is accepted once, any replica
//! shows any job, a replica killed with -9 mid-job loses the job to the other (which runs
//! it again), `run_on` keeps a hook's jobs on the replicas it names, and any replica
//! streams the log of a job another runs.

use std::path::Path;
use std::time::Duration;

use crate::gitrepo::Repo;
use crate::helpers::*;
use crate::jobs::{ZERO, hook};
use crate::pg_cluster::Cluster;

/// A config for replica `node` on `url`, its state in `state-<node>`, sharing the API
/// token file with the others. `$OUTDIR` in `hooks` is `out`.
fn replica_config(cluster: &Cluster, url: &str, node: &str, out: &Path, hooks: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:0"
state_dir = "state-{node}"
kill_grace = "1s"
api_token_file = "api-token"
{user}

[store]
backend = "postgres"
url = "{url}"
password_file = "{password}"
node_name = "{node}"
lease = "16s"
{hooks}"#,
        user = own_command_user(),
        password = cluster.password_file().display(),
        hooks = hooks.replace("$OUTDIR", &out.display().to_string()),
    )
}

/// Replicas `nodes` of one config (`hooks`), each on its own config file in one dir.
struct Replicas {
    dir: TestDir,
    daemons: Vec<(Daemon, std::net::SocketAddr)>,
}

impl Replicas {
    fn start(nodes: &[&str], out: &Path, hooks: &str) -> Option<Replicas> {
        let cluster = Cluster::shared()?;
        let db = cluster.database();
        let dir = TestDir::new("");
        std::fs::write(dir.dir.path().join("api-token"), SECRET).unwrap();
        let daemons = nodes
            .iter()
            .map(|node| {
                let path = dir.dir.path().join(format!("hooks-{node}.toml"));
                std::fs::write(
                    &path,
                    replica_config(cluster, &db.socket_url, node, out, hooks),
                )
                .unwrap();
                let (daemon, addr) = start_daemon(&path);
                register_token(addr, SECRET.to_owned());
                (daemon, addr)
            })
            .collect();
        Some(Replicas { dir, daemons })
    }

    fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.daemons[i].1
    }
}

fn signed_push(
    id: &str,
    git_ref: &str,
    before: &str,
    after: &str,
) -> (Vec<(String, String)>, Vec<u8>) {
    let body = serde_json::json!({
        "repository": "acme/website", "ref": git_ref, "before": before, "after": after
    })
    .to_string()
    .into_bytes();
    let mut headers: Vec<(String, String)> = standard_webhooks(id, now_secs(), &body).into();
    headers.push(("Content-Type".into(), "application/json".into()));
    (headers, body)
}

#[test]
fn one_delivery_sent_to_two_replicas_at_once_is_accepted_once_and_seen_by_both() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = "[[hook.rule]]\nbranches = [\"main\"]\ncommands = [[\"true\"]]\n";
    let Some(r) = Replicas::start(&["a", "b"], out.path(), &hook("site", &repo, rules)) else {
        return;
    };
    let (headers, body) = signed_push("msg_twice", "refs/heads/main", ZERO, &sha);
    let answers: Vec<Response> = std::thread::scope(|s| {
        let sends: Vec<_> = (0..2)
            .map(|i| {
                let (addr, headers, body) = (r.addr(i), &headers, &body);
                s.spawn(move || post(addr, "/hooks/site", &refs(headers), body))
            })
            .collect();
        sends.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut statuses: Vec<String> = answers
        .iter()
        .map(|a| a.json()["status"].as_str().unwrap_or("").to_owned())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["duplicate", "queued"], "{answers:?}");
    let queued = answers.iter().find(|a| a.status == 202).unwrap();
    let id = job_id(queued);
    // Whichever replica runs it, both tell how it went.
    for i in 0..2 {
        let job = wait_job_at(r.addr(i), id);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let all = get(r.addr(1), "/api/jobs?hook=site").json();
    assert_eq!(all["jobs"].as_array().unwrap().len(), 1, "{all}");
    let metrics = get(r.addr(0), "/metrics").body;
    assert!(
        metrics.contains("deployhook_replicas_alive 2\n"),
        "{metrics}"
    );
    // A third process under a live replica's name is refused at start.
    let first = std::fs::read_to_string(r.dir.dir.path().join("hooks-a.toml")).unwrap();
    let twin = r.dir.dir.path().join("hooks-a-twin.toml");
    std::fs::write(&twin, first.replace("state-a", "state-a-twin")).unwrap();
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_deployhook"))
        .args(["serve", "--config"])
        .arg(&twin)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "{said}");
    assert!(said.contains("uses node_name \"a\""), "{said}");
}

#[test]
fn a_replica_killed_mid_job_loses_it_to_the_other_which_runs_it_again() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = r#"
[[hook.rule]]
branches = ["main"]
retry_interrupted = true
env = { OUT = "$OUTDIR" }
commands = ["if [ -e \"$OUT/once\" ]; then echo retried >> \"$OUT/runs\"; else touch \"$OUT/once\"; sleep 600; fi"]
"#;
    let Some(mut r) = Replicas::start(&["a", "b"], out.path(), &hook("site", &repo, rules)) else {
        return;
    };
    let (headers, body) = signed_push("msg_kill", "refs/heads/main", ZERO, &sha);
    let res = post(r.addr(0), "/hooks/site", &refs(&headers), &body);
    assert_eq!(res.status, 202, "{}", res.body);
    let id = job_id(&res);
    wait_for("the job to start", Duration::from_secs(60), || {
        out.path().join("once").exists().then_some(())
    });
    let owner = get(r.addr(1), &format!("/api/jobs/{id}")).json()["owner"]
        .as_str()
        .unwrap()
        .to_owned();
    let runner = (0..2)
        .find(|&i| owner.contains(&format!(":{}:", r.daemons[i].0.0.id())))
        .unwrap_or_else(|| panic!("owner {owner} is neither replica"));
    let survivor = r.addr(1 - runner);
    let (mut killed, _) = r.daemons.remove(runner);
    killed.0.kill().unwrap(); // SIGKILL, mid-job
    killed.0.wait().unwrap();
    // Within the lease (16 s) and a recovery tick, the survivor takes it over.
    let first = wait_for("the job to be interrupted", Duration::from_secs(60), || {
        let j = get(survivor, &format!("/api/jobs/{id}")).json();
        (j["state"] != "running").then_some(j)
    });
    assert_eq!(first["state"], "interrupted", "{first}");
    let retry = wait_for("the retry to succeed", Duration::from_secs(60), || {
        get(survivor, "/api/jobs?hook=site&state=succeeded").json()["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["attempt"] == 2)
            .cloned()
    });
    let by = retry["owner"].as_str().unwrap();
    assert!(!by.contains(&format!(":{}:", killed.0.id())), "{by}");
    assert_eq!(
        std::fs::read_to_string(out.path().join("runs")).unwrap(),
        "retried\n"
    );
}

#[test]
fn run_on_keeps_a_hooks_jobs_on_the_replicas_it_names() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = "[[hook.rule]]\nbranches = [\"main\"]\nqueue = \"fifo\"\ncommands = [[\"true\"]]\n";
    let hooks = hook("local", &repo, &format!("run_on = [\"b\"]\n{rules}"));
    let Some(r) = Replicas::start(&["a", "b"], out.path(), &hooks) else {
        return;
    };
    let pids: Vec<u32> = r.daemons.iter().map(|d| d.0.0.id()).collect();
    for n in 0..4 {
        let (headers, body) = signed_push(&format!("msg_{n}"), "refs/heads/main", ZERO, &sha);
        let res = post(r.addr(n % 2), "/hooks/local", &refs(&headers), &body);
        assert_eq!(res.status, 202, "{}", res.body);
        let job = wait_job_at(r.addr(0), job_id(&res));
        assert_eq!(job["state"], "succeeded", "{job}");
        let owner = job["owner"].as_str().unwrap();
        assert!(
            owner.contains(&format!(":{}:", pids[1])),
            "run by {owner}, not b"
        );
    }
}

#[test]
fn any_replica_streams_the_log_of_a_job_another_runs() {
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = r#"
[[hook.rule]]
branches = ["main"]
env = { OUT = "$OUTDIR" }
commands = ["echo first-line; while [ ! -e \"$OUT/go\" ]; do sleep 0.05; done; echo second-line >&2"]
"#;
    let hooks = hook("site", &repo, &format!("run_on = [\"a\"]\n{rules}"));
    let Some(r) = Replicas::start(&["a", "b"], out.path(), &hooks) else {
        return;
    };
    let (headers, body) = signed_push("msg_log", "refs/heads/main", ZERO, &sha);
    let res = post(r.addr(1), "/hooks/site", &refs(&headers), &body);
    assert_eq!(res.status, 202, "{}", res.body);
    let id = job_id(&res);
    let log = format!("/api/jobs/{id}/log");
    // Replica b shows what a's job wrote while it is still running.
    let live = wait_for(
        "b to show a's running job's output",
        Duration::from_secs(60),
        || {
            let body = get(r.addr(1), &log).body;
            body.contains(" out| first-line\n").then_some(body)
        },
    );
    assert!(!live.contains("err| second-line"), "{live}");
    assert_eq!(
        get(r.addr(1), &format!("/api/jobs/{id}")).json()["state"],
        "running"
    );
    let spool = r.dir.dir.path().join(format!("state-a/log-spool/{id}.log"));
    assert!(
        spool.exists(),
        "a spools the running job's log at {}",
        spool.display()
    );
    std::fs::write(out.path().join("go"), "").unwrap();
    let job = wait_job_at(r.addr(1), id);
    assert_eq!(job["state"], "succeeded", "{job}");
    // Once it is seen ended, its whole log is there, the same from both replicas, and
    // a keeps no file of it.
    let whole = get(r.addr(1), &log).body;
    assert!(whole.contains(" err| second-line\n"), "{whole}");
    assert!(
        whole.contains(&format!(
            " job| job {id} succeeded: all commands succeeded\n"
        )),
        "{whole}"
    );
    assert!(
        whole.find("out| first-line") < whole.find("err| second-line"),
        "{whole}"
    );
    assert_eq!(get(r.addr(0), &log).body, whole);
    assert!(!spool.exists(), "the spool outlived the job");
    assert!(
        !r.dir
            .dir
            .path()
            .join(format!("state-a/logs/{id}.log"))
            .exists()
    );
}

#[test]
fn while_the_database_is_down_deliveries_get_503_and_every_202_is_kept() {
    // A cluster of its own: the test stops it.
    let Some(cluster) = Cluster::private() else {
        return;
    };
    let db = cluster.database();
    let repo = Repo::new();
    let sha = repo.commit(&[("version.txt", "1")], &[]);
    let out = tempfile::tempdir().unwrap();
    let rules = "[[hook.rule]]\nbranches = [\"main\"]\nqueue = \"fifo\"\ncommands = [[\"true\"]]\n";
    let dir = TestDir::new("");
    std::fs::write(dir.dir.path().join("api-token"), SECRET).unwrap();
    let daemons: Vec<_> = ["a", "b"]
        .iter()
        .map(|node| {
            let path = dir.dir.path().join(format!("hooks-{node}.toml"));
            let text = replica_config(
                &cluster,
                &db.socket_url,
                node,
                out.path(),
                &hook("site", &repo, rules),
            );
            std::fs::write(&path, text).unwrap();
            start_daemon(&path)
        })
        .collect();
    let addrs: Vec<_> = daemons.iter().map(|d| d.1).collect();
    let mut n = 0;
    let mut send = |phase: &str| {
        n += 1;
        let id = format!("msg_{phase}_{n}");
        let (headers, body) = signed_push(&id, "refs/heads/main", ZERO, &sha);
        let res = post(addrs[n % 2], "/hooks/site", &refs(&headers), &body);
        (id, res)
    };
    let mut accepted = Vec::new();
    for _ in 0..10 {
        let (id, res) = send("up");
        assert_eq!(res.status, 202, "{}", res.body);
        accepted.push(id);
    }
    cluster.stop();
    // Down: nothing is answered 202 (it could not be on disk), and the replicas say 503.
    let mut refused = 0;
    let socket = cluster.socket_dir().display().to_string();
    for _ in 0..10 {
        let (id, res) = send("down");
        assert_ne!(
            res.status, 202,
            "{id} was accepted while the database was down"
        );
        assert!(
            !res.body.contains(&socket) && !res.body.contains("PostgreSQL"),
            "the answer tells the sender about the database: {}",
            res.body
        );
        if res.status == 503 {
            refused += 1;
        }
    }
    assert_eq!(refused, 10);
    for addr in &addrs {
        assert_eq!(get(*addr, "/readyz").status, 503);
    }
    cluster.start();
    // Back: both replicas take deliveries again by themselves.
    for addr in &addrs {
        wait_for(
            "the replica to be ready again",
            Duration::from_secs(60),
            || (get(*addr, "/readyz").status == 200).then_some(()),
        );
    }
    wait_for(
        "deliveries to be accepted again",
        Duration::from_secs(60),
        || {
            let (id, res) = send("again");
            (res.status == 202).then(|| accepted.push(id))
        },
    );
    // Every delivery answered 202 is in the database.
    let recorded = cluster.psql(&db.name, "SELECT delivery FROM jobs ORDER BY id");
    let recorded: Vec<&str> = recorded.lines().collect();
    for id in &accepted {
        assert!(
            recorded.contains(&id.as_str()),
            "{id} was answered 202 but is not in the database"
        );
    }
    drop(daemons);
}
