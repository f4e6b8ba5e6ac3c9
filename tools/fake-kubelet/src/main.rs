//! fake-kubelet: a test-only stand-in for the kubelet (and scheduler) of the project's local
//! control plane, in the spirit of KWOK. It runs no containers, but the API server talks to it
//! as to a real node:
//!
//! - At start it claims a block of the pod network (see `network`), listens there as the
//!   kubelet and registers a Ready Node (`fake-node`) pointing at that endpoint (see `kubelet`).
//! - It watches pods in every namespace. A new pod that is unscheduled (there is no scheduler)
//!   or already on its node gets bound to the node (`pods/binding`), an IP of the block, and the
//!   status a kubelet would write once its containers started: all running and ready, or
//!   crash-looping (see `status`). The Deployment/ReplicaSet controllers and `kubectl rollout
//!   status` then behave as on a real cluster, including stuck rollouts.
//! - A started pod with `fake-kubelet.kubectl-rotate.io/http` listens on PODIP:PORT, so the API
//!   server's pod proxy reaches it (see `pod_http`); `kubectl logs` gets the lines its
//!   `fake-kubelet.kubectl-rotate.io/logs` annotation declares (see `logs`).
//! - Pods on its node are deleted gracefully (the API server waits for the kubelet): when one
//!   gets a deletionTimestamp, it stops the pod's port and finishes the deletion at once.
//!
//! A pod crash-loops when its `fake-kubelet.kubectl-rotate.io/require` annotation (see
//! `require`) is invalid or is not satisfied by the Secret as it is read at that moment, the way
//! an app validating its configuration at start-up would fail; or when its http annotation is
//! invalid or its port cannot be opened. Secret values are never logged or written anywhere.
//!
//! A pod whose first container's image is `kubectl-rotate.io/demo-app` (any tag) is not
//! simulated when `--demo-app PATH` is given: that binary runs as a real process for it, with the
//! container's args, environment, Secret volumes, readiness probe and restarts (see `app`); its
//! files live under `--state-dir` (default: a directory in the system's temp dir).
//!
//! Usage: `fake-kubelet --kubeconfig PATH --pod-network CIDR --tls-cert-file PEM
//! --tls-private-key-file PEM [--node-name NAME] [--demo-app PATH] [--state-dir DIR]`. Prints `fake-kubelet: ready` to stderr once
//! the node is registered and the initial pod list handled, then one line per pod decision.
//! Pods it did not start itself (before a restart of this process) are not served.

mod app;
mod http;
mod kubelet;
mod lease;
mod logs;
mod netns;
mod network;
mod pod_http;
mod require;
mod resync;
mod security;
mod services;
mod status;
mod streams;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use network::{Cidr, IpPool};
use pod_http::HttpApp;
use resync::Known;
use status::Fate;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fake-kubelet: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    kubeconfig: PathBuf,
    pod_network: Cidr,
    tls_cert_file: PathBuf,
    tls_key_file: PathBuf,
    node_name: String,
    demo_app: Option<PathBuf>,
    state_dir: PathBuf,
    netns: Option<PathBuf>,
    kubelet_streams: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    const USAGE: &str = "usage: fake-kubelet --kubeconfig PATH --pod-network CIDR \
        --tls-cert-file PEM --tls-private-key-file PEM [--node-name NAME] [--demo-app PATH] \
        [--state-dir DIR] [--netns PATH] [--kubelet-streams PATH]";
    let mut values: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (
                arg.clone(),
                args.next()
                    .with_context(|| format!("{arg} needs a value\n{USAGE}"))?,
            ),
        };
        match name.as_str() {
            "--kubeconfig"
            | "--pod-network"
            | "--tls-cert-file"
            | "--tls-private-key-file"
            | "--node-name"
            | "--demo-app"
            | "--state-dir"
            | "--netns"
            | "--kubelet-streams" => values.insert(name, value),
            _ => bail!("unexpected argument {arg:?}\n{USAGE}"),
        };
    }
    let mut take = |name: &str| {
        values
            .remove(name)
            .with_context(|| format!("{name} is required\n{USAGE}"))
    };
    Ok(Args {
        kubeconfig: take("--kubeconfig")?.into(),
        pod_network: Cidr::parse(&take("--pod-network")?).map_err(anyhow::Error::msg)?,
        tls_cert_file: take("--tls-cert-file")?.into(),
        tls_key_file: take("--tls-private-key-file")?.into(),
        node_name: take("--node-name").unwrap_or_else(|_| "fake-node".into()),
        demo_app: take("--demo-app").ok().map(PathBuf::from),
        netns: take("--netns").ok().map(PathBuf::from),
        kubelet_streams: take("--kubelet-streams").ok().map(PathBuf::from),
        state_dir: take("--state-dir").map(PathBuf::from).unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("fake-kubelet-{}", std::process::id()))
        }),
    })
}

