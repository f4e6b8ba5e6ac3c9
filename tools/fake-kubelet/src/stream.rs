//! `exec` and `portforward` the way a kubelet serves them over WebSocket (the API server proxies
//! the client's upgrade to `/exec/NS/POD/CONTAINER?command=...` and `/portforward/NS/POD?ports=`).
//!
//! Subprotocols `v5.channel.k8s.io` and `v4.channel.k8s.io`: every binary message is one channel
//! byte then data. Exec: 0 stdin, 1 stdout, 2 stderr, 3 status (a JSON v1 Status), 4 resize
//! (ignored); v5 adds the close message `[255, channel]` (stdin EOF). Port-forward: the i-th
//! requested port has data channel `2i` and error channel `2i+1`, and the first message on each
//! is the channel byte and the port as little-endian u16.
//!
//! "The container" is the host: the command runs as a process with the container's environment
//! (`app::exec_env` for demo-app pods, else only `PATH`), and ports are dialled on the pod's IP,
//! which is local (198.18.0.0/16 routed to lo). Everything is bounded: an exec or forward lasts
//! at most `MAX_SESSION`; the dial waits at most 5 s.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
const MAX_SESSION: Duration = Duration::from_secs(600);
const CLOSE_CHANNEL: u8 = 255;
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;

/// Percent-decoding of a query value (`+` is a space, as Go's `url.Values` encodes it).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = text
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// All values of query parameter `name` in a raw query string, decoded.
pub fn query_values(query: &str, name: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| percent_decode(k) == name)
        .map(|(_, v)| percent_decode(v))
        .collect()
}

/// The first of our subprotocols the client offers, from its `Sec-WebSocket-Protocol` values.
pub fn choose_protocol(offered: &str) -> Option<&'static str> {
    let offered: Vec<&str> = offered.split(',').map(str::trim).collect();
    PROTOCOLS.into_iter().find(|p| offered.contains(p))
}

/// One channel message.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(channel);
    out.extend_from_slice(data);
    out
}

/// The first message of a port-forward channel: the channel byte and the port, little-endian.
pub fn port_frame(channel: u8, port: u16) -> Vec<u8> {
    frame(channel, &port.to_le_bytes())
}

/// What a message from the client means.
#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    Data(u8, &'a [u8]),
    /// v5: the client will send no more on this channel.
    Close(u8),
    Empty,
}

pub fn parse_frame(bytes: &[u8], v5: bool) -> Incoming<'_> {
    match bytes {
        [] => Incoming::Empty,
        [CLOSE_CHANNEL, channel, ..] if v5 => Incoming::Close(*channel),
        [channel, data @ ..] => Incoming::Data(*channel, data),
    }
}

