//! `ordercenter`: one binary for the server, the workers and the operator tooling; the
//! library (`src/lib.rs`) holds all of it.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a create allocates a few hundred small objects (JSON,
/// SQL arguments, rows) across two worker threads, and glibc's arena locking and free-list
/// consolidation took about a fifth of the server's CPU (loadtest/PROFILE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ordercenter::cli::main()
}
