//! `exec`, `attach` and `portforward`, served with the kubelet's own streaming code: the API
//! server upgrades `/exec/NS/POD/CONTAINER?command=...`, `/attach/...` and
//! `/portforward/NS/POD` to SPDY/3.1 (since 1.30 it translates its clients' WebSocket streams
//! into SPDY towards the kubelet) or, from older releases, to WebSocket. Both protocols are
//! spoken by `kubelet-streams` (tools/kubernetes/kubelet-streams, Go, built on
//! `k8s.io/cri-streaming` as container runtimes are), which this process starts inside the
//! node's network namespace and hands each such request to over a Unix socket in the state
//! directory, once it has checked the pod is on its node and knows what the container is:
//!
//! - `podIP`: where a port-forward dials (the pod's IP, local in the node's namespace);
//! - `env`: an exec's environment (`app::exec_env` for demo-app pods, else nothing but `PATH`);
//! - `logFile`: what an attach follows (a demo-app container's log; else it shows nothing).
//!
//! They travel in the request's `X-Fake-Kubelet-Spec` header (base64 of JSON), which is never
//! logged; one sent by anyone else is dropped first. After that this process only copies bytes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::Child;

pub const SPEC_HEADER: &str = "X-Fake-Kubelet-Spec";

/// What the API server asks of the kubelet's streaming endpoints.
#[derive(Debug, PartialEq)]
pub enum Target {
    Exec {
        namespace: String,
        pod: String,
        container: String,
    },
    Attach {
        namespace: String,
        pod: String,
        container: String,
    },
    PortForward {
        namespace: String,
        pod: String,
    },
}

impl Target {
    /// The target of a streaming upgrade (SPDY/3.1 or WebSocket) from its request head.
    pub fn of_upgrade(head: &str) -> Option<Target> {
        let upgrade = header(head, "Upgrade")?;
        if !(upgrade.eq_ignore_ascii_case("websocket") || upgrade.starts_with("SPDY/")) {
            return None;
        }
        let target = head.lines().next()?.split(' ').nth(1)?;
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let owned = |s: &&str| s.to_string();
        // A kubelet also serves the forms with the pod's UID before the container.
        match path.split('/').skip(1).collect::<Vec<_>>().as_slice() {
            ["exec", ns, pod, container] | ["exec", ns, pod, _, container] => Some(Target::Exec {
                namespace: owned(ns),
                pod: owned(pod),
                container: owned(container),
            }),
            ["attach", ns, pod, container] | ["attach", ns, pod, _, container] => {
                Some(Target::Attach {
                    namespace: owned(ns),
                    pod: owned(pod),
                    container: owned(container),
                })
            }
            ["portforward" | "portForward", ns, pod]
            | ["portforward" | "portForward", ns, pod, _] => Some(Target::PortForward {
                namespace: owned(ns),
                pod: owned(pod),
            }),
            _ => None,
        }
    }

    pub fn pod(&self) -> (&str, &str) {
        match self {
            Target::Exec { namespace, pod, .. }
            | Target::Attach { namespace, pod, .. }
            | Target::PortForward { namespace, pod } => (namespace, pod),
        }
    }
}

