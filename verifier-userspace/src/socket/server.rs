//! The daemon's side of the query socket: binds it with the configured mode and group, checks each
//! peer's credentials (`SO_PEERCRED`), reads one bounded JSON line per connection, and bounds the work:
//! at most `max_concurrent` requests are handled at once, at most `queue_depth` wait for a slot, and
//! each request has a deadline. Anything refused is answered with an error, which the shim turns into
//! a "failed" verdict: backpressure never becomes a silent accept.

use std::{
    ffi::CString,
    future::Future,
    io,
    os::unix::fs::{FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
    sync::{Semaphore, watch},
};
use tracing::{debug, info, warn};

use crate::protocol::{MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response};

/// Socket permissions: owner and group read/write, nobody else.
const SOCKET_MODE: u32 = 0o660;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot create the socket directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set owner/mode of {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
    #[error("socket group {group:?} does not exist")]
    UnknownGroup { group: String },
}

/// Who is on the other end of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// Serves requests; implemented by the daemon.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, request: Request, peer: Peer) -> impl Future<Output = Response> + Send;
}

/// Work limits for the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_concurrent: usize,
    pub queue_depth: usize,
    pub request_timeout: Duration,
}

/// A bound socket, ready to serve. Removes its socket file when dropped.
pub struct SocketServer {
    listener: UnixListener,
    path: PathBuf,
    allowed_gid: Option<u32>,
    limits: Limits,
}

impl SocketServer {
    /// Binds `path` (replacing a stale socket, never another kind of file), mode 0660, group `group`.
    pub fn bind(path: &Path, group: Option<&str>, limits: Limits) -> Result<Self, SocketError> {
        let allowed_gid = group.map(group_id).transpose()?;
        ensure_descriptors_for(limits.max_concurrent + limits.queue_depth);
        prepare_path(path)?;
        let listener = UnixListener::bind(path).map_err(|source| SocketError::Bind {
            path: path.to_owned(),
            source,
        })?;
        set_permissions(path, allowed_gid)?;
        info!(socket = %path.display(), ?allowed_gid, "query socket listening");
        Ok(Self {
            listener,
            path: path.to_owned(),
            allowed_gid,
            limits,
        })
    }

    /// Accepts connections until `shutdown` turns true; in-flight requests finish on their own tasks.
    pub async fn serve<H: Handler>(self, handler: Arc<H>, mut shutdown: watch::Receiver<bool>) {
        let state = Arc::new(ServerState {
            slots: Semaphore::new(self.limits.max_concurrent),
            waiting: AtomicUsize::new(0),
            limits: self.limits,
            allowed_gid: self.allowed_gid,
        });
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (state, handler) = (Arc::clone(&state), Arc::clone(&handler));
                        tokio::spawn(async move { serve_connection(stream, &state, &*handler).await });
                    }
                    Err(error) => {
                        warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.changed() => break,
            }
        }
        info!("query socket closed");
    }
}

/// Descriptors the daemon needs besides its connections: store, maps, programs, logs.
const BASE_DESCRIPTORS: u64 = 512;

/// Raises the soft `RLIMIT_NOFILE` (within the hard limit) so that every connection the limits
/// allow (handled plus queued) can be held open: with systemd's default soft limit of 1024, a
/// burst of alerts would otherwise stall in `accept` with EMFILE instead of reaching the bounded
/// queue. Logs a warning when the hard limit is too low.
fn ensure_descriptors_for(connections: usize) {
    let wanted = BASE_DESCRIPTORS.saturating_add(u64::try_from(connections).unwrap_or(u64::MAX));
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit on this process with a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(error = %io::Error::last_os_error(), "cannot read the open-file limit");
        return;
    }
    if limit.rlim_cur >= wanted {
        return;
    }
    let raised = libc::rlimit {
        rlim_cur: wanted.min(limit.rlim_max),
        rlim_max: limit.rlim_max,
    };
    // SAFETY: setrlimit on this process with a valid struct, within the hard limit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        warn!(error = %io::Error::last_os_error(), "cannot raise the open-file limit");
        return;
    }
    if raised.rlim_cur < wanted {
        warn!(
            limit = raised.rlim_cur,
            wanted,
            "open-file hard limit below max_concurrent_requests + queue_depth; bursts wait in accept"
        );
    } else {
        debug!(
            from = limit.rlim_cur,
            to = raised.rlim_cur,
            "open-file limit raised"
        );
    }
}

impl Drop for SocketServer {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            warn!(socket = %self.path.display(), %error, "cannot remove the socket");
        }
    }
}

struct ServerState {
    slots: Semaphore,
    waiting: AtomicUsize,
    limits: Limits,
    allowed_gid: Option<u32>,
}

async fn serve_connection<H: Handler>(mut stream: UnixStream, state: &ServerState, handler: &H) {
    let response = match answer(&mut stream, state, handler).await {
        Ok(response) => response,
        Err(refusal) => Response::error(refusal),
    };
    if let Err(error) = write_response(&mut stream, &response).await {
        debug!(%error, "client went away before the answer");
    }
}

