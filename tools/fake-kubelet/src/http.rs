//! Just enough HTTP/1.1 for the two clients the fake kubelet has: the API server fetching
//! container logs, and the API server's pod proxy calling a pod's port. One request per
//! connection (the response says `Connection: close`), no request bodies, no percent-decoding
//! (namespaces, pod and container names and the query values we read never need it).
//! A test tool's server, not a general one: the request head is parsed by a pure function.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The parts of a request the handlers look at.
#[derive(Debug, PartialEq)]
pub struct Request {
    pub method: String,
    pub path: String,
    query: Vec<(String, String)>,
}

impl Request {
    /// The first value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            body: body.into(),
        }
    }

    /// A plain-text error the way the kubelet and Go's http package write one.
    pub fn error(status: u16, message: &str) -> Self {
        Self::new(status, format!("{message}\n"))
    }
}

/// Parses the request line of a request head: `GET /path?a=1&b HTTP/1.1`.
pub fn parse_request(head: &str) -> Option<Request> {
    let line = head.lines().next()?;
    let mut words = line.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        query,
    })
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The bytes of a response; `HEAD` gets the headers only.
pub fn render_response(response: &Response, head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason_phrase(response.status),
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(response.body.as_bytes());
    }
    out
}

/// Reads a request head (through the blank line) from `stream`. `None` for a client that sends
/// no complete head within 10 s, or more than 16 KiB of it.
pub async fn read_head<S>(stream: &mut S) -> Option<String>
where
    S: AsyncRead + Unpin,
{
    const MAX_HEAD: usize = 16 * 1024;
    let mut head = Vec::new();
    let read_head = async {
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), read_head).await,
        Ok(true)
    ) {
        return None;
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// Answers the request whose `head` was read from `stream` with `handle` and closes the
/// connection.
pub async fn answer<S, F, Fut>(mut stream: S, head: &str, handle: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (response, head_only) = match parse_request(head) {
        Some(request) => {
            let head_only = request.method == "HEAD";
            (handle(request).await, head_only)
        }
        None => (Response::error(400, "malformed HTTP request"), false),
    };
    // The client may already be gone; there is nobody to tell.
    let _ = stream
        .write_all(&render_response(&response, head_only))
        .await;
    let _ = stream.shutdown().await;
}

/// Reads one request from `stream`, answers it with `handle` and closes the connection.
pub async fn serve_one<S, F, Fut>(mut stream: S, handle: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if let Some(head) = read_head(&mut stream).await {
        answer(stream, &head, handle).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_line_gives_method_path_and_query() {
        let request = parse_request(
            "GET /containerLogs/ns/pod/app?tailLines=1&timestamps=true&follow HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .expect("valid");
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/containerLogs/ns/pod/app");
        assert_eq!(request.query("tailLines"), Some("1"));
        assert_eq!(request.query("timestamps"), Some("true"));
        assert_eq!(request.query("follow"), Some(""));
        assert_eq!(request.query("previous"), None);
    }

    #[test]
    fn malformed_request_lines_are_rejected() {
        for bad in [
            "",
            "GET",
            "GET /x",
            "GET x HTTP/1.1",
            "GET /x SPDY/3",
            "GET /x HTTP/1.1 y",
        ] {
            assert_eq!(parse_request(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_response_has_its_length_and_closes_the_connection() {
        let bytes = render_response(&Response::new(200, "ok\n"), false);
        assert_eq!(
            String::from_utf8(bytes).expect("text"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"
        );
        let head = render_response(&Response::new(404, "nope\n"), true);
        assert!(
            String::from_utf8(head)
                .expect("text")
                .ends_with("Content-Length: 5\r\nConnection: close\r\n\r\n")
        );
    }

    #[tokio::test]
    async fn one_request_is_answered_over_a_stream() {
        let (mut client, server) = tokio::io::duplex(4096);
        let serving = tokio::spawn(serve_one(server, |req: Request| async move {
            Response::new(200, format!("{} {}\n", req.method, req.path))
        }));
        client
            .write_all(b"GET /health?x=1 HTTP/1.1\r\nHost: pod\r\n\r\n")
            .await
            .expect("write");
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.expect("read");
        serving.await.expect("served");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nGET /health\n"), "{answer}");
    }
}