/// The Status an exec ends with: Success, or NonZeroExitCode with the code as a cause.
pub fn exit_status(code: Option<i32>) -> Value {
    match code {
        Some(0) => json!({"metadata": {}, "status": "Success"}),
        Some(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        None => json!({
            "metadata": {},
            "status": "Failure",
            "message": "command terminated by a signal",
            "reason": "InternalError",
        }),
    }
}

/// The 101 answer to a WebSocket upgrade, for the client's `Sec-WebSocket-Key`.
pub fn upgrade_response(key: &str, protocol: &str) -> Vec<u8> {
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
    .into_bytes()
}

/// A header's value from a request head (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Runs `command` with `env` and streams it over `ws` until it exits, then sends the status.
pub async fn exec<S>(
    ws: WebSocketStream<S>,
    v5: bool,
    command: Vec<String>,
    env: BTreeMap<String, String>,
    want_stdin: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    let Some((program, args)) = command.split_first() else {
        let _ = sink
            .send(Message::binary(frame(
                STATUS,
                json!({"metadata": {}, "status": "Failure", "message": "no command", "reason": "BadRequest"}).to_string().as_bytes(),
            )))
            .await;
        close(&mut sink).await;
        return;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .envs(env)
        .stdin(if want_stdin {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    crate::netns::enter(&mut cmd);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(err) => {
            let status = json!({
                "metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("exec: starting {program}: {err}"),
                "details": {"causes": [{"reason": "ExitCode", "message": "127"}]},
            });
            let _ = sink
                .send(Message::binary(frame(
                    STATUS,
                    status.to_string().as_bytes(),
                )))
                .await;
            close(&mut sink).await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut out_buf, mut err_buf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
    let mut client_open = true;
    let session = async {
        loop {
            if stdout.is_none() && stderr.is_none() {
                break;
            }
            tokio::select! {
                read = async { stdout.as_mut().expect("open").read(&mut out_buf).await }, if stdout.is_some() => {
                    match read {
                        Ok(0) | Err(_) => stdout = None,
                        Ok(n) => if sink.send(Message::binary(frame(STDOUT, &out_buf[..n]))).await.is_err() { return false },
                    }
                }
                read = async { stderr.as_mut().expect("open").read(&mut err_buf).await }, if stderr.is_some() => {
                    match read {
                        Ok(0) | Err(_) => stderr = None,
                        Ok(n) => if sink.send(Message::binary(frame(STDERR, &err_buf[..n]))).await.is_err() { return false },
                    }
                }
                message = source.next(), if client_open => {
                    match message {
                        Some(Ok(Message::Binary(bytes))) => match parse_frame(&bytes, v5) {
                            Incoming::Data(STDIN, data) => {
                                if let Some(input) = stdin.as_mut()
                                    && input.write_all(data).await.is_err()
                                {
                                    stdin = None;
                                }
                            }
                            Incoming::Close(STDIN) => stdin = None,
                            _ => {}
                        },
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            client_open = false;
                            stdin = None;
                        }
                        Some(Ok(_)) => {}
                    }
                }
            }
        }
        true
    };
    let finished = matches!(tokio::time::timeout(MAX_SESSION, session).await, Ok(true));
    drop(stdin);
    if !finished {
        let _ = child.kill().await;
        return;
    }
    let code = match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(Ok(status)) => status.code(),
        _ => {
            let _ = child.kill().await;
            None
        }
    };
    let status = exit_status(code);
    let _ = sink
        .send(Message::binary(frame(
            STATUS,
            status.to_string().as_bytes(),
        )))
        .await;
    close(&mut sink).await;
}

/// Forwards each of `ports` to `pod_ip` over `ws` until either side closes.
pub async fn portforward<S>(ws: WebSocketStream<S>, pod_ip: Ipv4Addr, ports: Vec<u16>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut source) = ws.split();
    let (to_client, mut outgoing) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
    let mut writers: Vec<Option<tokio::net::tcp::OwnedWriteHalf>> = Vec::new();
    let mut readers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        if sink
            .send(Message::binary(port_frame(data, *port)))
            .await
            .is_err()
            || sink
                .send(Message::binary(port_frame(error, *port)))
                .await
                .is_err()
        {
            return;
        }
        let dialled = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((pod_ip, *port)),
        )
        .await;
        match dialled {
            Ok(Ok(tcp)) => {
                let (mut read, write) = tcp.into_split();
                writers.push(Some(write));
                let to_client = to_client.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    loop {
                        match read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if to_client.send(frame(data, &buf[..n])).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }));
            }
            failed => {
                let why = match failed {
                    Ok(Err(err)) => err.to_string(),
                    _ => "timed out".to_string(),
                };
                let message = format!(
                    "error forwarding port {port} to pod {pod_ip}: dial tcp {pod_ip}:{port}: {why}"
                );
                let _ = sink
                    .send(Message::binary(frame(error, message.as_bytes())))
                    .await;
                writers.push(None);
            }
        }
    }
    drop(to_client);
    let session = async {
        loop {
            tokio::select! {
                out = outgoing.recv() => match out {
                    Some(bytes) => if sink.send(Message::binary(bytes)).await.is_err() { break },
                    // Every pod-side connection closed: the forward is over.
                    None => break,
                },
                message = source.next() => match message {
                    Some(Ok(Message::Binary(bytes))) => {
                        if let Incoming::Data(channel, data) = parse_frame(&bytes, true)
                            && channel % 2 == 0
                            && let Some(Some(writer)) = writers.get_mut(usize::from(channel / 2))
                            && writer.write_all(data).await.is_err()
                        {
                            writers[usize::from(channel / 2)] = None;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                },
            }
        }
    };
    let _ = tokio::time::timeout(MAX_SESSION, session).await;
    for reader in readers {
        reader.abort();
    }
    close(&mut sink).await;
}

/// Ends the session with a normal closure (1000): Go's client treats a close without a code
/// (1005) as an error.
async fn close<S>(sink: &mut S)
where
    S: futures::Sink<Message> + Unpin,
{
    let normal = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(normal))).await;
    let _ = sink.close().await;
}

/// Wraps a stream whose 101 answer has been written.
pub async fn accept<S>(stream: S) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    WebSocketStream::from_raw_socket(stream, Role::Server, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_all_decoded() {
        let q = "command=sh&command=-c&command=exit+3%3B%20echo&stdin=true&ports=8000";
        assert_eq!(query_values(q, "command"), vec!["sh", "-c", "exit 3; echo"]);
        assert_eq!(query_values(q, "stdin"), vec!["true"]);
        assert!(query_values(q, "tty").is_empty());
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn v5_is_preferred_and_others_are_refused() {
        assert_eq!(
            choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io"),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            choose_protocol("v4.channel.k8s.io"),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(choose_protocol("SPDY/3.1+portforward.k8s.io"), None);
    }

    #[test]
    fn frames_carry_the_channel_first() {
        assert_eq!(frame(STDOUT, b"hi\n"), b"\x01hi\n");
        assert_eq!(port_frame(2, 5432), vec![2, 0x38, 0x15]);
        assert_eq!(port_frame(1, 8000), vec![1, 0x40, 0x1f]);
        assert_eq!(parse_frame(b"\x00data", true), Incoming::Data(0, b"data"));
        assert_eq!(parse_frame(&[255, 0], true), Incoming::Close(0));
        assert_eq!(parse_frame(&[255, 0], false), Incoming::Data(255, &[0]));
        assert_eq!(parse_frame(&[], true), Incoming::Empty);
    }

    #[test]
    fn exit_codes_become_statuses() {
        assert_eq!(exit_status(Some(0))["status"], "Success");
        let failed = exit_status(Some(3));
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn the_upgrade_answer_accepts_the_key() {
        // RFC 6455's example key and answer.
        let answer = String::from_utf8(upgrade_response(
            "dGhlIHNhbXBsZSBub25jZQ==",
            "v5.channel.k8s.io",
        ))
        .expect("text");
        assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
        assert!(answer.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(answer.contains("Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n"));
        assert_eq!(
            header("GET / HTTP/1.1\r\nupgrade: WebSocket\r\n\r\n", "Upgrade"),
            Some("WebSocket")
        );
    }
}
