//! What an answer means for an outbox row (done, try again and when, give up, or the
//! target is gone) and how long to wait between attempts: exponential backoff with
//! jitter, never shorter than what the server asked for (`Retry-After`, GitHub's
//! rate-limit reset).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::http_client::Answer;
use crate::notify::forge_api::{self, ApiKind};

/// The wait after the first failed attempt (then doubled each time).
pub const FIRST_RETRY: Duration = Duration::from_secs(2);

/// The longest wait between two attempts of the schedule (a server may ask for more).
pub const MAX_RETRY: Duration = Duration::from_secs(15 * 60);

/// The most of an error answer's text kept in a row's `last_error`.
const MAX_ERROR: usize = 300;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Sent,
    /// Worth another try; `wait` is what the server asked for, if it did.
    Retry {
        wait: Option<Duration>,
        error: String,
    },
    /// Refused for good.
    Failed {
        error: String,
    },
    /// 410 Gone: the target no longer exists; it is disabled until the next reload.
    Gone {
        error: String,
    },
}

/// The wait before attempt `attempts + 1` after `attempts` failed ones, by the schedule:
/// [`FIRST_RETRY`] doubled per attempt, at most [`MAX_RETRY`], spread by ±25 % with
/// `jitter` (a value in 0..1) so that many rows failed together do not come back together.
pub fn backoff(attempts: u32, jitter: f64) -> Duration {
    let doubled = FIRST_RETRY
        .checked_mul(1 << attempts.saturating_sub(1).min(20))
        .unwrap_or(MAX_RETRY)
        .min(MAX_RETRY);
    doubled.mul_f64(0.75 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// A jitter value in 0..1 that differs from call to call (not for cryptography).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    #[expect(
        clippy::cast_precision_loss,
        reason = "53 bits of randomness are plenty"
    )]
    let x = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    x
}

/// What `answer` means. `api` is the forge's API for commit statuses (whose error bodies
/// and rate limits it knows), `None` for chats and webhooks.
pub fn classify(api: Option<ApiKind>, answer: &Answer, now: SystemTime) -> Verdict {
    let status = answer.status;
    if (200..300).contains(&status) {
        return Verdict::Sent;
    }
    if let Some(kind) = api
        && forge_api::already_done(kind, status, &answer.body)
    {
        return Verdict::Sent;
    }
    let error = describe(api, answer);
    if let Some(wait) = rate_limited(answer, now) {
        return Verdict::Retry {
            wait: Some(wait),
            error,
        };
    }
    match status {
        408 | 409 | 425 | 429 | 500..=599 => Verdict::Retry {
            wait: answer.retry_after.map(Duration::from_secs),
            error,
        },
        410 => Verdict::Gone { error },
        300..=399 => Verdict::Failed {
            error: format!("answered {status}, a redirect, which is never followed: check the URL"),
        },
        _ => Verdict::Failed { error },
    }
}

