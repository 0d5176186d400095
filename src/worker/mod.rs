//! Runs queued jobs: claims the next runnable one from the store under a lease (one per
//! hook, up to `max_concurrent_jobs` in all), checks out its commit, runs its rule's
//! commands, renews the lease while they run, and records how the job ended. Its
//! checkout and runner are [`Parts`], so tests drive it with fakes.

mod handle;
mod parts;
mod run;
mod secrets;
#[cfg(test)]
mod tests;

pub use handle::WorkerHandle;
pub use parts::{Checkout, Parts, Processes, Run, Timing};
pub use run::{Step, Worker, environment, git_cache, resolve_ref};
