//! The `epg` command. All behaviour lives in the library (`epg::cli`).

use std::process::ExitCode;

fn main() -> ExitCode {
    epg::cli::main()
}
