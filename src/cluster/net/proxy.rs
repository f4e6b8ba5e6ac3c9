//! Which proxy a request goes through, decided the way kubectl decides it (pure).
//!
//! kubectl (client-go) uses the kubeconfig cluster's `proxy-url` for every request when it is
//! set; otherwise Go's `http.ProxyFromEnvironment`: `HTTPS_PROXY` for https URLs, `HTTP_PROXY`
//! for http URLs (upper case first, then lower case), unless `NO_PROXY` excludes the host.
//! `NO_PROXY` is read as `golang.org/x/net/http/httpproxy` reads it: comma-separated entries,
//! `*` for everything, CIDRs (`10.0.0.0/8`), IP addresses, domain names that match themselves
//! and their subdomains (`example.com`, `.example.com` and `*.example.com` alike, the leading dot
//! only dropping the domain itself), each optionally with `:PORT`. Like Go, `localhost` and
//! loopback addresses never go through a proxy from the environment.

use std::net::IpAddr;

use anyhow::{Result, bail};
use http::Uri;
use ipnet::IpNet;

/// The proxy variables of the environment, read once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl ProxyEnv {
    /// Reads `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`, `NO_PROXY`/`no_proxy` (the
    /// upper-case name first, an empty value counting as unset, as Go does).
    pub fn from_process() -> Self {
        let read = |upper: &str, lower: &str| {
            [upper, lower]
                .iter()
                .filter_map(|name| std::env::var(name).ok())
                .find(|value| !value.is_empty())
        };
        ProxyEnv {
            https_proxy: read("HTTPS_PROXY", "https_proxy"),
            http_proxy: read("HTTP_PROXY", "http_proxy"),
            no_proxy: read("NO_PROXY", "no_proxy"),
        }
    }
}

/// How a connection to the destination is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Direct,
    /// Through `proxy` (scheme http, https or socks5); `from` says where it was configured, for
    /// messages (`proxy-url of cluster "x"`, `HTTPS_PROXY`).
    Proxy {
        proxy: Uri,
        from: String,
    },
}

impl Route {
    pub fn describe(&self) -> Option<String> {
        match self {
            Route::Direct => None,
            Route::Proxy { proxy, from } => {
                Some(format!("through the proxy {} ({from})", redacted(proxy)))
            }
        }
    }
}

/// The proxy's URL without its user information (a password may be in it).
pub fn redacted(proxy: &Uri) -> String {
    let authority = proxy.authority().map(|a| a.as_str()).unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{}://{host}", proxy.scheme_str().unwrap_or("http"))
}

/// The route to `destination`: the kubeconfig's `proxy_url` when given (`from` names it), else the
/// environment's.
pub fn route(destination: &Uri, proxy_url: Option<(&str, &str)>, env: &ProxyEnv) -> Result<Route> {
    if let Some((url, from)) = proxy_url.filter(|(url, _)| !url.is_empty()) {
        return Ok(Route::Proxy {
            proxy: parse_proxy(url, from)?,
            from: from.to_string(),
        });
    }
    let (value, name) = match destination.scheme_str() {
        Some("https") => (&env.https_proxy, "HTTPS_PROXY"),
        Some("http") => (&env.http_proxy, "HTTP_PROXY"),
        _ => return Ok(Route::Direct),
    };
    let Some(value) = value else {
        return Ok(Route::Direct);
    };
    if !use_proxy(destination, env.no_proxy.as_deref().unwrap_or("")) {
        return Ok(Route::Direct);
    }
    Ok(Route::Proxy {
        proxy: parse_proxy(value, name)?,
        from: name.to_string(),
    })
}

/// A proxy URL as Go reads it: without a scheme (`proxy.corp:3128`) it is `http://`; the
/// schemes kubectl's transport can use are http, https, socks5 (and socks5h, the same).
fn parse_proxy(text: &str, from: &str) -> Result<Uri> {
    let text = text.trim();
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    let Ok(uri) = with_scheme.parse::<Uri>() else {
        bail!(
            "the proxy URL in {from} is not a URL: {:?}",
            strip_userinfo(text)
        );
    };
    match uri.scheme_str() {
        Some("http" | "https" | "socks5" | "socks5h")
            if uri.host().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(uri)
        }
        Some(scheme @ ("http" | "https" | "socks5" | "socks5h")) => {
            bail!("the proxy URL in {from} ({scheme}://...) has no host")
        }
        other => bail!(
            "the proxy URL in {from} has the scheme {:?}; kubectl and this plugin support http, https and socks5",
            other.unwrap_or("")
        ),
    }
}

