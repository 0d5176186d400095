//! The integration tests: one binary, real servers bound to 127.0.0.1:0, requests sent as
//! raw HTTP over TCP, signatures computed by openssl (an independent signer).

mod fake;
mod gitrepo;
mod helpers;
#[path = "../support/pg_cluster.rs"]
mod pg_cluster;

mod assets;
mod browser;
mod check;
mod controls;
mod deliveries;
mod escape;
mod faults;
mod fuzz_regressions;
mod jobs;
mod lifecycle;
mod load;
mod monorepo;
mod notify;
mod operate;
mod pg_cluster_smoke;
mod properties;
mod rejections;
mod replay;
mod replicas;
mod runner;
mod serve;
mod steps;
mod trigger;
mod ui;
