//! `breakwater`: the command line. Thin: parse arguments, set up logging, call the library.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: the request path allocates many small, short-lived
/// objects (headers, buffers), where glibc malloc showed up at about 12% of a profile.
/// Feature `system-alloc` keeps glibc's, which heap profilers (heaptrack) can see
/// (bench/allocations.sh).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: breakwater_proxy::Allocator = breakwater_proxy::Allocator;

/// Breakwater: an edge node for a CDN.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve traffic (the default). With no --config, serve the embedded demo.
    Run(RunArgs),
    /// Validate a config file and exit: 0 when valid, 1 with the error otherwise.
    Check {
        /// The YAML config file.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Write the demo's components (a trivial filter and a hello `wasi:http` handler, built
    /// from WAT) into a directory, for benchmarks and experiments.
    DemoComponents {
        /// Where to write `demo-filter.wasm` and `hello-handler.wasm`.
        dir: PathBuf,
    },
}

#[derive(clap::Args, Clone)]
struct RunArgs {
    /// The YAML config file. Without it, the embedded demo config is served.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Demo only: the address of the demo's HTTP listener.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Demo only: the address of the demo's admin listener.
    #[arg(long, default_value = "127.0.0.1:9901")]
    admin: SocketAddr,
    /// Demo only: the address of the demo's HTTPS and HTTP/3 listener.
    #[arg(long, default_value = "127.0.0.1:8443")]
    tls_listen: SocketAddr,
    /// Graceful upgrade: take over the listening sockets of the running process, which is
    /// then sent SIGQUIT (see the README).
    #[arg(short, long)]
    upgrade: bool,
}

fn main() -> ExitCode {
    // No transparent huge pages for this process: mimalloc asks for them on its 2 MiB-aligned
    // arenas, and a thread growing its heap then faults in and zeroes 2 MiB at once. That
    // made the 3-7 ms outliers among cold starts and cost 12-25 MiB of RSS (bench/thp.sh).
    // `MIMALLOC_ALLOW_THP=1` (mimalloc's own setting) keeps them. Best effort: a kernel
    // without the flag keeps its default.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none_or(|v| v != "1") {
        let _ = nix::sys::prctl::set_thp_disable(true);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // pingora logs every failed TLS handshake (scanners, our own readiness
                // probe) as an error: that is client noise, shown with RUST_LOG=debug.
                .unwrap_or_else(|_| {
                    "info,pingora_core=warn,pingora_proxy=warn,pingora_core::services::listening=off"
                        .into()
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        Some(Command::Check { config }) => match breakwater_proxy::check(&config) {
            Ok(_) => {
                println!("{}: ok", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Some(Command::DemoComponents { dir }) => {
            match breakwater_proxy::write_demo_components(&dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("breakwater: {}: {e}", dir.display());
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Run(args)) => run(args),
        None => run(cli.run),
    }
}

fn run(args: RunArgs) -> ExitCode {
    let opts = breakwater_proxy::RunOptions {
        config: args.config,
        listen: args.listen,
        admin: args.admin,
        tls_listen: args.tls_listen,
        upgrade: args.upgrade,
    };
    match breakwater_proxy::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("breakwater: {e}");
            ExitCode::FAILURE
        }
    }
}