/// Reads, authorises, queues and handles one request; `Err` is the refusal to send back.
async fn answer<H: Handler>(
    stream: &mut UnixStream,
    state: &ServerState,
    handler: &H,
) -> Result<Response, String> {
    let peer = peer_of(stream).map_err(|error| format!("cannot read peer credentials: {error}"))?;
    if !authorised(&peer, state.allowed_gid) {
        warn!(?peer, "refused a client without access");
        return Err(format!(
            "uid {} gid {} may not use this socket",
            peer.uid, peer.gid
        ));
    }
    let deadline = state.limits.request_timeout;
    let request = tokio::time::timeout(deadline, read_request(stream))
        .await
        .map_err(|_| format!("no complete request within {deadline:?}"))??;
    let _slot = acquire_slot(state).await?;
    tokio::time::timeout(deadline, handler.handle(request, peer))
        .await
        .map_err(|_| format!("request not decided within {deadline:?}"))
}

/// Takes a work slot, waiting in the bounded queue; refuses when the queue is full.
async fn acquire_slot(state: &ServerState) -> Result<tokio::sync::SemaphorePermit<'_>, String> {
    if let Ok(permit) = state.slots.try_acquire() {
        return Ok(permit);
    }
    let waiting = state.waiting.fetch_add(1, Ordering::SeqCst);
    if waiting >= state.limits.queue_depth {
        state.waiting.fetch_sub(1, Ordering::SeqCst);
        warn!(waiting, "request queue full; refusing");
        return Err(format!(
            "daemon overloaded: {waiting} requests already waiting"
        ));
    }
    let permit = state.slots.acquire().await;
    state.waiting.fetch_sub(1, Ordering::SeqCst);
    permit.map_err(|_| "daemon shutting down".to_owned())
}

async fn read_request(stream: &mut UnixStream) -> Result<Request, String> {
    let mut line = Vec::new();
    let limit = u64::try_from(MAX_REQUEST_BYTES).unwrap_or(u64::MAX);
    let mut reader = BufReader::new(stream).take(limit + 1);
    reader
        .read_until(b'\n', &mut line)
        .await
        .map_err(|error| format!("cannot read the request: {error}"))?;
    if line.len() > MAX_REQUEST_BYTES {
        return Err(format!("request longer than {MAX_REQUEST_BYTES} bytes"));
    }
    if line.last() != Some(&b'\n') {
        return Err("request not terminated by a newline".to_owned());
    }
    let request: Request =
        serde_json::from_slice(&line).map_err(|error| format!("malformed request: {error}"))?;
    if request.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} not supported (this daemon speaks {PROTOCOL_VERSION})",
            request.version
        ));
    }
    Ok(request)
}

async fn write_response(stream: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line).await?;
    stream.shutdown().await
}

fn peer_of(stream: &UnixStream) -> io::Result<Peer> {
    let credentials = stream.peer_cred()?;
    Ok(Peer {
        uid: credentials.uid(),
        gid: credentials.gid(),
        pid: credentials.pid(),
    })
}

/// root, our own uid, or a member (primary or supplementary) of the socket's group.
fn authorised(peer: &Peer, allowed_gid: Option<u32>) -> bool {
    // SAFETY: geteuid has no preconditions.
    let own_uid = unsafe { libc::geteuid() };
    if peer.uid == 0 || peer.uid == own_uid {
        return true;
    }
    let Some(gid) = allowed_gid else {
        return false;
    };
    peer.gid == gid
        || peer
            .pid
            .is_some_and(|pid| supplementary_groups(pid).contains(&gid))
}

/// The `Groups:` line of /proc/PID/status.
fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Groups:"))
                .map(|groups| {
                    groups
                        .split_whitespace()
                        .filter_map(|g| g.parse().ok())
                        .collect()
                })
        })
        .unwrap_or_default()
}

fn prepare_path(path: &Path) -> Result<(), SocketError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| SocketError::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            std::fs::remove_file(path).map_err(|source| SocketError::Bind {
                path: path.to_owned(),
                source,
            })
        }
        Ok(_) => Err(SocketError::NotASocket {
            path: path.to_owned(),
        }),
        Err(_) => Ok(()),
    }
}

fn set_permissions(path: &Path, gid: Option<u32>) -> Result<(), SocketError> {
    let error = |source| SocketError::Permissions {
        path: path.to_owned(),
        source,
    };
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(error)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(error)
}

