use std::process::ExitCode;

// mimalloc rather than glibc's malloc: planning is allocation-bound (JSON
// trees of policy documents, tags, addresses), and glibc's malloc/free plus
// the page faults of its arenas were a third of a 10,000-binding plan
// (BENCHMARKS.md, "Planning at scale"). The `system-alloc` feature builds
// with the system allocator instead, for heap profilers (heaptrack) that see
// only malloc: `cargo build --release --features system-alloc`.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(not(feature = "system-alloc"))]
unsafe extern "C" {
    /// mimalloc's `mi_option_set` (linked from the mimalloc crate's static library).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (what the
/// mimalloc crate builds by default; see its `c_src/mimalloc/v3/include/mimalloc.h`).
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> ExitCode {
    // Hand freed memory back at once instead of after 10 ms: loading a large
    // stack frees the TOML parse tree and every document's scratch tree
    // while it allocates the model, and the delay kept both resident (a
    // 10,000-binding validate peaked at 179 MB instead of 134 MB; no
    // measurable cost in time). Respect a user's MIMALLOC_PURGE_DELAY.
    #[cfg(not(feature = "system-alloc"))]
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of an integer option, called before any
        // other thread exists; an unknown option index is ignored by mimalloc.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
    irsa::cli::run()
}
