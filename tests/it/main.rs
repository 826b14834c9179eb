//! irsa's integration tests: one test binary, one module per area.

mod bad_files;
mod support;
