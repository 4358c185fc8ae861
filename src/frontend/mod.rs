//! The BuildKit gateway frontend (gRPC over stdin/stdout).

pub fn main() -> std::process::ExitCode {
    eprintln!("kiln frontend: not built yet");
    std::process::ExitCode::FAILURE
}
