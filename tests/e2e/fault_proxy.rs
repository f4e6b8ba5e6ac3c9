//! A fault-injecting HTTP proxy for the end-to-end tests. It sits between the clients under test
//! (the plugin's kube-rs client, kubectl) and the local control plane's kube-apiserver, so a test
//! can make chosen API requests slow, fail with a status, lose their response after the API
//! server acted on them, or have their watch stream cut, and then check what was sent.
//!
//! The proxy listens on a free loopback port and forwards every request unchanged, body and
//! response streamed (watches event by event), to the API server over HTTPS. A test points a
//! kubeconfig at it ([`write_proxied_kubeconfig`], or [`FaultProxy::for_kubeconfig`] for every
//! step at once), adds [`Rule`]s at any time, and reads the log of what arrived
//! ([`FaultProxy::requests`]):
//!
//! ```ignore
//! let proxy = FaultProxy::for_kubeconfig(kubeconfig, &dir.join("proxied"))?;
//! proxy.add(Rule::once("PATCH", "/secrets/app-secrets", Action::DropAfterForward));
//! // ... run the plugin with --kubeconfig DIR/proxied ...
//! assert_eq!(proxy.count("PATCH", "/secrets/app-secrets"), 1);
//! ```
//!
//! The proxy speaks HTTPS to its clients, with the control plane's own serving certificate
//! (`DIR/pki/serving.crt` of `scripts/cluster.sh`, valid for 127.0.0.1 on any port), so the
//! proxied kubeconfig keeps its `certificate-authority-data`. Plain HTTP would be simpler but
//! does not work for kubectl: client-go sends a kubeconfig's credentials only over TLS
//! (kubernetes/kubectl#744), so through an `http://` server every kubectl request is anonymous
//! and forbidden. kube-rs does send its token over `http://`; [`FaultProxy::start`] serves that.
//!
//! It runs on its own thread with its own tokio runtime, so the synchronous tests use it while
//! they run commands; dropping it stops it and closes every connection. It only ever listens on
//! and connects to loopback addresses.
//!
//! Not supported: connection upgrades (`kubectl exec`, `attach`, `port-forward`), which the
//! plugin does not use; the proxy forwards them as plain requests, which the API server refuses.

// A toolkit: each test binary uses only part of it.
#![allow(dead_code)]

use std::error::Error as StdError;
use std::fmt;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, TcpListener as StdTcpListener};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use bytes::Bytes;
use futures::channel::oneshot;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_yaml::Value;

/// What the proxy does to a request a [`Rule`] picked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Wait this long, then forward the request normally.
    Delay(Duration),
    /// Do not forward: answer with this status code and a Kubernetes `Status` body (a 429 also
    /// gets `Retry-After: 1`, which makes client-go and kube-rs retry).
    Respond(u16),
    /// Forward the request and wait for the API server's whole response (so a write IS stored),
    /// then close the client's connection without answering: the client sees the connection end
    /// before any response, as when the network fails after the server acted. A response still
    /// streaming after 30 seconds (a watch) is abandoned then.
    DropAfterForward,
    /// Forward the request, stream the response for this long from when its head arrives, then
    /// end the connection abruptly, mid-body (for cutting watches). A response that ends sooner
    /// is delivered whole.
    CutAfter(Duration),
}

/// Which requests get an [`Action`]. A request matches when its method equals `method` (if
/// given; case-insensitive), its path contains `path_contains` and its query string contains
/// `query_contains` (if given). The first `skip` matching requests pass untouched, the next
/// `times` get the action (`usize::MAX`: all of them), later ones pass untouched again.
///
/// Each rule counts every request it matches, whether or not another rule acted on it; when
/// several rules would act on one request, the one added first does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub method: Option<String>,
    pub path_contains: String,
    pub query_contains: Option<String>,
    pub skip: usize,
    pub times: usize,
    pub action: Action,
}

impl Rule {
    /// A rule for the first request with this method whose path contains `path_contains`.
    pub fn once(method: &str, path_contains: &str, action: Action) -> Rule {
        Rule {
            method: Some(method.to_owned()),
            path_contains: path_contains.to_owned(),
            query_contains: None,
            skip: 0,
            times: 1,
            action,
        }
    }

