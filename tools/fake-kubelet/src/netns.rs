//! The node's network namespace (`--netns PATH`, e.g. `/var/run/netns/kubectl-rotate-0`, made
//! by `scripts/cluster.sh`): the node and pod IPs are local there, not on the machine, which
//! reaches them through a veth pair. This process itself stays in the machine's namespace (it
//! talks to the API server on the machine's loopback), but everything that stands for the
//! node's network lives in the node's namespace:
//!
//! - listening sockets (`bind`): the kubelet port on the node IP, the simulated pods' ports,
//!   the Services' node-local addresses; a thread enters the namespace, binds, and hands the
//!   socket back (a socket stays in the namespace it was made in);
//! - processes (`enter`): the pods' containers and `kubectl exec` commands join the namespace
//!   before they start, so a server listens on its pod IP there and a client inside reaches
//!   only the node's addresses.
//!
//! Connections this process opens to pod IPs (probes, port-forwards, the Service proxies'
//! upstream side) go out through the machine's route into the namespace. Without `--netns`
//! everything stays in the current namespace (pod IPs must then be local to the machine).

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::OnceLock;

use tokio::net::TcpListener;

static NETNS: OnceLock<Option<File>> = OnceLock::new();

/// Opens the namespace once, at start (`None`: stay in the current one).
pub fn init(path: Option<&Path>) -> std::io::Result<()> {
    let file = path.map(File::open).transpose()?;
    let _ = NETNS.set(file);
    Ok(())
}

fn fd() -> Option<i32> {
    NETNS.get().and_then(Option::as_ref).map(AsRawFd::as_raw_fd)
}

/// A listener on `addr` in the node's namespace.
pub async fn bind(addr: impl Into<SocketAddr>) -> std::io::Result<TcpListener> {
    let addr = addr.into();
    let Some(fd) = fd() else {
        return TcpListener::bind(addr).await;
    };
    let listener = tokio::task::spawn_blocking(move || {
        // SAFETY: setns(2) on a namespace fd we keep open for the process's life; it changes
        // only this thread's namespace, and this thread is used for nothing else: it ends here.
        let thread = std::thread::spawn(move || {
            if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let listener = std::net::TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        });
        thread
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the binding thread panicked")))
    })
    .await
    .map_err(std::io::Error::other)??;
    TcpListener::from_std(listener)
}

/// Makes `command`'s process join the node's namespace before it starts.
pub fn enter(command: &mut tokio::process::Command) {
    let Some(fd) = fd() else { return };
    // SAFETY: setns(2) is async-signal-safe; the fd is open in the child (inherited).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