async fn run() -> Result<()> {
    let args = parse_args()?;
    netns::init(args.netns.as_deref()).with_context(|| {
        format!(
            "opening the node's network namespace {}",
            args.netns.as_deref().unwrap_or(Path::new("")).display()
        )
    })?;
    if let Some(app) = &args.demo_app {
        anyhow::ensure!(app.is_file(), "--demo-app {}: no such file", app.display());
    }
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating the state dir {}", args.state_dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // 0711: others may pass through (a server that drops root, PostgreSQL, reaches its data
        // in its pod's directory) but not list it; what is inside is private (see `app`).
        for dir in [args.state_dir.clone(), args.state_dir.join("pods")] {
            std::fs::create_dir_all(&dir)
                .and_then(|()| {
                    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
                })
                .with_context(|| format!("securing {}", dir.display()))?;
        }
    }
    let path = &args.kubeconfig;
    // Only the named file: never fall back to ~/.kube/config or in-cluster config, which could
    // point this tool at a real cluster.
    let kubeconfig = Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    let client = Client::try_from(config).context("building the Kubernetes client")?;

    let tls = kubelet::tls_acceptor(&args.tls_cert_file, &args.tls_key_file)?;
    let (block, listener) = claim_block(args.pod_network).await?;
    let node_ip = block.node_ip();
    let node = kubelet::node_object(&args.node_name, node_ip, kubelet::PORT, &now());
    kubelet::register_node(&client, &node).await?;
    tokio::spawn(lease::heartbeat(
        client.clone(),
        args.node_name.clone(),
        node,
    ));
    let pool = Arc::new(Mutex::new(IpPool::new(block)));
    let services = services::Proxies::new(client.clone(), pool.clone());
    tokio::spawn(services.clone().follow());
    // exec, attach and port-forward: served by kubelet-streams (see `streams`); it lives as
    // long as this process (killed with it), and if it dies the streams fail with a word here.
    let streams = match &args.kubelet_streams {
        Some(binary) => {
            let (streams, mut child) = streams::Streams::start(binary, &args.state_dir).await?;
            tokio::spawn(async move {
                let status = child.wait().await;
                eprintln!(
                    "fake-kubelet: error: kubelet-streams exited ({status:?}); exec, attach and port-forward fail from now on"
                );
            });
            Some(Arc::new(streams))
        }
        None => None,
    };
    tokio::spawn(kubelet::serve(
        listener,
        tls,
        kubelet::Endpoint {
            client: client.clone(),
            services: services.clone(),
            name: args.node_name.clone(),
            state_dir: args.state_dir.clone(),
            streams,
        },
    ));
    eprintln!(
        "fake-kubelet: node {} at {node_ip}, kubelet https://{node_ip}:{}, pod IPs from {block}",
        args.node_name,
        kubelet::PORT
    );

    let (reports, reported) = mpsc::unbounded_channel();
    let (resync, pages) = resync::spawn(client.clone());
    let node = Kubelet {
        client: client.clone(),
        node_name: args.node_name,
        node_ip,
        pool,
        services,
        started: HashMap::new(),
        terminating: HashSet::new(),
        demo_app: args.demo_app,
        state_dir: args.state_dir,
        reports,
        resync,
        starting: Arc::new(Semaphore::new(STARTING_AT_ONCE)),
        backoff: resync::Backoff::default(),
        deleted: resync::Deleted::default(),
        no_ip: HashSet::new(),
    };
    follow_pods(node, client, reported, pages).await
}

/// How many pods are being bound and given their status at once: enough to keep the API server
/// busy, few enough that a burst of thousands reuses a few connections.
const STARTING_AT_ONCE: usize = 32;