    fn matches(&self, method: &str, path: &str, query: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path.contains(&self.path_contains)
            && self
                .query_contains
                .as_deref()
                .is_none_or(|q| query.contains(q))
    }
}

/// One request that reached the proxy, in the log [`FaultProxy::requests`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The query string without its `?`; empty when there is none.
    pub query: String,
    /// The status of the response: the API server's, even under `DropAfterForward` where the
    /// client never gets it; the injected one under `Respond`; 502 when the API server could not
    /// be reached. `None` until the response head is there.
    pub status: Option<u16>,
    /// The action applied, as `Delay(1.5s)`, `Respond(503)`, `DropAfterForward` or
    /// `CutAfter(2s)`; `None` when the request passed untouched.
    pub action: Option<String>,
}

/// The running proxy. Dropping it stops it.
pub struct FaultProxy {
    url: String,
    shared: Arc<Mutex<Shared>>,
    /// Dropping this ends the accept loop (the receiver then completes).
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy speaking plain HTTP (`http://127.0.0.1:PORT`) in front of the API server at
    /// `upstream_url` (`https://127.0.0.1:PORT`; only loopback hosts are accepted). Only for
    /// kube-rs clients: kubectl sends no credentials over plain HTTP (see the module's doc).
    ///
    /// The API server's certificate is verified against `ca_pem` when given (the kubeconfig's
    /// `certificate-authority-data`, as [`upstream_from_kubeconfig`] returns it); with `None` it
    /// is not verified at all, which is tolerable only because the upstream is a loopback test
    /// server.
    pub fn start(upstream_url: &str, ca_pem: Option<&[u8]>) -> Result<FaultProxy> {
        FaultProxy::launch(upstream_url, ca_pem, None)
    }

    /// Like [`FaultProxy::start`], but the proxy speaks HTTPS (`https://127.0.0.1:PORT`) with
    /// this certificate chain and private key (PEM), which must be valid for 127.0.0.1.
    pub fn start_tls(
        upstream_url: &str,
        ca_pem: Option<&[u8]>,
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<FaultProxy> {
        let acceptor = tls_acceptor(cert_pem, key_pem)?;
        FaultProxy::launch(upstream_url, ca_pem, Some(acceptor))
    }

    fn launch(
        upstream_url: &str,
        ca_pem: Option<&[u8]>,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
    ) -> Result<FaultProxy> {
        let upstream = loopback_upstream(upstream_url)?;
        let tls = tls_config(ca_pem)?;

        // Bound here, before the thread, so that a failure is this function's error.
        let listener = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context("binding the fault proxy to a loopback port")?;
        listener.set_nonblocking(true)?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the fault proxy's runtime")?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Small writes on loopback would otherwise wait for Nagle's algorithm.
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            // Well under kube-apiserver's own idle timeout (90 s), so that a pooled connection
            // is not reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20))
            .build(https);

        let shared = Arc::new(Mutex::new(Shared::default()));
        let proxy = Arc::new(Proxy {
            upstream,
            client,
            shared: Arc::clone(&shared),
        });
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".to_owned())
            .spawn(move || {
                runtime.block_on(serve(listener, acceptor, proxy, stopped));
                // Dropping the runtime here drops every connection still open.
            })
            .context("starting the fault proxy's thread")?;
        Ok(FaultProxy {
            url,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Starts an HTTPS proxy in front of the current context's API server of `original`, a
    /// kubeconfig written by `scripts/cluster.sh up DIR` (`DIR/kubeconfig`), with the control
    /// plane's serving certificate (`DIR/pki/serving.crt` and `.key`), and writes to `out` a copy
    /// of that kubeconfig that goes through the proxy.
    pub fn for_kubeconfig(original: &Path, out: &Path) -> Result<FaultProxy> {
        let upstream = upstream_from_kubeconfig(original)?;
        let pki = original.parent().unwrap_or(Path::new(".")).join("pki");
        let read = |name: &str| {
            let path = pki.join(name);
            std::fs::read(&path).with_context(|| {
                format!(
                    "reading {} (the proxy serves HTTPS with the control plane's own certificate, \
                     as scripts/cluster.sh leaves it beside the kubeconfig)",
                    path.display()
                )
            })
        };
        let proxy = FaultProxy::start_tls(
            &upstream.server,
            upstream.ca_pem.as_deref(),
            &read("serving.crt")?,
            &read("serving.key")?,
        )?;
        write_proxied_kubeconfig(original, proxy.url(), out)?;
        Ok(proxy)
    }

    /// `https://127.0.0.1:PORT`, or `http://` for a proxy from [`FaultProxy::start`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Adds a rule; it applies to requests that arrive from now on.
    pub fn add(&self, rule: Rule) {
        if let Action::Respond(code) = rule.action {
            assert!(
                StatusCode::from_u16(code).is_ok(),
                "Action::Respond({code}) is not an HTTP status code"
            );
        }
        lock(&self.shared)
            .rules
            .push(RuleState { rule, matched: 0 });
    }

    /// Removes every rule; requests then pass untouched. The log is kept.
    pub fn clear_rules(&self) {
        lock(&self.shared).rules.clear();
    }

    /// Every request so far, in order of arrival.
    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.shared).seen.clone()
    }

    /// How many requests so far had this method (case-insensitive) and a path containing
    /// `path_contains`.
    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        lock(&self.shared)
            .seen
            .iter()
            .filter(|s| s.method.eq_ignore_ascii_case(method) && s.path.contains(path_contains))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A panic on the proxy's thread has nothing more to tell a test that is done with it.
            let _ = thread.join();
        }
    }
}

