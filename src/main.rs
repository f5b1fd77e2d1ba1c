//! Entry point: the command line lives in `cli`, serving in `run` and
//! `server`.

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