/// GitHub's rate limits: out of requests (`x-ratelimit-remaining: 0`, wait until
/// `x-ratelimit-reset`), or a secondary limit (403 or 429 with `Retry-After`).
fn rate_limited(answer: &Answer, now: SystemTime) -> Option<Duration> {
    if !matches!(answer.status, 403 | 429) {
        return None;
    }
    if answer.header("x-ratelimit-remaining") == Some("0") {
        let reset = answer
            .header("x-ratelimit-reset")?
            .trim()
            .parse::<u64>()
            .ok()?;
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    answer.retry_after.map(Duration::from_secs)
}

/// "answered 422: Validation Failed (…)", on one line, cut; for GitHub, with the
/// permissions the token needs when GitHub names them.
fn describe(api: Option<ApiKind>, answer: &Answer) -> String {
    let message = match api {
        Some(kind) => forge_api::error_message(kind, &answer.body),
        None => answer
            .body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_ERROR)
            .collect::<String>()
            .trim()
            .to_owned(),
    };
    let mut out = format!("answered {}", answer.status);
    if !message.is_empty() {
        out.push_str(": ");
        out.push_str(&message);
    }
    if let Some(needs) = answer.header("x-accepted-github-permissions") {
        let needs: String = needs
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        out.push_str(" (the token needs: ");
        out.push_str(&needs);
        out.push(')');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        Answer {
            status,
            retry_after: headers
                .iter()
                .find(|(k, _)| *k == "retry-after")
                .and_then(|(_, v)| v.parse().ok()),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_owned(),
        }
    }

    #[test]
    fn the_schedule_doubles_from_a_few_seconds_to_its_cap() {
        assert_eq!(backoff(1, 0.5), FIRST_RETRY);
        assert_eq!(backoff(2, 0.5), FIRST_RETRY * 2);
        assert_eq!(backoff(5, 0.5), FIRST_RETRY * 16);
        assert_eq!(backoff(30, 0.5), MAX_RETRY);
        assert_eq!(backoff(u32::MAX, 0.5), MAX_RETRY);
        assert_eq!(backoff(1, 0.0), FIRST_RETRY.mul_f64(0.75));
        assert_eq!(backoff(1, 1.0), FIRST_RETRY.mul_f64(1.25));
        let spread: Vec<f64> = (0..50).map(|_| jitter()).collect();
        assert!(spread.iter().all(|j| (0.0..1.0).contains(j)));
        assert!(
            spread.windows(2).any(|w| (w[0] - w[1]).abs() > 1e-9),
            "jitter varies"
        );
    }

    #[test]
    fn answers_are_done_retried_failed_or_gone() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let github = Some(ApiKind::Github);
        assert_eq!(
            classify(github, &answer(201, &[], "{}"), now),
            Verdict::Sent
        );
        for status in [408, 409, 429, 500, 502, 503] {
            assert!(
                matches!(
                    classify(None, &answer(status, &[], ""), now),
                    Verdict::Retry { wait: None, .. }
                ),
                "{status}"
            );
        }
        assert_eq!(
            classify(None, &answer(503, &[("retry-after", "120")], "busy"), now),
            Verdict::Retry {
                wait: Some(Duration::from_secs(120)),
                error: "answered 503: busy".into()
            }
        );
        assert!(matches!(
            classify(None, &answer(410, &[], "gone"), now),
            Verdict::Gone { .. }
        ));
        assert!(matches!(
            classify(
                None,
                &answer(302, &[("location", "https://elsewhere/")], ""),
                now
            ),
            Verdict::Failed { .. }
        ));
        let refused = classify(
            github,
            &answer(
                403,
                &[("x-accepted-github-permissions", "statuses=write")],
                r#"{"message":"Resource not accessible by integration"}"#,
            ),
            now,
        );
        let Verdict::Failed { error } = refused else {
            panic!("{refused:?}")
        };
        assert!(
            error.starts_with("answered 403: Resource not accessible"),
            "{error}"
        );
        assert!(
            error.ends_with("(the token needs: statuses=write)"),
            "{error}"
        );
    }

    #[test]
    fn github_rate_limits_wait_for_their_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let limited = answer(
            403,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1000090"),
            ],
            r#"{"message":"API rate limit exceeded"}"#,
        );
        assert!(matches!(
            classify(Some(ApiKind::Github), &limited, now),
            Verdict::Retry { wait: Some(w), .. } if w == Duration::from_secs(90)
        ));
        let secondary = answer(403, &[("retry-after", "60")], "{}");
        assert!(matches!(
            classify(Some(ApiKind::Github), &secondary, now),
            Verdict::Retry { wait: Some(w), .. } if w == Duration::from_secs(60)
        ));
    }

    #[test]
    fn gitlab_answering_that_the_state_is_already_there_is_done() {
        let now = SystemTime::now();
        let body = r#"{"message":"Cannot transition status via :run from :running (Reason(s): Status cannot transition via \"run\")"}"#;
        assert_eq!(
            classify(Some(ApiKind::Gitlab), &answer(400, &[], body), now),
            Verdict::Sent
        );
        assert!(matches!(
            classify(
                Some(ApiKind::Gitlab),
                &answer(400, &[], r#"{"message":"bad"}"#),
                now
            ),
            Verdict::Failed { .. }
        ));
    }
}
