//! The one integration-test binary: the CLI end to end.

mod cli;
mod plans;
mod support;
