//! Where Portcullis listens: a TCP address (`127.0.0.1:4180`) or a Unix
//! socket (`unix:/run/portcullis/grafana.sock`), which nginx and other local
//! web servers often prefer.
//!
//! A Unix peer has no IP address. Portcullis treats it as `127.0.0.1`: only
//! a process on this machine can reach the socket, exactly like a loopback
//! TCP connection, so a Unix peer gets the same trust as a loopback one (by
//! default a trusted proxy, whose `X-Forwarded-For` is believed). An
//! operator who removes loopback from `access.trusted_proxies` therefore
//! also stops trusting Unix peers: one rule, no surprise.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};

/// Prefix that marks a Unix socket path in `listen`.
pub const UNIX_PREFIX: &str = "unix:";

/// The address a Unix peer is given for logs, trust and access rules.
pub const UNIX_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A parsed `listen` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Tcp(a) => write!(f, "{a}"),
            ListenAddr::Unix(p) => write!(f, "{UNIX_PREFIX}{}", p.display()),
        }
    }
}

impl ListenAddr {
    /// Parses `IP:PORT` or `unix:/absolute/path`; the error says what to write.
    pub fn parse(s: &str) -> Result<ListenAddr, String> {
        let s = s.trim();
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            let path = Path::new(path);
            if !path.is_absolute() || path.file_name().is_none() {
                return Err(format!(
                    "`{s}` needs an absolute socket path after `unix:`, e.g. `unix:/run/portcullis/grafana.sock`"
                ));
            }
            // Linux limits sun_path to 108 bytes including the final NUL.
            if path.as_os_str().len() > 107 {
                return Err(format!(
                    "`{s}`: the socket path is longer than the 107 bytes Linux allows; use a shorter path"
                ));
            }
            return Ok(ListenAddr::Unix(path.to_path_buf()));
        }
        s.parse::<SocketAddr>().map(ListenAddr::Tcp).map_err(|_| {
            format!(
                "`{s}` is not an address: use `IP:PORT` (e.g. `127.0.0.1:4180`) or `unix:/run/portcullis/NAME.sock`"
            )
        })
    }
}

/// A bound listener of either kind. It is not tied to a runtime: the
/// serving threads accept on copies of it ([`Listener::copy`]), and it
/// holds the socket (and, for a Unix socket, the file) until dropped.
pub enum Listener {
    Tcp(std::net::TcpListener),
    Unix {
        listener: std::os::unix::net::UnixListener,
        path: PathBuf,
    },
}

/// One accepted connection, as a byte stream plus the peer address used
/// for trust decisions.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn for T {}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr}: {source}; is another process using it?")]
    Tcp {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on the Unix socket {path}: {source}; check that its directory exists and that Portcullis may write there (under systemd, /run/portcullis is created by the unit)"
    )]
    Unix {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} exists and is not a socket; Portcullis will not remove it: choose another `listen` path or remove the file"
    )]
    NotASocket { path: PathBuf },
    #[error(
        "another process is already listening on the Unix socket {path}; stop it or give this instance another `listen` path"
    )]
    InUse { path: PathBuf },
}

impl Listener {
    /// Binds. A stale socket left by a previous run is replaced; any other
    /// file at that path is left alone and reported. The socket is made
    /// `mode` (e.g. 0o666), whatever the process umask.
    pub fn bind(addr: &ListenAddr, mode: u32) -> Result<Listener, BindError> {
        match addr {
            ListenAddr::Tcp(a) => std::net::TcpListener::bind(a)
                .map(Listener::Tcp)
                .map_err(|source| BindError::Tcp { addr: *a, source }),
            ListenAddr::Unix(path) => {
                let uerr = |source| BindError::Unix {
                    path: path.clone(),
                    source,
                };
                match std::fs::symlink_metadata(path) {
                    // A live socket belongs to a running process: leave it.
                    Ok(m)
                        if m.file_type().is_socket()
                            && std::os::unix::net::UnixStream::connect(path).is_ok() =>
                    {
                        return Err(BindError::InUse { path: path.clone() });
                    }
                    Ok(m) if m.file_type().is_socket() => {
                        std::fs::remove_file(path).map_err(uerr)?;
                    }
                    Ok(_) => return Err(BindError::NotASocket { path: path.clone() }),
                    Err(_) => {}
                }
                let listener = std::os::unix::net::UnixListener::bind(path).map_err(uerr)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                    .map_err(uerr)?;
                Ok(Listener::Unix {
                    listener,
                    path: path.clone(),
                })
            }
        }
    }

