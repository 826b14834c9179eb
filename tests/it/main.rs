//! The one integration-test binary: the CLI end to end.

mod bad_files;
mod cli;
mod plans;
mod support;
