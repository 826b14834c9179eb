use std::process::ExitCode;

// mimalloc rather than glibc's malloc: planning is allocation-bound (JSON
// trees of policy documents, tags, addresses), and glibc's malloc/free plus
// the page faults of its arenas were a third of a 10,000-binding plan
// (BENCHMARKS.md, "Planning at scale").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    irsa::cli::run()
}
