//! Helpers shared by the integration tests.

use std::process::Command;

/// Runs the built `irsa` binary with `args` from the crate root, in a cleared
/// environment (only `PATH` kept, `NO_COLOR=1` set) so that neither the
/// developer's shell nor CI changes what it prints.
///
/// Returns the exit code (-1 if a signal killed it), stdout and stderr.
pub fn run_irsa(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_irsa"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR")).env_clear().env("NO_COLOR", "1");
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", env!("CARGO_BIN_EXE_irsa")));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
