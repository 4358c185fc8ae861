//! The stack kiln's work runs on: a thread of its own with a known size. The main
//! thread's size depends on where kiln runs (`ulimit -s`, the container BuildKit starts
//! the frontend in), and a test thread has 2 MiB.

/// 64 MiB. The inputs are bounded so that far less is needed (YAML nesting, `extends`,
/// requirement groups, steps and marker nesting are limited; graph walks are loops), and
/// a thread's stack is reserved address space, committed only as it is used.
pub const STACK_BYTES: usize = 64 << 20;

/// `work` run on a thread with `STACK_BYTES` of stack, and its result (a panic in it is
/// resumed here). Errors: the thread could not be started.
pub fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, std::io::Error> {
    let handle = std::thread::Builder::new()
        .name("kiln".into())
        .stack_size(STACK_BYTES)
        .spawn(work)?;
    match handle.join() {
        Ok(v) => Ok(v),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    /// Recursion that needs far more than a test thread's 2 MiB runs to its end.
    #[test]
    fn work_gets_the_documented_stack() {
        fn deep(n: u32) -> u32 {
            let pad = std::hint::black_box([0u8; 1024]);
            if n == 0 {
                u32::from(pad[0])
            } else {
                deep(n - 1) + u32::from(pad[1])
            }
        }
        assert_eq!(super::run(|| deep(16_000)).unwrap(), 0);
    }
}
