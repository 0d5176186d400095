//! Prometheus metrics: counters and histograms kept in memory, rendered as the text
//! exposition format for `GET /metrics`. Hand-written (a few dozen lines) rather than a
//! metrics crate, since the set is small and fixed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket bounds in seconds, from a fast local fetch to a long deploy.
const BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// Label values, in the order of the metric's label names.
type Labels = Vec<String>;

#[derive(Default)]
struct Inner {
    counters: BTreeMap<(&'static str, Labels), u64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

/// The daemon's metrics. One per process, shared by the server and the worker.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Help text and label names of each metric.
const METRICS: &[(&str, &str, &str, &[&str])] = &[
    (
        "deployhook_deliveries_total",
        "counter",
        "Deliveries received, by hook, forge and outcome.",
        &["hook", "forge", "outcome"],
    ),
    (
        "deployhook_signature_failures_total",
        "counter",
        "Deliveries refused as not authentic (401), by hook.",
        &["hook"],
    ),
    (
        "deployhook_jobs_finished_total",
        "counter",
        "Jobs that ended, by hook and final state.",
        &["hook", "state"],
    ),
    (
        "deployhook_config_reloads_total",
        "counter",
        "Config reloads, by result (ok or failed).",
        &["result"],
    ),
    (
        "deployhook_job_duration_seconds",
        "histogram",
        "How long jobs ran, from start to end.",
        &["hook"],
    ),
    (
        "deployhook_notifications_total",
        "counter",
        "Commit statuses and notifications that were sent or given up on, by target, kind and result.",
        &["target", "kind", "result"],
    ),
    (
        "deployhook_git_fetch_duration_seconds",
        "histogram",
        "How long fetching and checking out took.",
        &["hook"],
    ),
];

fn labels(values: &[&str]) -> Labels {
    values.iter().map(|v| (*v).to_owned()).collect()
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn delivery(&self, hook: &str, forge: &str, outcome: &str) {
        *self
            .lock()
            .counters
            .entry((
                "deployhook_deliveries_total",
                labels(&[hook, forge, outcome]),
            ))
            .or_default() += 1;
    }

    pub fn signature_failure(&self, hook: &str) {
        *self
            .lock()
            .counters
            .entry(("deployhook_signature_failures_total", labels(&[hook])))
            .or_default() += 1;
    }

    pub fn job_finished(&self, hook: &str, state: &str, ran: Duration) {
        let mut inner = self.lock();
        *inner
            .counters
            .entry(("deployhook_jobs_finished_total", labels(&[hook, state])))
            .or_default() += 1;
        inner
            .histograms
            .entry(("deployhook_job_duration_seconds", labels(&[hook])))
            .or_default()
            .observe(ran.as_secs_f64());
    }

    pub fn git_fetch(&self, hook: &str, took: Duration) {
        self.lock()
            .histograms
            .entry(("deployhook_git_fetch_duration_seconds", labels(&[hook])))
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// A commit status or notification to `target` (of `kind`: `github`, `slack`...)
    /// was sent (`sent`) or given up on (`failed`).
    pub fn notification(&self, target: &str, kind: &str, sent: bool) {
        *self
            .lock()
            .counters
            .entry((
                "deployhook_notifications_total",
                labels(&[target, kind, if sent { "sent" } else { "failed" }]),
            ))
            .or_default() += 1;
    }

    pub fn config_reload(&self, ok: bool) {
        *self
            .lock()
            .counters
            .entry((
                "deployhook_config_reloads_total",
                labels(&[if ok { "ok" } else { "failed" }]),
            ))
            .or_default() += 1;
    }

    /// The text exposition format. The gauges are read from the store at scrape time,
    /// so they are right across restarts.
    pub fn render(&self, gauges: &Gauges) -> String {
        let Gauges {
            jobs_by_state,
            queue_depth,
            outbox_pending,
            outbox_oldest,
            paused,
            replicas_alive,
        } = gauges;
        let inner = self.lock();
        let mut out = String::new();
        for (name, kind, help, names) in METRICS {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if *kind == "counter" {
                for ((n, values), v) in &inner.counters {
                    if n == name {
                        let _ = writeln!(out, "{name}{} {v}", render_labels(names, values, None));
                    }
                }
            } else {
                for ((n, values), h) in &inner.histograms {
                    if n != name {
                        continue;
                    }
                    for (bound, count) in BUCKETS.iter().zip(h.counts) {
                        let le = format!("{bound}");
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {count}",
                            render_labels(names, values, Some(&le))
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_bucket{} {}",
                        render_labels(names, values, Some("+Inf")),
                        h.count
                    );
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        render_labels(names, values, None),
                        h.sum
                    );
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        render_labels(names, values, None),
                        h.count
                    );
                }
            }
        }
        out.push_str(
            "# HELP deployhook_jobs Jobs in the store, by state.\n# TYPE deployhook_jobs gauge\n",
        );
        for (state, n) in jobs_by_state {
            let _ = writeln!(out, "deployhook_jobs{{state=\"{}\"}} {n}", escape(state));
        }
        let _ = writeln!(
            out,
            "# HELP deployhook_queue_depth Jobs waiting to run.\n# TYPE deployhook_queue_depth gauge\ndeployhook_queue_depth {queue_depth}"
        );
        let _ = writeln!(
            out,
            "# HELP deployhook_outbox_pending Commit statuses and notifications waiting to be sent.\n# TYPE deployhook_outbox_pending gauge\ndeployhook_outbox_pending {outbox_pending}"
        );
        let _ = writeln!(
            out,
            "# HELP deployhook_outbox_oldest_pending_seconds How long the oldest of them has waited (0: none waits).\n# TYPE deployhook_outbox_oldest_pending_seconds gauge\ndeployhook_outbox_oldest_pending_seconds {:.3}",
            outbox_oldest.as_secs_f64()
        );
        out.push_str(
            "# HELP deployhook_hook_paused Hooks an operator paused (their jobs are held).\n# TYPE deployhook_hook_paused gauge\n",
        );
        for hook in paused {
            let _ = writeln!(out, "deployhook_hook_paused{{hook=\"{}\"}} 1", escape(hook));
        }
        let _ = writeln!(
            out,
            "# HELP deployhook_replicas_alive Replicas on this store that checked in within a lease.\n# TYPE deployhook_replicas_alive gauge\ndeployhook_replicas_alive {replicas_alive}"
        );
        let _ = writeln!(
            out,
            "# HELP deployhook_build_info The running version.\n# TYPE deployhook_build_info gauge\ndeployhook_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// What `/metrics` reads from the store at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    pub jobs_by_state: Vec<(String, i64)>,
    pub queue_depth: i64,
    pub outbox_pending: u64,
    /// The age of the oldest pending outbox row.
    pub outbox_oldest: Duration,
    /// Hooks an operator paused.
    pub paused: Vec<String>,
    /// Replicas that checked in within a lease (1 on SQLite).
    pub replicas_alive: u64,
}

fn render_labels(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut parts: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    format!("{{{}}}", parts.join(","))
}

/// Label values may hold anything a config or payload had; escape as the format says.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let m = Metrics::default();
        m.delivery("site", "github", "queued");
        m.delivery("site", "github", "queued");
        m.signature_failure("we\"ird");
        m.job_finished("site", "succeeded", Duration::from_millis(300));
        m.notification("status", "github", true);
        let text = m.render(&Gauges {
            jobs_by_state: vec![("queued".into(), 2)],
            queue_depth: 2,
            outbox_pending: 3,
            outbox_oldest: Duration::from_millis(1500),
            paused: vec!["site".into()],
            replicas_alive: 2,
        });
        assert!(text.contains("deployhook_replicas_alive 2\n"), "{text}");
        assert!(
            text.contains("deployhook_hook_paused{hook=\"site\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "deployhook_notifications_total{target=\"status\",kind=\"github\",result=\"sent\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains("deployhook_outbox_pending 3\n"), "{text}");
        assert!(
            text.contains("deployhook_outbox_oldest_pending_seconds 1.500\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "deployhook_deliveries_total{hook=\"site\",forge=\"github\",outcome=\"queued\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("deployhook_signature_failures_total{hook=\"we\\\"ird\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("deployhook_job_duration_seconds_bucket{hook=\"site\",le=\"0.25\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("deployhook_job_duration_seconds_bucket{hook=\"site\",le=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("deployhook_job_duration_seconds_count{hook=\"site\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("deployhook_jobs{state=\"queued\"} 2\n"));
        assert!(text.contains("deployhook_queue_depth 2\n"));
        assert!(text.contains("deployhook_build_info{version=\""));
    }
}