/// The node's main loop: pod events from the watch, outcomes of the pods' starts, and the
/// periodic lists that catch what the watch missed (see `resync`).
async fn follow_pods(
    mut node: Kubelet,
    client: Client,
    mut reported: mpsc::UnboundedReceiver<Report>,
    mut pages: mpsc::Receiver<Vec<Pod>>,
) -> Result<()> {
    let mut events = pin!(
        watcher::watcher(Api::<Pod>::all(client), watcher::Config::default()).default_backoff()
    );
    // Pods seen while the watch (re)lists them: any other pod we know of was deleted meanwhile.
    let mut listed: HashSet<String> = HashSet::new();
    let mut announced = false;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Apply(pod))) => node.on_pod(&pod),
                Some(Ok(Event::InitApply(pod))) => {
                    listed.extend(pod.uid());
                    node.on_pod(&pod);
                }
                Some(Ok(Event::Delete(pod))) => node.deleted(&pod.uid().unwrap_or_default()),
                Some(Ok(Event::Init)) => listed.clear(),
                Some(Ok(Event::InitDone)) => {
                    node.forget_all_but(&listed);
                    if !announced {
                        eprintln!("fake-kubelet: ready");
                        announced = true;
                    }
                }
                Some(Err(err)) => {
                    // The watcher relists by itself; a list of our own meanwhile costs little.
                    eprintln!("fake-kubelet: pod watch failed, retrying: {err}");
                    node.resync.after(Duration::ZERO);
                }
                None => bail!("the pod watch ended"),
            },
            Some(report) = reported.recv() => node.on_report(report),
            Some(page) = pages.recv() => node.on_listed(&page),
        }
    }
}

/// Claims the first free block of `network` by listening at its node IP on the kubelet port.
async fn claim_block(network: Cidr) -> Result<(Cidr, TcpListener)> {
    let mut last_error = None;
    for block in network.blocks() {
        match netns::bind((block.node_ip(), kubelet::PORT)).await {
            Ok(listener) => return Ok((block, listener)),
            // Another cluster's fake kubelet has this one.
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => last_error = Some(err),
            Err(err) => bail!(
                "cannot listen on {}:{}: {err}; is {network} local to the node's network \
                 namespace? (scripts/cluster.sh runs, in it: ip route add local BLOCK dev lo)",
                block.node_ip(),
                kubelet::PORT
            ),
        }
    }
    match last_error {
        Some(err) => bail!(
            "every /{} block of {network} is taken: listening on port {} of each node IP failed \
             ({err}); too many clusters, or something else listens on port {} of every address",
            network::BLOCK_PREFIX,
            kubelet::PORT,
            kubelet::PORT
        ),
        None => bail!(
            "{network} is smaller than one /{} block",
            network::BLOCK_PREFIX
        ),
    }
}

/// What the node knows about its pods. Owned by the watch loop; the work per pod happens in
/// tasks, so a slow Secret read or patch delays no other pod.
struct Kubelet {
    client: Client,
    node_name: String,
    node_ip: Ipv4Addr,
    /// Pod IPs, shared with the Services' node-local addresses (see `services`).
    pool: Arc<Mutex<IpPool>>,
    services: Arc<services::Proxies>,
    /// Pods we started, by uid: their IP and the task that started them and serves their port.
    started: HashMap<String, Started>,
    /// Pods whose deletion we are finishing, by uid.
    terminating: HashSet<String>,
    /// The demo app's binary, for pods of its image (see `app`).
    demo_app: Option<PathBuf>,
    state_dir: PathBuf,
    /// Where the pods' start tasks say how it went.
    reports: mpsc::UnboundedSender<Report>,
    /// Asks for a list of every pod sooner than usual (see `resync`).
    resync: resync::Trigger,
    /// Permits to be binding or writing the status of a pod (`STARTING_AT_ONCE`).
    starting: Arc<Semaphore>,
    /// Pods whose start failed, retried later.
    backoff: resync::Backoff,
    /// Pods known to be gone, so a list older than the watch does not bring them back.
    deleted: resync::Deleted,
    /// Pods waiting for a free pod IP, by uid.
    no_ip: HashSet<String>,
}