fn strip_userinfo(text: &str) -> String {
    match (text.find("://"), text.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}{}", &text[..scheme + 3], &text[at + 1..])
        }
        (None, Some(at)) => text[at + 1..].to_string(),
        _ => text.to_string(),
    }
}

/// One entry of `NO_PROXY`.
#[derive(Debug, Clone, PartialEq)]
enum Exclusion {
    All,
    Cidr(IpNet),
    Ip {
        ip: IpAddr,
        port: Option<String>,
    },
    /// `suffix` starts with a dot; `exact` also matches the domain itself (entries without a
    /// leading dot).
    Domain {
        suffix: String,
        exact: bool,
        port: Option<String>,
    },
}

fn exclusions(no_proxy: &str) -> Vec<Exclusion> {
    let mut out = Vec::new();
    for entry in no_proxy.split(',') {
        let entry = entry.trim().to_ascii_lowercase();
        if entry.is_empty() {
            continue;
        }
        if entry == "*" {
            out.push(Exclusion::All);
            continue;
        }
        if let Ok(net) = entry.parse::<IpNet>() {
            out.push(Exclusion::Cidr(net));
            continue;
        }
        let (host, port) = split_host_port(&entry);
        if let Ok(ip) = host.parse::<IpAddr>() {
            out.push(Exclusion::Ip { ip, port });
            continue;
        }
        if host.is_empty() {
            continue;
        }
        let host = host
            .strip_prefix('*')
            .filter(|h| h.starts_with('.'))
            .unwrap_or(host);
        let (suffix, exact) = match host.strip_prefix('.') {
            Some(_) => (host.to_string(), false),
            None => (format!(".{host}"), true),
        };
        out.push(Exclusion::Domain {
            suffix,
            exact,
            port,
        });
    }
    out
}

/// Splits `host:port` as Go's `net.SplitHostPort` would for a NO_PROXY entry; an entry that is
/// not `host:port` is all host (an IPv6 address in brackets loses them).
fn split_host_port(entry: &str) -> (&str, Option<String>) {
    if let Some(rest) = entry.strip_prefix('[')
        && let Some((host, after)) = rest.split_once(']')
    {
        return match after.strip_prefix(':') {
            Some(port) if !port.is_empty() => (host, Some(port.to_string())),
            _ => (host, None),
        };
    }
    match entry.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !port.is_empty() => {
            (host, Some(port.to_string()))
        }
        _ => (entry, None),
    }
}

