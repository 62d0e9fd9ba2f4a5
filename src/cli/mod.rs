//! Command-line entry (being wired; the full dispatch lands with the subcommands).

mod embedded;

pub fn main() -> std::process::ExitCode {
    let _ = embedded::ensure;
    let _ = embedded::stop;
    eprintln!("recast: subcommands are not wired yet");
    std::process::ExitCode::from(2)
}