/// How a pod's start went, from its task to the main loop.
struct Report {
    uid: String,
    outcome: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Bound and given its status (or handed to its app).
    Started,
    /// The pod was deleted meanwhile.
    Gone,
    /// A request failed: the pod is left for a later list to retry.
    Failed,
}

struct Started {
    ip: Ipv4Addr,
    task: JoinHandle<()>,
    /// For a real app: asks its task to stop the process gracefully and finish the deletion.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Kubelet {
    fn on_pod(&mut self, pod: &Pod) {
        let Some(uid) = pod.uid() else { return };
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if node_name.is_some_and(|n| n != self.node_name) {
            return; // another node's pod: not ours to run
        }
        if pod.metadata.deletion_timestamp.is_some() {
            if node_name.is_some() && !self.terminating.contains(&uid) {
                // A real app stops gracefully first; its task then finishes the deletion, and
                // the pod's IP is freed when the pod is gone (`forget`).
                let stop = self.started.get_mut(&uid).and_then(|s| s.stop.take());
                if let Some(stop) = stop {
                    let (client, pod, uid2) = (self.client.clone(), pod.clone(), uid.clone());
                    self.terminating.insert(uid.clone());
                    let task = self.started.remove(&uid).map(|s| (s.ip, s.task));
                    let (ip, task) = task.expect("present: its stop was just taken");
                    let _ = stop.send(());
                    let finisher = tokio::spawn(async move {
                        let _ = task.await;
                        finish_deletion(client, pod, uid2).await;
                    });
                    self.started.insert(
                        uid,
                        Started {
                            ip,
                            task: finisher,
                            stop: None,
                        },
                    );
                    return;
                }
            }
            if self.terminating.contains(&uid) {
                return;
            }
            self.stop(&uid);
            // An unscheduled pod is deleted at once; a bound one waits for its kubelet.
            if node_name.is_some() && self.terminating.insert(uid.clone()) {
                tokio::spawn(finish_deletion(self.client.clone(), pod.clone(), uid));
            }
        } else if resync::needs_start(pod) && !self.started.contains_key(&uid) {
            let namespace = pod.namespace().unwrap_or_default();
            let Some(pod_ip) = self.pool.lock().expect("not poisoned").allocate() else {
                if self.no_ip.insert(uid) {
                    eprintln!(
                        "{namespace}/{}: no free pod IP; left pending until one is freed",
                        pod.name_any()
                    );
                }
                return;
            };
            self.no_ip.remove(&uid);
            let (stop, app) = match (&self.demo_app, app::pod_image(pod)) {
                (Some(binary), Some(image)) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let runner = app::Runner {
                        client: self.client.clone(),
                        image,
                        services: self.services.clone(),
                        binary: binary.clone(),
                        state_dir: self.state_dir.clone(),
                        node_ip: self.node_ip,
                        pod_ip,
                        started_at: now(),
                    };
                    (Some(tx), Some((runner, rx)))
                }
                _ => (None, None),
            };
            let done = Done {
                uid: uid.clone(),
                reports: self.reports.clone(),
                starting: self.starting.clone(),
            };
            let task = tokio::spawn(start_pod(
                self.client.clone(),
                pod.clone(),
                self.node_name.clone(),
                self.node_ip,
                pod_ip,
                app,
                done,
            ));
            self.started.insert(
                uid,
                Started {
                    ip: pod_ip,
                    task,
                    stop,
                },
            );
        }
    }

    /// Stops the pod's task (closing its port) and frees its IP.
    fn stop(&mut self, uid: &str) {
        if let Some(started) = self.started.remove(uid) {
            started.task.abort();
            self.pool.lock().expect("not poisoned").release(started.ip);
            if !self.no_ip.is_empty() {
                self.resync.after(Duration::ZERO); // a pod waits for this IP
            }
        }
    }

    fn forget(&mut self, uid: &str) {
        self.stop(uid);
        self.terminating.remove(uid);
        self.backoff.clear(uid);
        self.no_ip.remove(uid);
    }

    /// The pod is gone for good.
    fn deleted(&mut self, uid: &str) {
        self.forget(uid);
        self.deleted.insert(uid.to_string(), Instant::now());
    }

    fn on_report(&mut self, report: Report) {
        let uid = report.uid.as_str();
        match report.outcome {
            Outcome::Started => self.backoff.clear(uid),
            Outcome::Gone => self.deleted(uid),
            // Unless it was deleted meanwhile (then `started` no longer has it).
            Outcome::Failed if self.started.contains_key(uid) => {
                self.stop(uid);
                let delay = self.backoff.fail(uid, Instant::now());
                self.resync.after(delay);
            }
            Outcome::Failed => {}
        }
    }

    /// A page of a fresh list of every pod: handles those the node missed.
    fn on_listed(&mut self, pods: &[Pod]) {
        let now = Instant::now();
        self.deleted.prune(now);
        for pod in pods {
            let Some(uid) = pod.uid() else { continue };
            let known = self.known(&uid, now);
            if resync::missed(pod, &self.node_name, known) {
                if known == Known::Unknown && !self.no_ip.contains(&uid) {
                    eprintln!(
                        "{}/{}: not handled yet; handling it now (resync)",
                        pod.namespace().unwrap_or_default(),
                        pod.name_any()
                    );
                }
                self.on_pod(pod);
            }
        }
    }

    fn known(&self, uid: &str, now: Instant) -> Known {
        if self.deleted.contains(uid) {
            Known::Deleted
        } else if self.terminating.contains(uid) {
            Known::Terminating
        } else if self.started.contains_key(uid) {
            Known::Started
        } else if self.backoff.waiting(uid, now) {
            Known::BackingOff
        } else {
            Known::Unknown
        }
    }

    fn forget_all_but(&mut self, listed: &HashSet<String>) {
        let gone: Vec<String> = self
            .started
            .keys()
            .chain(&self.terminating)
            .filter(|uid| !listed.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            self.deleted(&uid);
        }
    }
}

