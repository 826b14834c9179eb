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

#[cfg(all(not(feature = "system-alloc"), target_os = "linux"))]
unsafe extern "C" {
    /// prctl(2), for PR_SET_THP_DISABLE.
    fn prctl(
        option: std::ffi::c_int,
        arg2: std::ffi::c_ulong,
        arg3: std::ffi::c_ulong,
        arg4: std::ffi::c_ulong,
        arg5: std::ffi::c_ulong,
    ) -> std::ffi::c_int;
}

/// PR_SET_THP_DISABLE in linux/prctl.h.
#[cfg(all(not(feature = "system-alloc"), target_os = "linux"))]
const PR_SET_THP_DISABLE: std::ffi::c_int = 41;

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
    // No transparent huge pages for the heap: mimalloc asks for them (the
    // kernel's `madvise` mode), and then a 2 MiB page is resident as soon as
    // one byte of it is used; the heap of a plan is many half-used pages (a
    // 10,000-binding validate peaked at 125 MiB instead of 112 MiB, a plan
    // from empty at 147 MiB instead of 142 MiB, in the same time).
    // mimalloc's own option is read when its first arena is made, before
    // main; the process flag holds for every page faulted in from here on.
    // Respect a user's MIMALLOC_ALLOW_THP.
    #[cfg(all(not(feature = "system-alloc"), target_os = "linux"))]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: prctl with an integer flag and no pointers; a kernel
        // without the option returns EINVAL, which changes nothing.
        unsafe { prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
    irsa::cli::run()
}
