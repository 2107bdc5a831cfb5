//! Blocking client for the query socket: one JSON request line out, one JSON response line back,
//! every step bounded by one overall deadline. Used by the `verify-file` shim (which must start
//! fast and needs no async runtime) and by the `verifier` CLI.

use std::{
    io::{Read as _, Write as _},
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, net::UnixStream},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::protocol::{MAX_REQUEST_BYTES, PROTOCOL_VERSION, Request, Response};

/// Longest response line accepted; a longer one is an error, never truncated.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("socket path {0} is too long for a Unix socket address")]
    PathTooLong(PathBuf),
    #[error("no answer from {socket} within {timeout:?} ({stage})")]
    Timeout {
        socket: PathBuf,
        timeout: Duration,
        stage: &'static str,
    },
    #[error("cannot send the request to {socket}: {source}")]
    Write {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the answer from {socket}: {source}")]
    Read {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{socket} closed the connection without a complete answer ({received} bytes received)")]
    Closed { socket: PathBuf, received: usize },
    #[error("the answer from {socket} exceeds {MAX_RESPONSE_BYTES} bytes")]
    ResponseTooLong { socket: PathBuf },
    #[error("the request is {len} bytes, more than the {MAX_REQUEST_BYTES} the daemon accepts")]
    RequestTooLong { len: usize },
    #[error("cannot encode the request: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("the answer from {socket} is not a valid response ({source}): {excerpt}")]
    Decode {
        socket: PathBuf,
        #[source]
        source: serde_json::Error,
        excerpt: String,
    },
    #[error("the answer from {socket} has protocol version {found}, expected {PROTOCOL_VERSION}")]
    Version { socket: PathBuf, found: u32 },
}

/// Sends `request` to the daemon at `socket` and returns its response, all within `timeout`.
pub fn request(
    socket: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let deadline = Instant::now() + timeout;
    let mut line = serde_json::to_vec(request).map_err(ClientError::Encode)?;
    line.push(b'\n');
    if line.len() > MAX_REQUEST_BYTES {
        return Err(ClientError::RequestTooLong { len: line.len() });
    }
    let timed_out = |stage| ClientError::Timeout {
        socket: socket.to_owned(),
        timeout,
        stage,
    };

    let mut stream = connect(socket, timeout)?;
    let remaining = remaining(deadline).ok_or_else(|| timed_out("connect"))?;
    stream
        .set_write_timeout(Some(remaining))
        .map_err(|source| write_error(socket, source))?;
    stream.write_all(&line).map_err(|source| {
        if is_timeout(&source) {
            timed_out("sending the request")
        } else {
            write_error(socket, source)
        }
    })?;

    let answer = read_line(&mut stream, socket, deadline, &timed_out)?;
    let response: Response =
        serde_json::from_slice(&answer).map_err(|source| ClientError::Decode {
            socket: socket.to_owned(),
            source,
            excerpt: String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned(),
        })?;
    if response.version != PROTOCOL_VERSION {
        return Err(ClientError::Version {
            socket: socket.to_owned(),
            found: response.version,
        });
    }
    Ok(response)
}

fn write_error(socket: &Path, source: std::io::Error) -> ClientError {
    ClientError::Write {
        socket: socket.to_owned(),
        source,
    }
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Reads up to and excluding the first `'\n'`, bounded in size and time.
fn read_line(
    stream: &mut UnixStream,
    socket: &Path,
    deadline: Instant,
    timed_out: &dyn Fn(&'static str) -> ClientError,
) -> Result<Vec<u8>, ClientError> {
    let mut answer = Vec::with_capacity(512);
    let mut chunk = [0u8; 8192];
    loop {
        let left = remaining(deadline).ok_or_else(|| timed_out("waiting for the answer"))?;
        stream
            .set_read_timeout(Some(left))
            .map_err(|source| ClientError::Read {
                socket: socket.to_owned(),
                source,
            })?;
        let count = match stream.read(&mut chunk) {
            Ok(count) => count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) if is_timeout(&error) => return Err(timed_out("waiting for the answer")),
            Err(source) => {
                return Err(ClientError::Read {
                    socket: socket.to_owned(),
                    source,
                });
            }
        };
        if count == 0 {
            return Err(ClientError::Closed {
                socket: socket.to_owned(),
                received: answer.len(),
            });
        }
        let received = &chunk[..count];
        if let Some(end) = received.iter().position(|&byte| byte == b'\n') {
            answer.extend_from_slice(&received[..end]);
            if answer.len() > MAX_RESPONSE_BYTES {
                break;
            }
            return Ok(answer);
        }
        answer.extend_from_slice(received);
        if answer.len() > MAX_RESPONSE_BYTES {
            break;
        }
    }
    Err(ClientError::ResponseTooLong {
        socket: socket.to_owned(),
    })
}

/// Connects with `SO_SNDTIMEO` set first: on Linux a Unix stream `connect` blocks while the
/// listener's backlog is full, and that option bounds the wait (std's `connect` has no timeout).
fn connect(socket: &Path, timeout: Duration) -> Result<UnixStream, ClientError> {
    let connect_error = |source| ClientError::Connect {
        socket: socket.to_owned(),
        source,
    };
    // SAFETY: an all-zero sockaddr_un is valid; we fill family and a NUL-terminated path.
    let mut address: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    address.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    if path.is_empty() || path.len() >= address.sun_path.len() || path.contains(&0) {
        return Err(ClientError::PathTooLong(socket.to_owned()));
    }
    for (slot, &byte) in address.sun_path.iter_mut().zip(path) {
        *slot = byte as libc::c_char;
    }

    // SAFETY: plain socket(2); the descriptor is owned by `fd` right away.
    let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(connect_error(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let stream = UnixStream::from(fd);
    stream
        .set_write_timeout(Some(timeout.max(Duration::from_millis(1))))
        .map_err(connect_error)?;

    let length = std::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
    loop {
        // SAFETY: `address` is a valid sockaddr_un of at least `length` bytes; `stream` owns
        // the descriptor for the duration of the call.
        let result = unsafe {
            libc::connect(
                std::os::fd::AsRawFd::as_raw_fd(&stream),
                (&raw const address).cast::<libc::sockaddr>(),
                length as libc::socklen_t,
            )
        };
        if result == 0 {
            return Ok(stream);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EINPROGRESS) => {
                return Err(ClientError::Timeout {
                    socket: socket.to_owned(),
                    timeout,
                    stage: "connect (listen backlog full)",
                });
            }
            _ => return Err(connect_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead as _, BufReader},
        os::unix::net::UnixListener,
        thread,
    };

    use super::*;
    use crate::protocol::{RequestBody, ResponseBody};

    fn temp_socket(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("verifier-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("s.sock")
    }

    /// A one-connection server that reads a line and answers `answer` (raw bytes).
    fn serve_once(socket: &Path, answer: Vec<u8>, delay: Duration) -> thread::JoinHandle<String> {
        let listener = UnixListener::bind(socket).unwrap();
        thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            thread::sleep(delay);
            let _ = reader.get_mut().write_all(&answer);
            line
        })
    }

    #[test]
    fn status_round_trip() {
        let socket = temp_socket("ok");
        let answer = serde_json::to_vec(&Response::new(ResponseBody::Status {
            status: serde_json::json!({"ok": true}),
        }))
        .unwrap();
        let server = serve_once(&socket, [answer, b"\n".to_vec()].concat(), Duration::ZERO);
        let response = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(matches!(response.body, ResponseBody::Status { .. }));
        let sent = server.join().unwrap();
        assert_eq!(sent, "{\"version\":1,\"type\":\"status\"}\n");
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let socket = temp_socket("missing");
        let error = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(error, ClientError::Connect { .. }), "{error}");
    }

    #[test]
    fn slow_server_times_out() {
        let socket = temp_socket("slow");
        let _server = serve_once(&socket, b"{}\n".to_vec(), Duration::from_secs(3));
        let started = Instant::now();
        let error = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(error, ClientError::Timeout { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn garbage_and_eof_and_oversize_are_errors() {
        let socket = temp_socket("garbage");
        let server = serve_once(&socket, b"hello\n".to_vec(), Duration::ZERO);
        let error = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(error, ClientError::Decode { .. }), "{error}");
        server.join().unwrap();

        let socket = temp_socket("eof");
        let server = serve_once(&socket, b"{\"version\":1".to_vec(), Duration::ZERO);
        let error = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(matches!(error, ClientError::Closed { .. }), "{error}");
        server.join().unwrap();

        let socket = temp_socket("huge");
        let server = serve_once(&socket, vec![b'x'; MAX_RESPONSE_BYTES + 10], Duration::ZERO);
        let error = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            matches!(error, ClientError::ResponseTooLong { .. }),
            "{error}"
        );
        server.join().unwrap();
    }

    #[test]
    fn other_protocol_version_is_refused() {
        let socket = temp_socket("version");
        let server = serve_once(
            &socket,
            b"{\"version\":2,\"type\":\"error\",\"message\":\"x\"}\n".to_vec(),
            Duration::ZERO,
        );
        let error = request(
            &socket,
            &Request::new(RequestBody::Status),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            matches!(error, ClientError::Version { found: 2, .. }),
            "{error}"
        );
        server.join().unwrap();
    }
}
