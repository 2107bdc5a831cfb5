//! `verifier daemon`: wires recorder, provenance store, package index, decision engine, alert mail
//! and query socket together, and tears everything down (programs detached, store marked cleanly
//! stopped) on SIGINT/SIGTERM.
//!
//! Start-up order matters: the store opens first (recording the gap since the daemon last ran), the
//! package index loads, the package-manager binaries are verified and handed to the kernel, the
//! recorder attaches, and only then does the socket accept requests.

mod enroll;
mod intake;
mod shutdown;
mod status;
mod verdicts;

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, RwLock},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use crate::{
    alerting::mail::{Mailer, MailerHandle},
    config::Config,
    decision::gather::SelfCritical,
    ebpf::Recorder,
    events::FileId,
    heap,
    packages::{PackageIndex, rpm::discover_dbpath},
    protocol::{Request, RequestBody, Response, ResponseBody},
    socket::server::{Handler, Limits, Peer, SocketServer},
    store::{PackageLocks, Store},
};

/// How often the daemon records that it is alive (a crash leaves a gap from the last one).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// How often deferred verdicts past their deadline are decided.
const DEADLINE_CHECK_EVERY: Duration = Duration::from_secs(5);
/// Longest wait for alert mail still queued at shutdown.
const MAIL_FLUSH_AT_STOP: Duration = Duration::from_secs(20);

/// Runs the daemon in the foreground until SIGINT or SIGTERM.
pub fn run(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("verifier")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, config_path))
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let started = Instant::now();
    prepare_state_dir(&config.state_dir)?;
    let shutdown = shutdown::on_signals()?;
    let mut store = Store::open(&config.state_dir, &config.recorder).with_context(|| {
        format!(
            "opening the provenance store in {}",
            config.state_dir.display()
        )
    })?;
    let index = load_index(&config)?;
    let rpm_dbpath = config
        .packages
        .rpm_enabled
        .then(|| discover_dbpath(config.packages.rpm_dbpath.as_deref()))
        .flatten();
    store.set_package_locks(PackageLocks::new(
        config.packages.dpkg_admindir.as_deref(),
        rpm_dbpath.as_deref(),
    ))?;
    let mut recorder = Recorder::load(&config.recorder).context("loading the eBPF recorder")?;
    let trusted = trust_package_managers(&config, &index, &mut recorder, &[]);
    let events = recorder.take_events()?;
    record_preexisting_writers(&mut recorder, &mut store);
    store.end_startup_gap(crate::intake::wall_clock_now())?;
    // Loading the programs parsed the kernel's BTF (tens of MiB, freed by now).
    heap::release_free_memory();
    let mailer = Mailer::start(&config.mail).context("starting alert mail")?;
    let self_critical = SelfCritical::from_config(&config, config_path.as_deref());

    let daemon = Arc::new(Daemon {
        store: Mutex::new(store),
        index: RwLock::new(index),
        recorder: Mutex::new(recorder),
        mailer,
        self_critical,
        trusted_package_managers: Mutex::new(trusted),
        intake: intake::Progress::default(),
        verdicts_in_flight: std::sync::atomic::AtomicUsize::new(0),
        started,
        config,
    });
    let intake_task = tokio::spawn(intake::run(Arc::clone(&daemon), events));
    let heartbeat_task = tokio::spawn(heartbeat(Arc::clone(&daemon), shutdown.clone()));
    let overdue_task = tokio::spawn(verdicts::decide_overdue(
        Arc::clone(&daemon),
        shutdown.clone(),
    ));
    verdicts::redecide_pending_after_restart(&daemon).await;
    if daemon.config.policy.enroll {
        tokio::task::spawn_blocking({
            let daemon = Arc::clone(&daemon);
            move || enroll::enroll_if_first_start(&daemon)
        });
    }

    let server = SocketServer::bind(
        &daemon.config.socket,
        daemon.config.socket_group.as_deref(),
        limits(&daemon.config),
    )?;
    info!(
        programs = daemon.lock_recorder().attached_programs().len(),
        startup_ms = started.elapsed().as_millis(),
        "verifier daemon ready"
    );
    server.serve(Arc::clone(&daemon), shutdown).await;
    intake_task.abort();
    for task in [intake_task, heartbeat_task, overdue_task] {
        // Each ends on the shutdown flag (the intake by abort); a panic was already logged.
        let _ = task.await;
    }
    stop(daemon).await;
    Ok(())
}

/// Final bookkeeping: mail flushed, store marked cleanly stopped, programs detached (on drop).
async fn stop(daemon: Arc<Daemon>) {
    let mailer = daemon.mailer.clone();
    match tokio::time::timeout(MAIL_FLUSH_AT_STOP, mailer.flush_and_stop()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => error!(%error, "alert mail could not be flushed at shutdown"),
        Err(_) => error!("alert mail still undelivered after {MAIL_FLUSH_AT_STOP:?}; giving up"),
    }
    if let Err(error) = daemon.lock_store().mark_clean_stop() {
        error!(%error, "cannot record the clean stop; the next start records a gap");
    }
    match Arc::try_unwrap(daemon) {
        Ok(daemon) => drop(daemon.recorder),
        Err(_) => warn!("tasks still hold the daemon; programs are detached at exit"),
    }
    info!("verifier daemon stopped cleanly");
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_concurrent: config.active_response.max_concurrent_requests,
        queue_depth: config.active_response.queue_depth,
        request_timeout: config.active_response.request_timeout(),
    }
}

