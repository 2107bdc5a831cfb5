//! `verifier daemon`: wires recorder, provenance store, package index, decision engine and query
//! socket together, and tears everything down (programs detached) on SIGINT/SIGTERM.

mod shutdown;

use std::{fs, os::unix::fs::PermissionsExt as _, sync::Arc, time::Instant};

use anyhow::Context as _;
use tracing::info;

use crate::{
    config::Config,
    protocol::{Request, RequestBody, Response, ResponseBody},
    socket::server::{Handler, Limits, Peer, SocketServer},
};

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("verifier")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    prepare_state_dir(&config)?;
    let shutdown = shutdown::on_signals()?;
    let daemon = Arc::new(Daemon {
        config: config.clone(),
        started: Instant::now(),
    });
    let limits = Limits {
        max_concurrent: config.active_response.max_concurrent_requests,
        queue_depth: config.active_response.queue_depth,
        request_timeout: config.active_response.request_timeout(),
    };
    let server = SocketServer::bind(&config.socket, config.socket_group.as_deref(), limits)?;
    info!("verifier daemon ready");
    server.serve(daemon, shutdown).await;
    info!("verifier daemon stopped cleanly");
    Ok(())
}

/// The state directory holds the provenance store: root only.
fn prepare_state_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.state_dir;
    fs::create_dir_all(dir).with_context(|| format!("creating state_dir {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting state_dir {}", dir.display()))
}

/// What request handlers share.
struct Daemon {
    config: Config,
    started: Instant,
}

impl Handler for Daemon {
    async fn handle(&self, request: Request, _peer: Peer) -> Response {
        match request.body {
            RequestBody::Status => Response::new(ResponseBody::Status {
                status: self.status(),
            }),
            RequestBody::Verify { .. } | RequestBody::Explain { .. } => {
                Response::error("not implemented yet")
            }
        }
    }
}

impl Daemon {
    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "uptime_secs": self.started.elapsed().as_secs(),
            "state_dir": self.config.state_dir,
            "socket": self.config.socket,
        })
    }
}
