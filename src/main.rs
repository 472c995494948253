//! The `coe` binary: parses the command line and hands over to `coe::cli`.
fn main() -> std::process::ExitCode {
    coe::cli::main()
}
