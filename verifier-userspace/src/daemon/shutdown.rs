//! SIGINT/SIGTERM → a shutdown flag every task watches.
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tracing::info;

/// Installs the handlers now (so an early signal is not lost) and returns the flag's receiver.
pub fn on_signals() -> std::io::Result<watch::Receiver<bool>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let (flag, watcher) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        };
        info!(signal = name, "shutting down");
        let _ = flag.send(true);
    });
    Ok(watcher)
}
