//! Project automation (the cargo-xtask pattern): `cargo xtask <command>`.
//!
//! One module per command; no dependencies beyond std, so it builds in seconds.

mod test_all;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  test-all   fmt check, clippy -D warnings, each library crate's tests alone, then the rest";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test-all") => test_all::run(&args[1..]),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