/// The API server a kubeconfig's current context points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// `server:` of the cluster, e.g. `https://127.0.0.1:6443`.
    pub server: String,
    /// The CA to verify it with, PEM: `certificate-authority-data`, or the file
    /// `certificate-authority` names; `None` when there is neither.
    pub ca_pem: Option<Vec<u8>>,
}

/// Reads the server URL and CA of the current context's cluster (or of the only cluster, when
/// there is no current context) from a kubeconfig.
pub fn upstream_from_kubeconfig(kubeconfig: &Path) -> Result<Upstream> {
    let doc = read_yaml(kubeconfig)?;
    let clusters = doc
        .get("clusters")
        .and_then(Value::as_sequence)
        .with_context(|| format!("{} has no clusters", kubeconfig.display()))?;
    let wanted = doc
        .get("current-context")
        .and_then(Value::as_str)
        .and_then(|current| named(&doc, "contexts", current))
        .and_then(|context| context.get("context")?.get("cluster")?.as_str());
    let entry = match wanted {
        Some(name) => clusters
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .with_context(|| format!("{} has no cluster {name}", kubeconfig.display()))?,
        None if clusters.len() == 1 => &clusters[0],
        None => bail!(
            "{} has no usable current-context and several clusters",
            kubeconfig.display()
        ),
    };
    let cluster = entry
        .get("cluster")
        .with_context(|| format!("a cluster of {} has no `cluster:`", kubeconfig.display()))?;
    let server = cluster
        .get("server")
        .and_then(Value::as_str)
        .with_context(|| format!("a cluster of {} has no server", kubeconfig.display()))?
        .to_owned();
    let ca_pem = if let Some(data) = cluster.get("certificate-authority-data") {
        let data = data
            .as_str()
            .context("certificate-authority-data is not a string")?;
        Some(
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .context("certificate-authority-data is not base64")?,
        )
    } else if let Some(file) = cluster.get("certificate-authority").and_then(Value::as_str) {
        // A relative path is relative to the kubeconfig, as kubectl reads it.
        let path = kubeconfig.parent().unwrap_or(Path::new(".")).join(file);
        Some(std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
    } else {
        None
    };
    Ok(Upstream { server, ca_pem })
}

/// Copies the kubeconfig `original` to `out` (readable by the owner only: it holds tokens) with
/// every cluster's server replaced by `proxy_url`, and without a `proxy-url` that would send the
/// requests elsewhere. For an `http://` proxy the TLS settings go too
/// (certificate-authority(-data), insecure-skip-tls-verify, tls-server-name); an `https://` one
/// serves the API server's own certificate, so they stay. Users, tokens and contexts are kept as
/// they are.
pub fn write_proxied_kubeconfig(original: &Path, proxy_url: &str, out: &Path) -> Result<()> {
    let mut doc = read_yaml(original)?;
    let clusters = doc
        .get_mut("clusters")
        .and_then(Value::as_sequence_mut)
        .with_context(|| format!("{} has no clusters", original.display()))?;
    for entry in clusters {
        let cluster = entry
            .get_mut("cluster")
            .and_then(Value::as_mapping_mut)
            .with_context(|| format!("a cluster of {} has no `cluster:`", original.display()))?;
        cluster.insert("server".into(), proxy_url.into());
        cluster.remove("proxy-url");
        if proxy_url.starts_with("http://") {
            for field in [
                "certificate-authority",
                "certificate-authority-data",
                "insecure-skip-tls-verify",
                "tls-server-name",
            ] {
                cluster.remove(field);
            }
        }
    }
    let text = serde_yaml::to_string(&doc)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("writing {}", out.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn read_yaml(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))
}

/// The entry named `name` of the list `list` (`contexts`, `clusters`) of a kubeconfig.
fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|entry| entry.get("name").and_then(Value::as_str) == Some(name))
}

