//! Runs queued jobs: claims the next runnable one from the store (one per hook, up to
//! `max_concurrent_jobs` in all), checks out its commit with `git`, runs its rule's
//! commands with `runner`, and records how it ended.

mod handle;
mod run;

pub use handle::WorkerHandle;
pub use run::{Worker, environment, resolve_ref};
