//! irsa: a Terraform-style reconciler for EKS pod permissions (IAM Roles for
//! Service Accounts).
//!
//! Three nouns, one direction: *desired* (the stack's TOML file, loaded by
//! [`config`]), *observed* (what refresh read, or a snapshot file, in
//! [`model::observed`]) and the *plan* ([`plan`]), a pure function of the two.
//! The plan is one serialisable data model; the JSON, text and Markdown
//! renderers in [`render`] all read it, so they cannot disagree.
//!
//! Nothing in `model`, `graph`, `plan` or `render` does I/O: that is what makes
//! the planner table-testable and lets `--observed SNAPSHOT` plan a stack with
//! no credentials at all.

pub mod apply;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod graph;
pub mod lock;
pub mod model;
pub mod plan;
pub mod refresh;
pub mod render;
pub mod store;