// --- the proxy itself -------------------------------------------------------------------------

type BoxError = Box<dyn StdError + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// How long `DropAfterForward` waits for the API server's whole response.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Shared {
    rules: Vec<RuleState>,
    seen: Vec<Seen>,
}

struct RuleState {
    rule: Rule,
    /// How many requests matched the rule so far.
    matched: usize,
}

impl Shared {
    /// Logs an arriving request and picks its action; returns its index in the log.
    fn arrive(&mut self, method: &str, path: &str, query: &str) -> (usize, Option<Action>) {
        let mut chosen = None;
        for state in &mut self.rules {
            if !state.rule.matches(method, path, query) {
                continue;
            }
            let n = state.matched;
            state.matched = n.saturating_add(1);
            // Written so that `times: usize::MAX` cannot overflow.
            if chosen.is_none() && n >= state.rule.skip && n - state.rule.skip < state.rule.times {
                chosen = Some(state.rule.action.clone());
            }
        }
        self.seen.push(Seen {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            status: None,
            action: chosen.as_ref().map(|action| format!("{action:?}")),
        });
        (self.seen.len() - 1, chosen)
    }
}

/// A poisoned lock only means a test thread panicked while holding it; the data is still whole.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Proxy {
    /// `https://127.0.0.1:PORT`, without a trailing slash.
    upstream: String,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    shared: Arc<Mutex<Shared>>,
}

/// The error with which the proxy ends a client's connection on purpose: hyper closes a
/// connection whose service fails, without writing a response, and one whose response body
/// fails, without finishing the body.
#[derive(Debug)]
struct Injected(&'static str);

impl fmt::Display for Injected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection ended by the test proxy ({})", self.0)
    }
}

impl StdError for Injected {}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Accepts connections until `stopped` completes (the [`FaultProxy`] is dropped).
async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    proxy: Arc<Proxy>,
    mut stopped: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or the like: try again shortly rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_connection(stream, proxy).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream));
                    if let Ok(Ok(tls)) = handshake.await {
                        serve_connection(tls, proxy).await;
                    }
                }
            }
        });
    }
}

/// Serves the HTTP/1.1 requests of one client connection.
async fn serve_connection<I>(io: I, proxy: Arc<Proxy>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        async move { proxy.handle(request).await }
    });
    // No timer, so no header-read timeout either: the proxy never closes an idle keep-alive
    // connection under a client that is about to reuse it. An error here is a connection ended
    // on purpose or by the client; nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

