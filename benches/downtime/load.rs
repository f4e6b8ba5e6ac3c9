//! The load: a steady, bounded rate of `GET` requests to the Ready addresses of an Endpoints
//! object, round-robin, the way a Service routes new connections.
//!
//! - **Routing**: a kube-rs watch on the Endpoints object (`follow`) keeps the list of ready
//!   addresses (`subsets[].addresses`, never `notReadyAddresses`) current; each request takes
//!   the next one of the list as it is when the request is due. An address that is not local to
//!   this machine (the test cluster's pod IPs are, through `scripts/cluster.sh`'s local route)
//!   is never contacted: it is dropped from the list with a warning.
//! - **Requests**: one new connection per request (`Connection: close`), HTTP/1.1, the answer
//!   read to its end, all within the timeout. Failed: an error, the timeout, a non-2xx status,
//!   or no ready address when the request is due.
//! - **Bounds**: the schedule is fixed (request i is due at i/rate seconds), so requests in
//!   flight are at most rate x timeout; the loop stops when told or after `max` at the latest,
//!   and waits for the requests in flight (each bounded by the timeout).

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Endpoints;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::figures::Outcome;

/// What the load sends, how often, and how long it waits for each answer.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    pub rate: u32,
    pub timeout: Duration,
    pub path: String,
    /// The latest the load stops, whatever happens.
    pub max: Duration,
}

/// One request: when it was sent, where (none when no address was ready), and how it ended.
#[derive(Clone, Debug)]
pub struct Record {
    pub sent: Instant,
    pub target: Option<SocketAddr>,
    pub outcome: Outcome,
}

/// The ready addresses of an Endpoints object, with each subset's first port, sorted.
pub fn ready_addresses(endpoints: &Endpoints) -> Vec<SocketAddr> {
    let mut out = BTreeSet::new();
    for subset in endpoints.subsets.iter().flatten() {
        let Some(port) = subset.ports.iter().flatten().next() else {
            continue;
        };
        let Ok(port) = u16::try_from(port.port) else {
            continue;
        };
        for address in subset.addresses.iter().flatten() {
            if let Ok(ip) = address.ip.parse::<IpAddr>() {
                out.insert(SocketAddr::new(ip, port));
            }
        }
    }
    out.into_iter().collect()
}

/// Whether `ip` is an address of this machine: binding a socket to it works only then.
fn is_local(ip: IpAddr) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// An IPv4 network, `a.b.c.d/len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    base: u32,
    len: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (address, len) = text.trim().split_once('/')?;
        let address: Ipv4Addr = address.parse().ok()?;
        let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
        Some(Network {
            base: u32::from(address) & Self::mask(len),
            len,
        })
    }

    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(v4) => u32::from(v4) & Self::mask(self.len) == self.base,
            IpAddr::V6(_) => false,
        }
    }
}

/// Where the load may send requests: the test cluster's pod network (`scripts/cluster.sh`'s
/// `$CLUSTER_POD_NETWORK`, by default part of RFC 2544's benchmarking range, which no real
/// network uses), or an address of this machine. Nothing else, whatever the Endpoints say.
fn allowed(ip: IpAddr, pod_network: Network) -> bool {
    pod_network.contains(ip) || is_local(ip)
}

