use std::process::ExitCode;

fn main() -> ExitCode {
    irsa::cli::run()
}