/// A header's value from a request head (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// The request head as handed to `kubelet-streams`: any spec header the client sent removed,
/// ours added; what followed the head (bytes the client sent early) kept.
pub fn with_spec(head: &str, spec: &Value) -> Vec<u8> {
    let (lines, rest) = head.split_once("\r\n\r\n").unwrap_or((head, ""));
    let encoded = base64::engine::general_purpose::STANDARD.encode(spec.to_string());
    let mut out = String::with_capacity(head.len() + encoded.len() + 32);
    for line in lines.split("\r\n") {
        let ours = line
            .split_once(':')
            .is_some_and(|(name, _)| name.trim().eq_ignore_ascii_case(SPEC_HEADER));
        if !ours {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("{SPEC_HEADER}: {encoded}\r\n\r\n"));
    out.push_str(rest);
    out.into_bytes()
}

/// The running `kubelet-streams`: where to reach it.
pub struct Streams {
    socket: PathBuf,
}

impl Streams {
    /// Starts `binary` in the node's network namespace, serving on `STATE_DIR/streams.sock`,
    /// and waits (up to 10 s) until it listens. The child is killed when this process exits.
    pub async fn start(binary: &Path, state_dir: &Path) -> Result<(Streams, Child)> {
        let socket = state_dir.join("streams.sock");
        let _ = std::fs::remove_file(&socket);
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("--socket")
            .arg(&socket)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        crate::netns::enter(&mut command);
        crate::app::end_with_this_process(&mut command);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        for _ in 0..100 {
            if UnixStream::connect(&socket).await.is_ok() {
                return Ok((Streams { socket }, child));
            }
            if let Some(status) = child.try_wait()? {
                bail!("{} exited at start ({status})", binary.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} did not listen on {} within 10 s",
            binary.display(),
            socket.display()
        )
    }

    /// Hands the upgrade request (`head`, already read from `client`) over with `spec`, then
    /// copies bytes both ways until either side closes.
    pub async fn hand_over<S>(&self, mut client: S, head: &str, spec: &Value) -> Result<()>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut helper = UnixStream::connect(&self.socket).await.with_context(|| {
            format!("connecting to kubelet-streams at {}", self.socket.display())
        })?;
        helper.write_all(&with_spec(head, spec)).await?;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut helper).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn head(request_line: &str, upgrade: &str) -> String {
        format!("{request_line}\r\nHost: x\r\nUpgrade: {upgrade}\r\nConnection: Upgrade\r\n\r\n")
    }

    #[test]
    fn spdy_and_websocket_upgrades_name_their_target() {
        let exec = head(
            "POST /exec/ns/web-0/app?command=ls&output=1 HTTP/1.1",
            "SPDY/3.1",
        );
        assert_eq!(
            Target::of_upgrade(&exec),
            Some(Target::Exec {
                namespace: "ns".into(),
                pod: "web-0".into(),
                container: "app".into()
            })
        );
        let with_uid = head(
            "GET /attach/ns/web-0/uid-1/app?output=1 HTTP/1.1",
            "websocket",
        );
        assert!(
            matches!(Target::of_upgrade(&with_uid), Some(Target::Attach { container, .. }) if container == "app")
        );
        let forward = head("POST /portForward/ns/db-0 HTTP/1.1", "SPDY/3.1");
        assert_eq!(
            Target::of_upgrade(&forward).map(|t| t.pod().1.to_string()),
            Some("db-0".into())
        );
        assert_eq!(
            Target::of_upgrade(&head("GET /containerLogs/ns/p/c HTTP/1.1", "SPDY/3.1")),
            None
        );
        let plain = "POST /exec/ns/p/c HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(Target::of_upgrade(plain), None, "no upgrade, no stream");
        assert_eq!(
            Target::of_upgrade(&head("POST /exec/ns/p/c HTTP/1.1", "h2c")),
            None
        );
    }

    #[test]
    fn the_spec_header_replaces_any_the_client_sent() {
        let sent = "POST /exec/ns/p/c HTTP/1.1\r\nx-fake-kubelet-spec: planted\r\nUpgrade: SPDY/3.1\r\n\r\nEARLY";
        let spec = json!({"podIP": "198.18.0.7", "env": {}});
        let out = String::from_utf8(with_spec(sent, &spec)).expect("text");
        assert!(!out.contains("planted"), "{out}");
        let (lines, rest) = out.split_once("\r\n\r\n").expect("a head");
        assert_eq!(rest, "EARLY");
        assert!(lines.starts_with("POST /exec/ns/p/c HTTP/1.1\r\n"));
        assert!(lines.contains("Upgrade: SPDY/3.1"));
        let encoded = header(&out, SPEC_HEADER).expect("our header");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        assert_eq!(
            serde_json::from_slice::<Value>(&decoded).expect("json"),
            spec
        );
    }
}
