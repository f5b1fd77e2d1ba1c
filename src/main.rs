//! Entry point: the command line lives in `cli`, serving in `run` and
//! `server`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