/// Resolves a group name through NSS (getgrnam_r).
fn group_id(name: &str) -> Result<u32, SocketError> {
    let unknown = || SocketError::UnknownGroup {
        group: name.to_owned(),
    };
    let c_name = CString::new(name).map_err(|_| unknown())?;
    let mut buffer = vec![0u8; 16 * 1024];
    // SAFETY: zeroed `group` is a valid out-parameter; getgrnam_r writes only within `buffer`.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the buffer length is passed.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut group,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return Err(unknown());
    }
    Ok(group.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{RequestBody, ResponseBody};

    /// Answers status requests after a delay, to exercise the limits.
    struct SlowStatus(Duration);

    impl Handler for SlowStatus {
        async fn handle(&self, _request: Request, peer: Peer) -> Response {
            tokio::time::sleep(self.0).await;
            Response::new(ResponseBody::Status {
                status: serde_json::json!({ "uid": peer.uid }),
            })
        }
    }

    async fn ask(path: &Path, line: &[u8]) -> Response {
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(line).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        serde_json::from_slice(&answer).unwrap()
    }

    fn status_line() -> Vec<u8> {
        let mut line = serde_json::to_vec(&Request::new(RequestBody::Status)).unwrap();
        line.push(b'\n');
        line
    }

    fn start(delay: Duration, limits: Limits) -> (tempfile::TempDir, PathBuf, watch::Sender<bool>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run/verifier.sock");
        let server = SocketServer::bind(&path, None, limits).unwrap();
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(server.serve(Arc::new(SlowStatus(delay)), stopped));
        (dir, path, stop)
    }

    const ROOMY: Limits = Limits {
        max_concurrent: 4,
        queue_depth: 64,
        request_timeout: Duration::from_secs(5),
    };

    #[tokio::test]
    async fn answers_and_sets_mode() {
        let (_dir, path, _stop) = start(Duration::ZERO, ROOMY);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let response = ask(&path, &status_line()).await;
        assert!(
            matches!(response.body, ResponseBody::Status { .. }),
            "{response:?}"
        );
    }

    #[tokio::test]
    async fn refuses_garbage_wrong_version_and_unterminated_lines() {
        let (_dir, path, _stop) = start(Duration::ZERO, ROOMY);
        for (line, expected) in [
            (&b"not json\n"[..], "malformed request"),
            (&b"{\"version\":99,\"type\":\"status\"}\n"[..], "version 99"),
            (
                &b"{\"version\":1,\"type\":\"status\"}"[..],
                "not terminated",
            ),
        ] {
            let mut stream = UnixStream::connect(&path).await.unwrap();
            stream.write_all(line).await.unwrap();
            stream.shutdown().await.unwrap();
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            let response: Response = serde_json::from_slice(&answer).unwrap();
            match response.body {
                ResponseBody::Error { message } => assert!(message.contains(expected), "{message}"),
                other => panic!("expected an error, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn refuses_oversized_request() {
        let (_dir, path, _stop) = start(Duration::ZERO, ROOMY);
        let mut line = vec![b' '; MAX_REQUEST_BYTES + 10];
        line.push(b'\n');
        let response = ask(&path, &line).await;
        assert!(
            matches!(response.body, ResponseBody::Error { ref message } if message.contains("longer than"))
        );
    }

    #[tokio::test]
    async fn full_queue_is_refused_not_dropped() {
        let limits = Limits {
            max_concurrent: 1,
            queue_depth: 1,
            request_timeout: Duration::from_secs(5),
        };
        let (_dir, path, _stop) = start(Duration::from_millis(300), limits);
        let line = status_line();
        let asks: Vec<_> = (0..4)
            .map(|_| {
                let (path, line) = (path.clone(), line.clone());
                tokio::spawn(async move { ask(&path, &line).await })
            })
            .collect();
        let mut answered = 0;
        let mut refused = 0;
        for task in asks {
            match task.await.unwrap().body {
                ResponseBody::Status { .. } => answered += 1,
                ResponseBody::Error { message } if message.contains("overloaded") => refused += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(answered + refused, 4);
        assert!(
            answered >= 2 && refused >= 1,
            "answered {answered}, refused {refused}"
        );
    }

    #[tokio::test]
    async fn slow_decision_times_out_with_error() {
        let limits = Limits {
            request_timeout: Duration::from_millis(100),
            ..ROOMY
        };
        let (_dir, path, _stop) = start(Duration::from_secs(2), limits);
        let response = ask(&path, &status_line()).await;
        assert!(
            matches!(response.body, ResponseBody::Error { ref message } if message.contains("not decided"))
        );
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        std::fs::write(&path, b"data").unwrap();
        assert!(matches!(
            SocketServer::bind(&path, None, ROOMY),
            Err(SocketError::NotASocket { .. })
        ));
    }

    #[test]
    fn unknown_group_is_an_error() {
        assert!(matches!(
            group_id("no-such-group-verifier"),
            Err(SocketError::UnknownGroup { .. })
        ));
        assert_eq!(group_id("root").unwrap(), 0);
    }

    #[test]
    fn authorisation_rules() {
        let stranger = Peer {
            uid: 4242,
            gid: 4242,
            pid: None,
        };
        assert!(authorised(
            &Peer {
                uid: 0,
                gid: 0,
                pid: None
            },
            None
        ));
        assert!(!authorised(&stranger, None));
        assert!(authorised(&stranger, Some(4242)));
        assert!(!authorised(&stranger, Some(4243)));
    }
}
