//! deployhook: a GitOps deploy daemon. A forge's push webhook is verified, normalized
//! into a [`event::PushEvent`], matched against the rules in hooks.toml and recorded as a
//! durable job.
//!
//! # Layout
//!
//! Data flows one way through these modules:
//!
//! - [`config`]: hooks.toml → validated [`config::Config`] (or every problem as `file:line:col`).
//! - [`verify`]: proves a delivery's signature, per forge, before anything else is read.
//! - [`forge`]: reads a verified body into a [`forge::Delivery`] of push events.
//! - [`routing`]: picks the first rule of a hook that matches a push event.
//! - [`access`]: who may deliver (`allow_from`, trusted proxies' `X-Forwarded-For`).
//! - [`intake`]: ties verify → forge → routing together into one decision per delivery.
//! - [`store`]: the durable state behind one seam (jobs, leases, job events, delivery
//!   records, replay keys); SQLite embedded.
//! - [`joblog`]: a job's log file: written by the runner and worker, read by the API.
//! - [`server`]: the actix-web HTTP front; the only module of the library that knows actix.
//! - [`git`]: fetches with git2 into a cache and checks out the exact pushed commit.
//! - [`runner`]: runs a job's commands as sandboxed child processes; the only spawner.
//! - [`worker`]: claims queued jobs under a lease and drives git and runner for each.
//! - [`tls`]: loads the HTTPS certificate and swaps it on reload (rustls).
//! - [`wipe`]: empties a directory a command wrote, never following a link.
//! - [`metrics`]: Prometheus counters and histograms for `/metrics`.
//! - [`sd_notify`]: tells systemd when the daemon is ready, reloading or stopping.
//! - [`reload`]: re-reads hooks.toml on SIGHUP, `POST /api/reload` or a file change.
//! - [`sign`]: the headers a forge would send, for testing a hook by hand.
//! - [`cli`]: command-line definition; `main.rs` only dispatches.
//! - [`assets`]: generates the man page, shell completions and hooks.toml JSON Schema.
//! - [`ctl`]: the CLI commands that talk to a running daemon's API.
//! - [`explain`]: why a push did or did not deploy, rule by rule (`deployhook explain`).
//! - [`api_token`]: the API token the daemon makes when the config names none, and how
//!   the CLI finds it.
//! - [`trigger`]: `deployhook trigger`, a CI job's signed push and wait for its result.
//! - [`status_link`]: the per-delivery capability link a sender reads its jobs through.
//! - [`http_client`]: outbound HTTP (ureq, rustls); the only module that makes requests.
//! - [`notify`]: commit statuses, chat messages and signed webhooks, sent from the outbox.

pub mod access;
pub mod api_token;
pub mod assets;
pub mod cli;
pub mod config;
pub mod ctl;
pub mod event;
pub mod explain;
pub mod forge;
pub mod git;
pub mod http_client;
pub mod intake;
pub mod joblog;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod routing;
pub mod runner;
pub mod sd_notify;
pub mod secret;
pub mod server;
pub mod sign;
pub mod status_link;
pub mod store;
pub mod tls;
pub mod trigger;
pub mod verify;
pub mod wipe;
pub mod worker;
