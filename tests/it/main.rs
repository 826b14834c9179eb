//! The one integration-test binary: the CLI end to end.

mod aws;
mod bad_files;
mod bench;
mod cli;
mod cluster;
mod clusters;
mod doctor;
mod editor;
mod examples;
mod faultproxy;
mod faults;
mod import;
mod kubeapi;
mod plans;
mod presets;
mod progress;
mod readme;
mod rollout;
mod saved;
mod support;
mod world;
