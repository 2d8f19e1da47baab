//! The `partner-gateway` binary: everything happens in [`partner_gateway::cli`].
#![forbid(unsafe_code)]

/// mimalloc instead of glibc's malloc: allocation and freeing were about a sixth of the CPU time
/// per request in the profile of the shedding benchmark (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    partner_gateway::cli::main()
}
