//! The `partner-gateway` binary: everything happens in [`partner_gateway::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    partner_gateway::cli::main()
}
