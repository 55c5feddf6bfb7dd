//! `ghlsync`: the binary. Everything lives in the library so the tests can
//! drive it; see `ghl_sync::cli`.

fn main() -> std::process::ExitCode {
    ghl_sync::cli::main()
}
