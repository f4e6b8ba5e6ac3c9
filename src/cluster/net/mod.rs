//! How the plugin reaches an HTTPS server, the way kubectl does: directly or through the proxy
//! kubectl would use (`proxy.rs`: the kubeconfig's `proxy-url`, else `HTTPS_PROXY`/`NO_PROXY`),
//! over http, https or socks5 proxies, with server verification as Go's `crypto/x509` does it
//! (`verify.rs`). The API server client (`cluster::connect`) and the OpenAI key check (`systems::openai`)
//! share it; CONNECT and SOCKS5 are hyper-util's.

pub mod proxy;
pub mod verify;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{Result, anyhow};
use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

pub use proxy::{ProxyEnv, Route};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection to the destination (direct, or a tunnel through a proxy), before TLS to it.
pub struct Conn(Box<dyn Io>);

trait Io: Read + Write + Send + Unpin + 'static {}
impl<T: Read + Write + Send + Unpin + 'static> Io for T {}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Opens the TCP connection (TCP_NODELAY on: kube-rs/kube#2056) or the tunnel a [`Route`] says.
#[derive(Clone)]
pub struct RouteConnector {
    way: Way,
    /// How the route is named in errors (`through the proxy http://proxy:3128 (HTTPS_PROXY)`).
    described: Option<String>,
}

#[derive(Clone)]
enum Way {
    Direct(HttpConnector),
    Http(Tunnel<HttpConnector>),
    Https(Tunnel<HttpsConnector<HttpConnector>>),
    Socks(SocksV5<HttpConnector>),
}

fn tcp() -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http
}

impl RouteConnector {
    /// `tls` is used for an https proxy: Go's transport verifies the proxy with the same TLS
    /// settings as the server (for kubectl, the kubeconfig's CA).
    pub fn new(route: &Route, tls: &ClientConfig) -> Result<Self> {
        let described = route.describe();
        let way = match route {
            Route::Direct => Way::Direct(tcp()),
            Route::Proxy { proxy, .. } => {
                let scheme = proxy.scheme_str().unwrap_or("http");
                let host = proxy.host().unwrap_or_default();
                let port = proxy.port_u16().unwrap_or(match scheme {
                    "https" => 443,
                    "socks5" | "socks5h" => 1080,
                    _ => 80,
                });
                let (user, password) = userinfo(proxy);
                let at = |scheme: &str| -> Result<Uri> {
                    let host = if host.contains(':') && !host.starts_with('[') {
                        format!("[{host}]")
                    } else {
                        host.to_string()
                    };
                    format!("{scheme}://{host}:{port}")
                        .parse::<Uri>()
                        .map_err(|e| {
                            anyhow!("the proxy {} is not usable: {e}", proxy::redacted(proxy))
                        })
                };
                let authorization = user.as_ref().map(|user| {
                    use base64::Engine as _;
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{}", password.as_deref().unwrap_or("")));
                    let mut value = http::HeaderValue::from_str(&format!("Basic {token}"))
                        .unwrap_or_else(|_| http::HeaderValue::from_static(""));
                    value.set_sensitive(true);
                    value
                });
                match scheme {
                    "http" => {
                        let tunnel = Tunnel::new(at("http")?, tcp());
                        Way::Http(match authorization {
                            Some(value) => tunnel.with_auth(value),
                            None => tunnel,
                        })
                    }
                    "https" => {
                        let to_proxy = HttpsConnectorBuilder::new()
                            .with_tls_config(tls.clone())
                            .https_only()
                            .enable_http1()
                            .wrap_connector(tcp());
                        let tunnel = Tunnel::new(at("https")?, to_proxy);
                        Way::Https(match authorization {
                            Some(value) => tunnel.with_auth(value),
                            None => tunnel,
                        })
                    }
                    _ => {
                        let socks = SocksV5::new(at("socks5")?, tcp()).local_dns(false);
                        Way::Socks(match user {
                            Some(user) => socks.with_auth(user, password.unwrap_or_default()),
                            None => socks,
                        })
                    }
                }
            }
        };
        Ok(RouteConnector { way, described })
    }
}

/// The proxy URL's user and password, percent-decoded.
fn userinfo(proxy: &Uri) -> (Option<String>, Option<String>) {
    let Some(authority) = proxy.authority() else {
        return (None, None);
    };
    let Some((info, _)) = authority.as_str().rsplit_once('@') else {
        return (None, None);
    };
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if bytes[i] == b'%'
                && i + 2 < bytes.len()
                && let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
            {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    match info.split_once(':') {
        Some((user, password)) => (Some(decode(user)), Some(decode(password))),
        None => (Some(decode(info)), None),
    }
}

impl tower::Service<Uri> for RouteConnector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, destination: Uri) -> Self::Future {
        use tower::ServiceExt as _;
        let described = self.described.clone();
        let through = move |e: BoxError| -> BoxError {
            match &described {
                Some(route) => format!(
                    "cannot connect {route}: {}",
                    crate::model::errors::error_chain(&*e)
                )
                .into(),
                None => e,
            }
        };
        match self.way.clone() {
            Way::Direct(c) => {
                Box::pin(async move { Ok(Conn(Box::new(c.oneshot(destination).await?))) })
            }
            Way::Http(c) => Box::pin(async move {
                c.oneshot(destination)
                    .await
                    .map(|io| Conn(Box::new(io)))
                    .map_err(|e| through(Box::new(e)))
            }),
            Way::Https(c) => Box::pin(async move {
                c.oneshot(destination)
                    .await
                    .map(|io| Conn(Box::new(io)))
                    .map_err(|e| through(Box::new(e)))
            }),
            Way::Socks(c) => Box::pin(async move {
                c.oneshot(destination)
                    .await
                    .map(|io| Conn(Box::new(io)))
                    .map_err(|e| through(format!("SOCKS5: {e:?}").into()))
            }),
        }
    }
}

/// TLS over the route: `server_name` overrides the URL's host for SNI and verification
/// (the kubeconfig's `tls-server-name`).
pub fn https_connector(
    route: &Route,
    tls: ClientConfig,
    server_name: Option<&str>,
) -> Result<HttpsConnector<RouteConnector>> {
    let connector = RouteConnector::new(route, &tls)?;
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    let builder = match server_name {
        Some(name) => {
            let name = ServerName::try_from(name.to_string()).map_err(|e| {
                anyhow!("tls-server-name {name:?} is not a host name or address: {e}")
            })?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(builder.enable_http1().wrap_connector(connector))
}

/// A client configuration that trusts this machine's certificate store, for servers other than
/// the API server (the OpenAI key check).
pub fn platform_tls() -> Result<ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow!("TLS: {e}"))?
            .with_platform_verifier()
            .map_err(|e| anyhow!("cannot read this machine's trusted certificates: {e}"))?
            .with_no_client_auth();
    Ok(config)
}
