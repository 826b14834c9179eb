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
//!
//! The layers, each importing only those below it:
//!
//! - [`model`]: addresses, the desired and observed models, canonical policy
//!   documents, quotas, fingerprints, and the add-on presets (their documents
//!   are data under `presets/`, embedded). Imports nothing of ours.
//! - [`config`] (stack file → desired), [`graph`] (the dependency DAG),
//!   [`plan`] (the pure planner, its security review in
//!   [`plan::review`], and the plan's wire format), [`render`] (text,
//!   Markdown, JSON from the plan).
//! - [`cluster`] (the kube connection: client, request counter, retried
//!   reads, field manager), and the AWS client in [`refresh::aws`].
//! - [`refresh`] (live reads of IAM and the cluster, snapshots), [`store`]
//!   (sled: snapshots, saved plans, journal), [`lock`] (the Lease).
//! - [`import`]: the stack file `irsa import` writes for what exists, from
//!   what refresh's readers found (pure, like the planner it mirrors).
//! - [`apply`]: carrying changes out ([`apply::iam`], [`apply::kube`], the
//!   parallel walk) and the whole apply workflow ([`apply::workflow`]: lock,
//!   store, refresh, saved-plan check, journal, walk).
//! - [`doctor`]: `irsa doctor`: live reads into facts ([`doctor::read`]),
//!   pure checks (trust as STS evaluates it, token claims, pods), a report
//!   drawn as text, Markdown or JSON.
//! - [`cli`]: arguments, confirmation, rendering, and errors mapped to exit
//!   codes once, at the edge.

pub mod apply;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod doctor;
pub mod graph;
pub mod import;
pub mod lock;
pub mod model;
pub mod plan;
pub mod refresh;
pub mod render;
pub mod store;