/// Whether a request to `destination` goes through the environment's proxy (Go's `useProxy`).
pub fn use_proxy(destination: &Uri, no_proxy: &str) -> bool {
    let Some(host) = destination.host() else {
        return true;
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = destination
        .port_u16()
        .unwrap_or(match destination.scheme_str() {
            Some("http") => 80,
            _ => 443,
        })
        .to_string();
    if host == "localhost" {
        return false;
    }
    let ip = host.parse::<IpAddr>().ok();
    if ip.is_some_and(|ip| ip.is_loopback() || is_mapped_loopback(ip)) {
        return false;
    }
    let port_matches = |wanted: &Option<String>| wanted.as_ref().is_none_or(|p| *p == port);
    for exclusion in exclusions(no_proxy) {
        let excluded = match (&exclusion, ip) {
            (Exclusion::All, _) => true,
            (Exclusion::Cidr(net), Some(ip)) => net.contains(&ip),
            (
                Exclusion::Ip {
                    ip: excluded,
                    port: wanted,
                },
                Some(ip),
            ) => *excluded == ip && port_matches(wanted),
            (
                Exclusion::Domain {
                    suffix,
                    exact,
                    port: wanted,
                },
                _,
            ) => {
                (host.ends_with(suffix.as_str()) || (*exact && host == suffix[1..]))
                    && port_matches(wanted)
            }
            _ => false,
        };
        if excluded {
            return false;
        }
    }
    true
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    fn env(https: Option<&str>, http: Option<&str>, no: Option<&str>) -> ProxyEnv {
        ProxyEnv {
            https_proxy: https.map(str::to_string),
            http_proxy: http.map(str::to_string),
            no_proxy: no.map(str::to_string),
        }
    }

    fn proxied(destination: &str, no_proxy: &str) -> bool {
        use_proxy(&uri(destination), no_proxy)
    }

    /// The cases of Go's `httpproxy` tests (x/net/http/httpproxy/proxy_test.go, `UseProxyTests`
    /// and `ProxyForURLTests`), by behaviour.
    #[test]
    fn no_proxy_is_read_as_go_reads_it() {
        let no_proxy = "foobar.com, .barbaz.net, *.wildcard.com, 10.0.0.0/8, 192.168.1.1, \
                        192.168.1.2:81, 192.168.1.3:80, [2001:db8::52:0:1]:80, 2001:db8::52:0:2, \
                        example.org:8443";
        // Never proxied: localhost and loopback, whatever NO_PROXY says.
        assert!(!proxied("https://localhost", ""));
        assert!(!proxied("https://127.0.0.1:6443", ""));
        assert!(!proxied("https://127.1.2.3", ""));
        assert!(!proxied("https://[::1]:6443", ""));
        // Domains: the entry itself and its subdomains; a leading dot or `*.` only subdomains.
        assert!(!proxied("https://foobar.com", no_proxy));
        assert!(!proxied("https://www.foobar.com", no_proxy));
        assert!(proxied("https://foofoobar.com", no_proxy));
        assert!(proxied("https://barbaz.net", no_proxy));
        assert!(!proxied("https://www.barbaz.net", no_proxy));
        assert!(proxied("https://wildcard.com", no_proxy));
        assert!(!proxied("https://www.wildcard.com", no_proxy));
        assert!(!proxied("https://FOOBAR.COM", no_proxy));
        // CIDRs and addresses, with or without a port.
        assert!(!proxied("https://10.1.2.3:6443", no_proxy));
        assert!(proxied("https://11.1.2.3", no_proxy));
        assert!(!proxied("https://192.168.1.1:6443", no_proxy));
        assert!(!proxied("https://192.168.1.2:81", no_proxy));
        assert!(proxied("https://192.168.1.2:443", no_proxy));
        assert!(!proxied("http://192.168.1.3", no_proxy));
        assert!(proxied("https://192.168.1.3", no_proxy));
        assert!(!proxied("http://[2001:db8::52:0:1]", no_proxy));
        assert!(proxied("https://[2001:db8::52:0:1]", no_proxy));
        assert!(!proxied("https://[2001:db8::52:0:2]:6443", no_proxy));
        // A port on a domain entry.
        assert!(!proxied("https://example.org:8443", no_proxy));
        assert!(!proxied("https://api.example.org:8443", no_proxy));
        assert!(proxied("https://example.org", no_proxy));
        // `*` alone excludes everything; an empty entry excludes nothing.
        assert!(!proxied("https://anything.example", "*"));
        assert!(proxied("https://anything.example", " , "));
    }

    #[test]
    fn the_kubeconfigs_proxy_url_wins_over_the_environment_and_no_proxy() {
        let environment = env(Some("http://env-proxy:3128"), None, Some("*"));
        let route = route(
            &uri("https://127.0.0.1:6443"),
            Some((
                "socks5://user:pw@proxy.corp:1080",
                "proxy-url of cluster \"c\"",
            )),
            &environment,
        )
        .unwrap();
        let Route::Proxy { proxy, from } = route else {
            panic!("not proxied");
        };
        assert_eq!(proxy, uri("socks5://user:pw@proxy.corp:1080"));
        assert_eq!(from, "proxy-url of cluster \"c\"");
        assert_eq!(redacted(&proxy), "socks5://proxy.corp:1080");
    }

    #[test]
    fn the_environment_proxy_follows_the_scheme_and_no_proxy() {
        let environment = env(
            Some("proxy.corp:3128"),
            Some("http://plain:80"),
            Some(".corp.example"),
        );
        assert_eq!(
            route(&uri("https://api.prod.example:6443"), None, &environment).unwrap(),
            Route::Proxy {
                proxy: uri("http://proxy.corp:3128"),
                from: "HTTPS_PROXY".into()
            }
        );
        assert_eq!(
            route(&uri("http://api.prod.example"), None, &environment).unwrap(),
            Route::Proxy {
                proxy: uri("http://plain:80"),
                from: "HTTP_PROXY".into()
            }
        );
        assert_eq!(
            route(&uri("https://kube.corp.example:6443"), None, &environment).unwrap(),
            Route::Direct
        );
        assert_eq!(
            route(&uri("https://127.0.0.1:6443"), None, &environment).unwrap(),
            Route::Direct
        );
        assert_eq!(
            route(
                &uri("https://api.prod.example"),
                None,
                &env(None, Some("http://plain"), None)
            )
            .unwrap(),
            Route::Direct
        );
    }

    #[test]
    fn a_bad_proxy_url_is_named_without_its_password() {
        let err = route(
            &uri("https://api.example"),
            None,
            &env(Some("ftp://user:secret@proxy:21"), None, None),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("HTTPS_PROXY") && err.contains("\"ftp\""),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        let err = route(
            &uri("https://api.example"),
            Some(("http://us er:secret@[bad", "proxy-url")),
            &ProxyEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("proxy-url") && !err.contains("secret"),
            "{err}"
        );
    }
}