/// Where a start task reports, and the permit it needs to talk to the API server.
struct Done {
    uid: String,
    reports: mpsc::UnboundedSender<Report>,
    starting: Arc<Semaphore>,
}

impl Done {
    fn send(&self, outcome: Outcome) {
        let uid = self.uid.clone();
        let _ = self.reports.send(Report { uid, outcome });
    }
}

/// Binds the pod, decides its fate, opens its port, writes its status, reports how that went,
/// then serves the port until the pod stops (the task is aborted).
async fn start_pod(
    client: Client,
    pod: Pod,
    node_name: String,
    node_ip: Ipv4Addr,
    pod_ip: Ipv4Addr,
    app: Option<(app::Runner, tokio::sync::oneshot::Receiver<()>)>,
    done: Done,
) {
    // The watch is over namespaced pods, so the namespace is always set.
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let (Some(spec), Some(uid)) = (pod.spec.as_ref(), pod.uid()) else {
        return;
    };
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let Ok(permit) = done.starting.clone().acquire_owned().await else {
        return; // never closed
    };

    if spec.node_name.is_none()
        && let Err(outcome) = bind(&pods, &namespace, &name, &node_name).await
    {
        return done.send(outcome);
    }

    if let Some((runner, stop)) = app {
        drop(permit);
        done.send(Outcome::Started);
        app::run(runner, pod, stop).await;
        return;
    }
    let app = pod
        .annotations()
        .get(pod_http::ANNOTATION)
        .map(|annotation| pod_http::parse(annotation, spec));
    let mut fate = match app {
        Some(Err(ref reason)) => Fate::CrashLoop {
            reason: reason.clone(),
        },
        _ => decide_fate(&Api::namespaced(client, &namespace), &pod).await,
    };
    let mut port = None;
    if let (Fate::Ready, Some(Ok(app))) = (&fate, app) {
        match netns::bind((pod_ip, app.port)).await {
            Ok(listener) => port = Some((listener, app)),
            Err(err) => {
                let reason = format!("listen tcp {pod_ip}:{}: {err}", app.port);
                fate = Fate::CrashLoop { reason };
            }
        }
    }

    let patch = status::status_patch(
        spec,
        &uid,
        &fate,
        &pod_ip.to_string(),
        &node_ip.to_string(),
        &now(),
    );
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    let outcome = match with_retries(|| pods.patch_status(&name, &params, &patch)).await {
        Ok(_) => Outcome::Started,
        Err(kube::Error::Api(status)) if status.is_not_found() => Outcome::Gone,
        Err(err) => {
            eprintln!(
                "{namespace}/{name}: writing pod status failed, will retry: {}",
                describe(&err)
            );
            Outcome::Failed
        }
    };
    drop(permit);
    done.send(outcome);
    if outcome != Outcome::Started {
        return;
    }
    match &fate {
        Fate::Ready => eprintln!("{namespace}/{name} ready at {pod_ip}"),
        Fate::CrashLoop { reason } => eprintln!("{namespace}/{name} crash-loop: {reason}"),
    }
    if let Some((listener, app)) = port {
        serve_app(listener, app).await;
    }
}

