//! The BuildKit gateway frontend: gRPC over this process's stdin/stdout to BuildKit's
//! LLBBridge. stdout belongs to the protocol; everything kiln says goes to stderr.

pub mod blame;
pub mod bridge;
pub mod build;
pub mod context;
pub mod errdefs;
pub mod gates;
pub mod opts;
pub mod runtime_libs;
pub mod sbom;
pub mod subrequests;

use std::process::ExitCode;
use std::sync::Mutex;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use bridge::{Bridge, Failure};
use opts::Options;

/// Serve one build over an already connected channel.
pub async fn serve(channel: Channel, opts: Result<Options, String>) -> Result<(), String> {
    let mut bridge = Bridge::connect(channel).await.map_err(|f| f.message)?;
    if !bridge.caps.return_result() {
        return Err(format!(
            "this BuildKit is too old for kiln (no `{}` gateway cap); use Docker >= 20.10 or BuildKit >= 0.8",
            crate::llb::caps::RETURN_RESULT.id
        ));
    }
    let result = match opts {
        Ok(o) => build::run(&mut bridge, &o).await,
        Err(e) => Err(Failure::invalid(e)),
    };
    // Whatever a failure quotes (the engine's error, a value), no URL in it keeps its
    // credentials, in the log or for the client.
    let result = result.map_err(|f| Failure {
        message: crate::url::redact_text(&f.message),
        ..f
    });
    if let Err(f) = &result {
        eprintln!("kiln: {}", f.message);
    }
    bridge
        .finish(result)
        .await
        .map_err(|s| format!("returning the result to BuildKit failed: {}", s.message()))
}

/// The most header bytes (a status's message and details among them) kiln takes in one
/// answer from the engine: 1 MiB.
const MAX_HEADER_LIST: u32 = 1 << 20;

/// A channel over any byte stream (stdin/stdout here, a pipe in tests). The stream is
/// handed out once: there is nothing to reconnect to.
pub async fn channel_over<S>(stream: S) -> Result<Channel, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let slot = Mutex::new(Some(stream));
    Endpoint::from_static("http://buildkit.gateway")
        // A failed exec's status names its whole command line (the runtime-library scan's
        // is about 15 KB): past hyper's default of 16 KB of headers, the engine's answer
        // would be an HTTP/2 protocol error instead of the failure.
        .http2_max_header_list_size(MAX_HEADER_LIST)
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let io = slot.lock().expect("connector lock").take();
            async move {
                io.map(TokioIo::new).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::NotConnected,
                        "the gateway connection is already closed",
                    )
                })
            }
        }))
        .await
        .map_err(|e| format!("cannot connect to BuildKit over stdio: {e}"))
}

/// The frontend process: serve one build over stdin/stdout. `main.rs` calls it on
/// `crate::stack::run`'s thread, so the build's work has a stack of known size.
pub fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kiln frontend: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        let stdio = tokio::io::join(tokio::io::stdin(), tokio::io::stdout());
        let channel = channel_over(stdio).await?;
        serve(channel, Options::from_env()).await
    });
    // Benchmarks read this line; on a cached build it is the frontend's own cost.
    eprintln!(
        "kiln: frontend start to Return: {} ms",
        started.elapsed().as_millis()
    );
    // The stdin reader sits in a blocking thread that never returns; don't wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln frontend: {e}");
            ExitCode::FAILURE
        }
    }
}