impl Proxy {
    async fn handle(&self, request: Request<Incoming>) -> Result<Response<ProxyBody>, Injected> {
        let method = request.method().as_str().to_owned();
        let path = request.uri().path().to_owned();
        let query = request.uri().query().unwrap_or("").to_owned();
        let (index, action) = lock(&self.shared).arrive(&method, &path, &query);

        let response = match action {
            Some(Action::Respond(code)) => Ok(status_response(code, "injected by the test proxy")),
            None => self.forward(request, index).await.map(boxed),
            Some(Action::Delay(delay)) => {
                tokio::time::sleep(delay).await;
                self.forward(request, index).await.map(boxed)
            }
            Some(Action::DropAfterForward) => {
                match self.forward(request, index).await {
                    Ok(response) => {
                        // Read it all, so the API server has finished (and stored) what it did.
                        let body = response.into_body().collect();
                        let _ = tokio::time::timeout(DRAIN_LIMIT, body).await;
                    }
                    Err(_) => lock(&self.shared).seen[index].status = Some(502),
                }
                return Err(Injected("DropAfterForward"));
            }
            Some(Action::CutAfter(after)) => self.forward(request, index).await.map(|response| {
                response.map(|body| {
                    CutBody {
                        inner: body,
                        deadline: Box::pin(tokio::time::sleep(after)),
                    }
                    .boxed()
                })
            }),
        };
        let response = response.unwrap_or_else(|err| {
            // hyper's errors say little at the top ("client error (Connect)"): add the causes.
            let mut message = format!("the test proxy could not reach the API server: {err}");
            let mut source = err.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            status_response(502, &message)
        });
        lock(&self.shared).seen[index].status = Some(response.status().as_u16());
        Ok(response)
    }

    /// Sends the request on to the API server; logs the status of its answer.
    async fn forward(
        &self,
        request: Request<Incoming>,
        index: usize,
    ) -> Result<Response<Incoming>, BoxError> {
        let (parts, body) = request.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = format!("{}{}", self.upstream, path_and_query).parse()?;
        let mut upstream = Request::new(body);
        *upstream.method_mut() = parts.method;
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = without_hop_by_hop(parts.headers);
        // The client sets Host from the URI.
        upstream.headers_mut().remove(header::HOST);
        let mut response = self.client.request(upstream).await?;
        lock(&self.shared).seen[index].status = Some(response.status().as_u16());
        let headers = std::mem::take(response.headers_mut());
        *response.headers_mut() = without_hop_by_hop(headers);
        Ok(response)
    }
}

fn boxed(response: Response<Incoming>) -> Response<ProxyBody> {
    response.map(|body| body.map_err(BoxError::from).boxed())
}

/// Headers that belong to one connection, not to the message (RFC 9110, 7.6.1), so that each
/// side's hyper frames the message for its own connection.
fn without_hop_by_hop(mut headers: HeaderMap) -> HeaderMap {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    headers
}

/// A response with a Kubernetes `Status` body, as the API server itself would fail.
fn status_response(code: u16, message: &str) -> Response<ProxyBody> {
    let reason = match code {
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
    .to_string();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    // `add` checked the code; anything else is the proxy's own 502.
    *response.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if code == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// A response body that fails at its deadline, which makes hyper end the client's connection
/// mid-body (for chunked encoding, without the final chunk).
struct CutBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for CutBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(Injected("CutAfter")))));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// --- upstream TLS -----------------------------------------------------------------------------

/// Only loopback hosts over HTTPS: the tests never send traffic anywhere else.
fn loopback_upstream(url: &str) -> Result<String> {
    let uri: Uri = url.parse().with_context(|| format!("{url} is not a URL"))?;
    ensure!(
        uri.scheme_str() == Some("https"),
        "the fault proxy forwards to an https:// API server, not {url}"
    );
    let host = uri.host().with_context(|| format!("{url} has no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ensure!(
        bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        "the fault proxy only forwards to a loopback address, not {host}"
    );
    Ok(url.trim_end_matches('/').to_owned())
}

fn tls_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    // ring, as kube uses: no second crypto provider in the build.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("configuring TLS for the fault proxy")?;
    let config = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.context("reading the API server's CA (PEM)")?)
                    .context("adding the API server's CA")?;
            }
            ensure!(
                !roots.is_empty(),
                "the API server's CA PEM holds no certificate"
            );
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

pub fn tls_acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<tokio_rustls::TlsAcceptor> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("reading the proxy's certificate (PEM)")?;
    ensure!(
        !chain.is_empty(),
        "the proxy's certificate PEM holds no certificate"
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("reading the proxy's key (PEM)")?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("configuring TLS for the fault proxy")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("the proxy's certificate and key do not go together")?;
    // HTTP/1.1 only: Go would otherwise pick HTTP/2, which this proxy does not serve.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Accepts any server certificate (still checking that the server holds its key): used only
/// when no CA is given, for a loopback test API server.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