/// Binds the pod to the node (there is no scheduler); how it failed if it did.
async fn bind(
    pods: &Api<Pod>,
    namespace: &str,
    name: &str,
    node_name: &str,
) -> Result<(), Outcome> {
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    });
    let params = PostParams::default();
    let bound = with_retries(|| {
        pods.create_subresource::<_, serde_json::Value>("binding", name, &params, &binding)
    });
    match bound.await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Err(Outcome::Gone),
        // Bound already (a retry of a binding that went through): the next list shows to which
        // node, and the pod is started from there if it is ours.
        Err(err) => {
            eprintln!(
                "{namespace}/{name}: binding to node {node_name} failed, will retry: {}",
                describe(&err)
            );
            Err(Outcome::Failed)
        }
    }
}

/// Answers HTTP on the pod's port, one task per connection.
async fn serve_app(listener: TcpListener, app: HttpApp) {
    let app = std::sync::Arc::new(app);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let app = app.clone();
                tokio::spawn(http::serve_one(stream, move |request| async move {
                    app.answer(&request)
                }));
            }
            Err(err) => {
                eprintln!("fake-kubelet: accepting a pod connection failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the kubelet does once a pod's containers have stopped: delete it for good. The uid
/// precondition spares a new pod of the same name (a StatefulSet's replacement).
async fn finish_deletion(client: Client, pod: Pod, uid: String) {
    let (namespace, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match with_retries(|| pods.delete(&name, &params)).await {
        Ok(_) => {}
        // Already gone, or the name now belongs to another pod.
        Err(kube::Error::Api(status)) if status.is_not_found() || status.code == 409 => {}
        Err(err) => eprintln!(
            "{namespace}/{name}: deleting the pod failed: {}",
            describe(&err)
        ),
    }
}

/// Reads each required Secret afresh (no cache: the app sees what exists when it starts).
async fn decide_fate(secrets: &Api<Secret>, pod: &Pod) -> Fate {
    let Some(annotation) = pod.annotations().get(require::ANNOTATION) else {
        return Fate::Ready;
    };
    let requirements = match require::parse_requirements(annotation) {
        Ok(requirements) => requirements,
        Err(reason) => return Fate::CrashLoop { reason },
    };
    // What the app prints before exiting (and so its log): never a value.
    let failed = |why: String| Fate::CrashLoop {
        reason: format!("secret validation failed: {why}"),
    };
    for requirement in &requirements {
        let secret = match with_retries(|| secrets.get_opt(&requirement.secret)).await {
            Ok(secret) => secret,
            Err(err) => {
                return failed(format!(
                    "reading Secret {:?} failed: {}",
                    requirement.secret,
                    describe(&err)
                ));
            }
        };
        if let Err(reason) = requirement.check(secret.as_ref()) {
            return failed(reason);
        }
    }
    Fate::Ready
}

/// Now, to the second, in RFC 3339 (what the API server stores for times).
fn now() -> String {
    Timestamp::from_second(Timestamp::now().as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Runs `attempt` up to 5 times with doubling backoff while it fails transiently
/// (network errors, 429, 5xx); other API errors such as 404 are returned at once.
async fn with_retries<T, F, Fut>(mut attempt: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 1..5 {
        match attempt().await {
            Err(err) if is_transient(&err) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            done => return done,
        }
    }
    attempt().await
}

fn is_transient(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::SerdeError(_) => false,
        _ => true,
    }
}

/// An error message safe to log: a response body that failed to decode (which for a Secret
/// could quote its data) is not repeated.
fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        kube::Error::SerdeError(_) => "the response could not be decoded".to_string(),
        other => other.to_string(),
    }
}
