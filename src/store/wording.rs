//! What both backends write the same way: the reasons recorded in events and delivery
//! records, the encodings of a few columns, the transaction's clock, and the bounds a
//! prune keeps above. Kept here so that a job's history reads (and is pruned) the same
//! whichever database holds it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::types::{EventKind, Job, JobId, JobState, NewJob, Origin, Prior};
use crate::event::ChangedPaths;

/// The time of one transaction, in the two units the schemas use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Now {
    pub(super) secs: i64,
    pub(super) ms: i64,
}

impl Now {
    pub(super) fn system() -> Now {
        let ms = ms(SystemTime::now());
        Now {
            secs: ms.div_euclid(1000),
            ms,
        }
    }
}

/// Unix milliseconds.
pub(super) fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(super) fn from_secs(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

pub(super) fn from_ms(m: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(m).unwrap_or(0))
}

/// What runs one at a time: the hook, or (`match = "all"`) the hook's rule.
pub(super) fn lane(hook: &str, job: &NewJob) -> String {
    if job.per_rule {
        format!("{hook}\u{1f}{}", job.rule_key)
    } else {
        hook.to_owned()
    }
}

/// The changed paths column: a JSON list, or NULL when the forge listed none.
pub(super) fn paths_column(paths: &ChangedPaths) -> Option<String> {
    match paths {
        ChangedPaths::Known(list) => Some(serde_json::to_string(list).unwrap_or_default()),
        ChangedPaths::Unknown => None,
    }
}

pub(super) fn paths_from_column(column: Option<&str>) -> Result<ChangedPaths, ()> {
    match column {
        None => Ok(ChangedPaths::Unknown),
        Some(list) => serde_json::from_str(list)
            .map(ChangedPaths::Known)
            .map_err(|_| ()),
    }
}

/// The `queued` event's reason.
pub(super) fn queued(job: &NewJob) -> String {
    let e = &job.event;
    match (&job.reason, job.origin) {
        (Some(reason), _) => reason.clone(),
        (None, Origin::Push) => format!("push to {} at {}", e.git_ref, e.after),
        (None, Origin::Manual { force: false }) => {
            format!("deploy of {} at {} by hand", e.git_ref, e.after)
        }
        (None, Origin::Manual { force: true }) => format!(
            "deploy of {} at {} by hand, forced (not checked against the ref)",
            e.git_ref, e.after
        ),
    }
}

pub(super) fn superseded_by_later(later: i64) -> String {
    format!("superseded by job {later}, a later push that arrived first")
}

pub(super) fn superseded_by(newer: JobId) -> String {
    format!("superseded by job {newer}")
}

pub(super) fn started_by(owner: &impl std::fmt::Display) -> String {
    format!("started by {owner}")
}

pub(super) const CANCELLED_BEFORE_START: &str = "cancelled before it started";

/// How a running job whose lease ran out ends, and why.
pub(super) fn lapsed(j: &Job) -> (JobState, EventKind, String) {
    let who = j.owner.as_ref().map_or_else(
        || "the daemon that ran it".to_owned(),
        |o| format!("{o}, which ran it,"),
    );
    // An operator asked to cancel it: it ends cancelled, not interrupted (and is not run
    // again), though its owner was gone before it could stop it.
    if j.cancel_requested {
        (
            JobState::Cancelled,
            EventKind::Cancelled,
            format!("cancelled: {who} stopped renewing its lease before it could stop the job"),
        )
    } else if j.owner.is_some() {
        (
            JobState::Interrupted,
            EventKind::Interrupted,
            format!(
                "interrupted: {who} stopped renewing its lease (it stopped or lost the database)"
            ),
        )
    } else {
        (
            JobState::Interrupted,
            EventKind::Interrupted,
            "interrupted: the daemon stopped while this job ran".to_owned(),
        )
    }
}

pub(super) fn retry_detail(of: JobId) -> String {
    format!("retry of interrupted job {of}")
}

pub(super) fn requeued_as(retry: JobId) -> String {
    format!("queued again as job {retry}")
}

/// Why a delivery was answered as a duplicate.
pub(super) fn duplicate(prior: &Prior) -> String {
    let job = prior.job.map(|j| format!(" (job {j})")).unwrap_or_default();
    if prior.same_id {
        return format!("this delivery id was already accepted{job}");
    }
    match &prior.delivery {
        Some(d) => format!("the same push was already accepted as delivery {d:?}{job}"),
        None => format!("the same push was already accepted{job}"),
    }
}

pub(super) fn queue_full(waiting: usize) -> String {
    format!(
        "{waiting} jobs already wait for this hook (max_queued); nothing was queued, send it again later"
    )
}

/// A queued delivery's record: its jobs, and what the other rules said (`note`).
pub(super) fn queued_jobs(ids: &[JobId], note: Option<&str>) -> String {
    let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let mut why = match list.as_slice() {
        [one] => format!("queued job {one}"),
        many => format!("queued jobs {}", many.join(", ")),
    };
    if let Some(note) = note {
        why.push_str("; ");
        why.push_str(note);
    }
    why
}

/// A delivery record's job list column: ids, comma-separated.
pub(super) fn job_list(ids: &[JobId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub(super) fn job_ids(s: Option<&str>) -> Result<Vec<JobId>, std::num::ParseIntError> {
    s.unwrap_or("")
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map(JobId))
        .collect()
}

pub(super) fn held(reason: &str) -> String {
    if reason.is_empty() {
        "held: the hook is paused".to_owned()
    } else {
        format!("held: the hook is paused ({reason})")
    }
}

pub(super) const RESUMED: &str = "the hook was resumed";

/// `,started,failed,`: every kind between commas, so that a search for `,kind,` matches
/// whole names only.
pub(super) fn kinds(on: &[EventKind]) -> String {
    let mut s = String::from(",");
    for k in on {
        s.push_str(k.as_str());
        s.push(',');
    }
    s
}

pub(super) fn kind_pattern(kind: EventKind) -> String {
    format!(",{},", kind.as_str())
}

/// 32 fresh random bytes, for `Backend::secret`.
pub(super) fn fresh_secret() -> std::io::Result<Vec<u8>> {
    let mut fresh = vec![0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut fresh)?;
    Ok(fresh)
}

/// A hook's finished jobs with an id below this one are past the `keep` newest, given
/// the newest ids of each finished state (`kept`, up to `keep` each, in any order).
pub(super) fn jobs_kept_above(mut kept: Vec<i64>, keep: i64) -> i64 {
    kept.sort_unstable_by(|a, b| b.cmp(a));
    match usize::try_from(keep) {
        Ok(0) => i64::MAX,
        Ok(n) => kept.get(n - 1).copied().unwrap_or(i64::MIN),
        Err(_) => i64::MIN,
    }
}

/// A hook's delivery records with an id up to this one are past the `keep` newest,
/// given the id of its `keep`-th newest record (`None`: it has fewer).
pub(super) fn records_past(keep: i64, keep_th_newest: Option<i64>) -> i64 {
    if keep <= 0 {
        i64::MAX
    } else {
        keep_th_newest.map_or(i64::MIN, |id| id - 1)
    }
}

/// Replay keys are kept a year, so that an old push cannot come back soon; delivery
/// records go as jobs do. The cutoff for replay keys, in unix seconds.
pub(super) fn replay_cutoff(cutoff: i64, now: Now) -> i64 {
    cutoff.min(now.secs - 365 * 86_400)
}