/// The state directory holds the provenance store: root only.
fn prepare_state_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating state_dir {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting state_dir {}", dir.display()))
}

fn load_index(config: &Config) -> anyhow::Result<PackageIndex> {
    let (index, problems) =
        PackageIndex::load(&config.packages).context("loading the package databases")?;
    for problem in &problems {
        warn!(%problem, "package database problem (the rest is loaded)");
    }
    let stats = index.stats();
    info!(
        files = stats.files,
        packages = stats.packages,
        build_ms = stats.build_time.as_millis(),
        memory_bytes = stats.approx_memory_bytes,
        "package index loaded"
    );
    Ok(index)
}

/// Hands the kernel the identity of each configured package manager that verifies against its
/// package. One that does not verify is not trusted: its transactions are not transactions.
/// A binary already in `previously` (checked again after every transaction) is logged at debug
/// level only; a newly trusted one (start-up, or a new inode after an upgrade) at info level.
fn trust_package_managers(
    config: &Config,
    index: &PackageIndex,
    recorder: &mut Recorder,
    previously: &[(PathBuf, FileId)],
) -> Vec<(PathBuf, FileId)> {
    let mut trusted = Vec::new();
    for path in &config.recorder.package_managers {
        if !path.exists() {
            info!(path = %path.display(), "package manager not installed; skipped");
            continue;
        }
        match index.verify_executable(path) {
            Ok(id) => match recorder.trust_package_manager(id) {
                Ok(()) => {
                    if previously.contains(&(path.clone(), id)) {
                        debug!(path = %path.display(), dev = id.dev, ino = id.ino, "package manager still trusted");
                    } else {
                        info!(path = %path.display(), dev = id.dev, ino = id.ino, "package manager trusted");
                    }
                    trusted.push((path.clone(), id));
                }
                Err(error) => {
                    error!(path = %path.display(), %error, "cannot mark the package manager")
                }
            },
            Err(error) => error!(
                %error,
                "package manager does not verify against its package: NOT trusted, every change it makes will alert"
            ),
        }
    }
    trusted
}

fn record_preexisting_writers(recorder: &mut Recorder, store: &mut Store) {
    match recorder.scan_preexisting_writers() {
        Ok(writers) => {
            let events: Vec<_> = writers
                .into_iter()
                .map(crate::events::Event::PreexistingWriter)
                .collect();
            info!(
                count = events.len(),
                "files open for write before monitoring"
            );
            if let Err(error) = store.apply(&events) {
                error!(%error, "cannot record writers that predate monitoring");
            }
        }
        Err(error) => error!(%error, "cannot list files open for write at start-up"),
    }
}

async fn heartbeat(daemon: Arc<Daemon>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if let Err(error) = daemon.lock_store().heartbeat() {
                    error!(%error, "heartbeat not recorded");
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// What request handlers and tasks share.
pub(crate) struct Daemon {
    config: Config,
    store: Mutex<Store>,
    index: RwLock<PackageIndex>,
    recorder: Mutex<Recorder>,
    mailer: MailerHandle,
    self_critical: SelfCritical,
    /// The package-manager binaries the kernel treats as transaction roots, as last verified.
    trusted_package_managers: Mutex<Vec<(PathBuf, FileId)>>,
    intake: intake::Progress,
    /// Verify requests being decided now: a verdict's store writes wait for the next batch
    /// while others are under way (see `Store::queue_verdict`).
    verdicts_in_flight: std::sync::atomic::AtomicUsize,
    started: Instant,
}

impl Daemon {
    /// The store; a poisoned lock (a panic elsewhere) is taken over: the data is in SQLite.
    fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The store with every queued verdict written (for readers that show verdicts).
    fn store_written(&self) -> MutexGuard<'_, Store> {
        let mut store = self.lock_store();
        if let Err(error) = store.write_queued_verdicts() {
            error!(%error, "cannot store the queued verdicts");
        }
        store
    }

    fn lock_recorder(&self) -> MutexGuard<'_, Recorder> {
        self.recorder
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// After a transaction (which may have upgraded dpkg or rpm itself, giving it a new inode):
    /// verify the package managers again, trust what verifies now, stop trusting what does not.
    fn refresh_trusted_package_managers(&self) {
        let index = self.read_index();
        let mut recorder = self.lock_recorder();
        let mut trusted = self
            .trusted_package_managers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = trust_package_managers(&self.config, &index, &mut recorder, &trusted);
        for (path, old) in trusted.iter() {
            if !now.iter().any(|(_, id)| id == old) {
                info!(path = %path.display(), "package manager binary replaced; old inode no longer trusted");
                if let Err(error) = recorder.untrust_package_manager(*old) {
                    error!(%error, "cannot untrust the replaced package manager");
                }
            }
        }
        *trusted = now;
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, PackageIndex> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Handler for Daemon {
    async fn handle(&self, request: Request, peer: Peer) -> Response {
        match request.body {
            RequestBody::Status => Response::new(ResponseBody::Status {
                status: self.status(),
            }),
            RequestBody::Verify { alert } => {
                info!(alert = %alert.alert_id, path = %alert.path, ?peer, "verify request");
                Response::new(ResponseBody::Verdict(self.verify(alert).await))
            }
            RequestBody::Explain { path } => match self.store_written().explain(Path::new(&path)) {
                Ok(explanation) => Response::new(ResponseBody::Explain {
                    explanation: serde_json::to_value(explanation).unwrap_or_default(),
                }),
                Err(error) => Response::error(format!("cannot explain {path}: {error}")),
            },
        }
    }
}
