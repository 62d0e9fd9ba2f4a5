fn main() -> std::process::ExitCode {
    recast::cli::main()
}