    /// What was actually bound (the port chosen for `:0`, or the path).
    pub fn local(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string()),
            Listener::Unix { path, .. } => format!("{UNIX_PREFIX}{}", path.display()),
        }
    }

    /// Another handle on the same listening socket, for one runtime: every
    /// waiting copy is told of a new connection and one of them takes it.
    /// The socket file stays this listener's to remove.
    pub fn copy(&self) -> std::io::Result<ListenerCopy> {
        Ok(match self {
            Listener::Tcp(l) => ListenerCopy::Tcp(l.try_clone()?),
            Listener::Unix { listener, .. } => ListenerCopy::Unix(listener.try_clone()?),
        })
    }
}

async fn accept_tcp(l: &TcpListener) -> std::io::Result<(Box<dyn Conn>, SocketAddr)> {
    let (s, peer) = l.accept().await?;
    let _ = s.set_nodelay(true);
    Ok((Box::new(s), peer))
}

async fn accept_unix(l: &UnixListener) -> std::io::Result<(Box<dyn Conn>, SocketAddr)> {
    let (s, _) = l.accept().await?;
    Ok((Box::new(s), UNIX_PEER))
}

/// A [`Listener::copy`] not yet tied to a runtime.
#[derive(Debug)]
pub enum ListenerCopy {
    Tcp(std::net::TcpListener),
    Unix(std::os::unix::net::UnixListener),
}

impl ListenerCopy {
    /// Ties the copy to the runtime it is called in.
    pub fn register(self) -> std::io::Result<Acceptor> {
        Ok(match self {
            ListenerCopy::Tcp(l) => {
                l.set_nonblocking(true)?;
                Acceptor::Tcp(TcpListener::from_std(l)?)
            }
            ListenerCopy::Unix(l) => {
                l.set_nonblocking(true)?;
                Acceptor::Unix(UnixListener::from_std(l)?)
            }
        })
    }
}

/// A copy of the listener, accepting in one runtime.
#[derive(Debug)]
pub enum Acceptor {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Acceptor {
    pub async fn accept(&self) -> std::io::Result<(Box<dyn Conn>, SocketAddr)> {
        match self {
            Acceptor::Tcp(l) => accept_tcp(l).await,
            Acceptor::Unix(l) => accept_unix(l).await,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Leave no socket file behind; a restart binds a new one anyway.
        if let Listener::Unix { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_kinds() {
        assert_eq!(
            ListenAddr::parse("127.0.0.1:4180").unwrap(),
            ListenAddr::Tcp("127.0.0.1:4180".parse().unwrap())
        );
        assert_eq!(
            ListenAddr::parse("unix:/run/portcullis/a.sock").unwrap(),
            ListenAddr::Unix("/run/portcullis/a.sock".into())
        );
        assert!(ListenAddr::parse("unix:relative.sock").is_err());
        assert!(ListenAddr::parse("unix:/").is_err());
        assert!(ListenAddr::parse("localhost").is_err());
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(ListenAddr::parse(&long).unwrap_err().contains("107"));
    }

    #[tokio::test]
    async fn copies_accept_on_the_same_socket_and_only_the_listener_owns_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let l = Listener::bind(&ListenAddr::Unix(path.clone()), 0o660).unwrap();
        let a = l.copy().unwrap().register().unwrap();
        let b = l.copy().unwrap().register().unwrap();
        for copy in [&a, &b] {
            let client = tokio::net::UnixStream::connect(&path).await.unwrap();
            let (_, peer) = copy.accept().await.unwrap();
            assert_eq!(peer, UNIX_PEER);
            drop(client);
        }
        drop((a, b));
        assert!(path.exists(), "a copy never removes the socket file");
        drop(l);
        assert!(!path.exists());

        let l = Listener::bind(&ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()), 0).unwrap();
        let Listener::Tcp(ref inner) = l else {
            unreachable!()
        };
        let addr = inner.local_addr().unwrap();
        let copy = l.copy().unwrap().register().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_, peer) = copy.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
    }

    #[tokio::test]
    async fn unix_socket_replaces_stale_socket_but_not_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sock");
        let addr = ListenAddr::Unix(path.clone());
        let l = Listener::bind(&addr, 0o660).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // A live socket is not taken over.
        assert!(matches!(
            Listener::bind(&addr, 0o666),
            Err(BindError::InUse { .. })
        ));
        drop(l);
        // A stale one, as a crash leaves it (file there, nobody listening),
        // is replaced.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let l2 = Listener::bind(&addr, 0o666).unwrap();
        drop(l2);
        assert!(!path.exists(), "removed on drop");
        std::fs::write(&path, "not a socket").unwrap();
        assert!(matches!(
            Listener::bind(&addr, 0o666),
            Err(BindError::NotASocket { .. })
        ));
    }
}