/// The watch on Endpoints `name`; the current ready, local addresses in `addresses`. Stops its
/// task when dropped.
pub struct Follower {
    pub addresses: watch::Receiver<Vec<SocketAddr>>,
    task: JoinHandle<()>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts following Endpoints `name` in `namespace` (on the current Tokio runtime); addresses
/// outside `pod_network` that are not this machine's are left out (see `allowed`).
pub fn follow(client: kube::Client, namespace: &str, name: &str, pod_network: Network) -> Follower {
    let (tx, rx) = watch::channel(Vec::new());
    let api: Api<Endpoints> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let task = tokio::spawn(async move {
        let mut local: HashMap<IpAddr, bool> = HashMap::new();
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        while let Some(event) = events.next().await {
            let addresses = match event {
                Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => ready_addresses(&e),
                Ok(watcher::Event::Delete(_)) => Vec::new(),
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(err) => {
                    eprintln!("bench: watch on endpoints: {err}");
                    continue;
                }
            };
            let kept = addresses
                .into_iter()
                .filter(|a| {
                    *local.entry(a.ip()).or_insert_with(|| {
                        let ok = allowed(a.ip(), pod_network);
                        if !ok {
                            eprintln!(
                                "bench: warning: {a} is neither in the pod network nor local; \
                                 no request goes there"
                            );
                        }
                        ok
                    })
                })
                .collect();
            tx.send_replace(kept);
        }
    });
    Follower {
        addresses: rx,
        task,
    }
}

/// Waits (at most `limit`) until `n` addresses are ready.
pub async fn wait_ready(
    addresses: &mut watch::Receiver<Vec<SocketAddr>>,
    n: usize,
    limit: Duration,
) -> bool {
    let ready = addresses.wait_for(|list| list.len() == n);
    matches!(tokio::time::timeout(limit, ready).await, Ok(Ok(_)))
}

/// Sends the load until `stop` turns true (or is dropped), or `config.max` has passed.
pub async fn run(
    addresses: watch::Receiver<Vec<SocketAddr>>,
    config: LoadConfig,
    mut stop: watch::Receiver<bool>,
) -> Vec<Record> {
    let start = Instant::now();
    let period = Duration::from_secs(1) / config.rate.max(1);
    let next = Arc::new(AtomicUsize::new(0));
    let path: Arc<str> = config.path.into();
    let mut in_flight = JoinSet::new();
    for i in 0.. {
        let due = start + period * i;
        if due > start + config.max || *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
        let sent = Instant::now();
        let target = {
            let list = addresses.borrow();
            (!list.is_empty()).then(|| list[next.fetch_add(1, Ordering::Relaxed) % list.len()])
        };
        let (path, timeout) = (path.clone(), config.timeout);
        in_flight.spawn(async move {
            let outcome = match target {
                None => Outcome::NoEndpoint,
                Some(addr) => match tokio::time::timeout(timeout, get(addr, &path)).await {
                    Ok(outcome) => outcome,
                    Err(_) => Outcome::Timeout,
                },
            };
            Record {
                sent,
                target,
                outcome,
            }
        });
    }
    let mut records = Vec::new();
    while let Some(done) = in_flight.join_next().await {
        if let Ok(record) = done {
            records.push(record);
        }
    }
    records.sort_by_key(|r| r.sent);
    records
}

/// One `GET path` on a new connection to `addr`.
async fn get(addr: SocketAddr, path: &str) -> Outcome {
    let stream = match TcpStream::connect(addr).await {
        Ok(stream) => stream,
        Err(err) => return Outcome::Error(format!("connect: {}", err.kind())),
    };
    let (mut sender, connection) =
        match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(err) => return Outcome::Error(format!("handshake: {err}")),
        };
    let request = Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let Ok(request) = request else {
        return Outcome::Error("invalid request".into());
    };
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok::<u16, String>(status)
    };
    // The connection runs alongside the exchange, and ends once it is done (the sender dropped).
    let (result, _) = tokio::join!(exchange, connection);
    match result {
        Ok(status) if (200..300).contains(&status) => Outcome::Ok(status),
        Ok(status) => Outcome::Status(status),
        Err(what) => Outcome::Error(what),
    }
}

pub fn tests() -> Vec<(&'static str, fn())> {
    vec![
        (
            "load::ready_addresses_skip_not_ready_ones",
            ready_addresses_skip_not_ready_ones,
        ),
        (
            "load::ready_addresses_of_empty_endpoints",
            ready_addresses_of_empty_endpoints,
        ),
        (
            "load::only_pod_network_or_local_addresses",
            only_pod_network_or_local_addresses,
        ),
        (
            "load::pod_network_parses_and_contains",
            pod_network_parses_and_contains,
        ),
    ]
}

fn ready_addresses_skip_not_ready_ones() {
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "api"},
        "subsets": [{
            "addresses": [{"ip": "198.18.4.9"}, {"ip": "198.18.4.3"}],
            "notReadyAddresses": [{"ip": "198.18.4.7"}],
            "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        }, {
            "notReadyAddresses": [{"ip": "198.18.4.8"}],
            "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
        }],
    }))
    .expect("an Endpoints object");
    let got: Vec<String> = ready_addresses(&endpoints)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, ["198.18.4.3:8000", "198.18.4.9:8000"]);
}

fn ready_addresses_of_empty_endpoints() {
    let endpoints: Endpoints =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "api"}}))
            .expect("an Endpoints object");
    assert!(ready_addresses(&endpoints).is_empty());
}

fn only_pod_network_or_local_addresses() {
    let pods = Network::parse("198.18.0.0/16").expect("a network");
    let ip = |text: &str| text.parse::<IpAddr>().expect("an IP");
    assert!(is_local(ip("127.0.0.1")));
    assert!(allowed(ip("127.0.0.1"), pods));
    assert!(allowed(ip("198.18.200.4"), pods));
    // TEST-NET-3 (RFC 5737): documentation only, never an address of this machine.
    assert!(!is_local(ip("203.0.113.7")));
    assert!(!allowed(ip("203.0.113.7"), pods));
}

fn pod_network_parses_and_contains() {
    let ip = |text: &str| text.parse::<IpAddr>().expect("an IP");
    let net = Network::parse("198.18.4.9/22").expect("a network");
    assert_eq!(net, Network::parse(" 198.18.4.0/22 ").expect("a network"));
    assert!(net.contains(ip("198.18.4.1")) && net.contains(ip("198.18.7.255")));
    assert!(!net.contains(ip("198.18.8.0")) && !net.contains(ip("198.18.3.255")));
    assert!(!net.contains(ip("::1")));
    let all = Network::parse("0.0.0.0/0").expect("a network");
    assert!(all.contains(ip("8.8.8.8")));
    for bad in ["198.18.0.0", "198.18.0.0/33", "fd00::/8", "x/16"] {
        assert_eq!(Network::parse(bad), None, "{bad}");
    }
}
