//! One delivery from bytes to decision: verify the signature, read the payload, route each
//! push to a rule. Pure (the clock is passed in): the server does the I/O around it.

use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::{Hook, Matching, QueueMode};
use crate::event::{DeliveryId, PushEvent, RefName, Sha};
use crate::forge::{self, DeliveryKind, ParseError};
use crate::routing::{NotDeployed, Route, route};
use crate::verify::{self, Headers, Rejection, to_hex};

/// What a delivery asks for, once it is known to be authentic and readable.
#[derive(Debug)]
pub enum Decision {
    /// The forge testing the hook.
    Pong { delivery: Option<DeliveryId> },
    /// Nothing to run, and why (a non-push event, a deleted branch, no matching rule).
    Ignore {
        delivery: Option<DeliveryId>,
        /// The forge's name for the event (`push` when no push matched a rule).
        event: String,
        /// The first push's ref and new commit, if it was a push.
        pushed: Option<(RefName, Sha)>,
        reason: String,
    },
    /// Jobs to queue.
    Deploy(Deploy),
}

/// A delivery with jobs to queue. `replay_keys` identify it: if the store has seen any of
/// them for this hook before, it is a replay and must not run again.
#[derive(Debug)]
pub struct Deploy {
    pub delivery: Option<DeliveryId>,
    pub replay_keys: Vec<String>,
    pub jobs: Vec<JobSpec>,
    /// Pushes in the same delivery that matched no rule, and why.
    pub skipped: Vec<String>,
    /// For each push that deploys, the rules that do not deploy it, and why.
    pub not_deployed: Vec<(RefName, NotDeployed)>,
}

/// One push to deploy with one rule of the hook.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The rule's index, and its key (name or index).
    pub rule: usize,
    pub rule_key: String,
    /// The hook runs jobs of different rules at the same time (`match = "all"`).
    pub per_rule: bool,
    pub queue: QueueMode,
    pub event: PushEvent,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Not authentic: 401.
    #[error(transparent)]
    Unauthorized(#[from] Rejection),
    /// Authentic but unreadable: 400.
    #[error(transparent)]
    BadRequest(#[from] ParseError),
}

pub fn decide(
    hook: &Hook,
    headers: &dyn Headers,
    body: &[u8],
    now: SystemTime,
) -> Result<Decision, IntakeError> {
    let verified = verify::verify(&hook.auth, headers, body, now)?;
    let delivery = forge::parse(hook.forge, headers, &verified)?;
    let events = match delivery.kind {
        DeliveryKind::Ping => {
            return Ok(Decision::Pong {
                delivery: delivery.id,
            });
        }
        DeliveryKind::Other(name) => {
            return Ok(Decision::Ignore {
                delivery: delivery.id,
                reason: format!("{name:?} is not a push event; only pushes deploy"),
                event: name,
                pushed: None,
            });
        }
        DeliveryKind::Push(events) => events,
    };
    let pushed = events.first().map(|e| (e.git_ref.clone(), e.after.clone()));
    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    let mut not_deployed = Vec::new();
    for event in events {
        match route(hook, &event) {
            Route::Deploy { rules, others } => {
                not_deployed.extend(others.into_iter().map(|o| (event.git_ref.clone(), o)));
                for rule in rules {
                    jobs.push(JobSpec {
                        rule: rule.index,
                        rule_key: rule.key(),
                        per_rule: hook.matching == Matching::All,
                        queue: rule.queue,
                        event: event.clone(),
                    });
                }
            }
            Route::Ignore(why) => skipped.push(why.to_string()),
        }
    }
    if jobs.is_empty() {
        let reason = if skipped.is_empty() {
            "the delivery updates no branch or tag".to_owned()
        } else {
            skipped.join("; ")
        };
        return Ok(Decision::Ignore {
            delivery: delivery.id,
            event: "push".to_owned(),
            pushed,
            reason,
        });
    }
    Ok(Decision::Deploy(Deploy {
        replay_keys: replay_keys(
            delivery.id.as_ref(),
            verified.signed_id().is_some(),
            verified.signed(),
        ),
        delivery: delivery.id,
        jobs,
        skipped,
        not_deployed,
    }))
}

/// The delivery id, and (unless the signature covers the id and a timestamp, as in
/// Standard Webhooks) a digest of the body: forges that sign only the body leave the
/// delivery id header unprotected, so a captured push could be replayed under a fresh id
/// to roll a deployment back. The same signed body is never accepted twice.
fn replay_keys(id: Option<&DeliveryId>, id_is_signed: bool, body: &[u8]) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    if let Some(id) = id {
        keys.push(format!("id:{id}"));
    }
    if !id_is_signed {
        keys.push(format!("body:{}", to_hex(&Sha256::digest(body))));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_keys_cover_unsigned_ids_with_the_body() {
        let id = DeliveryId::parse("d1").unwrap();
        let k = replay_keys(Some(&id), false, b"{}");
        assert_eq!(k.len(), 2);
        assert_eq!(k[0], "id:d1");
        assert!(
            k[1].starts_with(
                "body:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            )
        );
        assert_eq!(
            replay_keys(Some(&id), true, b"{}"),
            vec!["id:d1".to_owned()]
        );
    }
}
