//! fake-kubelet: a test-only stand-in for the kubelet (and scheduler) of the project's local
//! control plane, in the spirit of KWOK. It runs no containers. It watches pods in every
//! namespace and, the first time it sees a pod with no container statuses, decides whether the
//! pod's app would start and writes the status a kubelet would: all containers running and
//! ready, or crash-looping. That is enough for the Deployment/ReplicaSet controllers and
//! `kubectl rollout status` to behave as on a real cluster, including stuck rollouts.
//!
//! A pod crash-loops when its `fake-kubelet.kubectl-rotate.io/require` annotation (see
//! `require`) is invalid or is not satisfied by the Secret as it is read at that moment, the way
//! an app validating its configuration at start-up would fail. Secret values are never logged
//! or written anywhere.
//!
//! Not here (yet): serving container logs, or an HTTP port behind a Node object. Those would be
//! further tasks started next to the pod watch in `run`.
//!
//! Usage: `fake-kubelet --kubeconfig PATH`. Prints `fake-kubelet: ready` to stderr once the
//! initial pod list has been handled, then one line per pod decision.

mod require;
mod status;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::pin::pin;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};

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

fn parse_args() -> Result<PathBuf> {
    const USAGE: &str = "usage: fake-kubelet --kubeconfig PATH";
    let mut args = std::env::args().skip(1);
    let mut kubeconfig = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kubeconfig" => kubeconfig = Some(args.next().context(USAGE)?),
            other => match other.strip_prefix("--kubeconfig=") {
                Some(path) => kubeconfig = Some(path.to_string()),
                None => bail!("unexpected argument {other:?}\n{USAGE}"),
            },
        }
    }
    kubeconfig.map(PathBuf::from).context(USAGE)
}

async fn run() -> Result<()> {
    let path = parse_args()?;
    // Only the named file: never fall back to ~/.kube/config or in-cluster config, which could
    // point this tool at a real cluster.
    let kubeconfig = Kubeconfig::read_from(&path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    let client = Client::try_from(config).context("building the Kubernetes client")?;

    let mut events = pin!(
        watcher::watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .default_backoff()
    );
    // Pods already handed to a start task: the watch delivers several events per pod (our own
    // status patch among them) before its container statuses become visible.
    let mut handled: HashSet<String> = HashSet::new();
    let mut started: u32 = 0;
    let mut announced = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                let Some(uid) = pod.uid() else { continue };
                if needs_start(&pod) && handled.insert(uid) {
                    started = started.wrapping_add(1);
                    // One task per pod so a slow Secret read or patch delays no other pod.
                    tokio::spawn(start_pod(client.clone(), pod, status::pod_ip(started)));
                }
            }
            Ok(Event::Delete(pod)) => {
                if let Some(uid) = pod.uid() {
                    handled.remove(&uid);
                }
            }
            Ok(Event::InitDone) if !announced => {
                eprintln!("fake-kubelet: ready");
                announced = true;
            }
            Ok(Event::Init | Event::InitDone) => {}
            Err(err) => eprintln!("fake-kubelet: pod watch failed, retrying: {err}"),
        }
    }
    bail!("the pod watch ended")
}

/// A pod the kubelet has not started yet, and that is not on its way out.
fn needs_start(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    let has_containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|c| !c.is_empty());
    !has_containers && pod.metadata.deletion_timestamp.is_none() && pod.spec.is_some()
}

async fn start_pod(client: Client, pod: Pod, pod_ip: String) {
    // The watch is over namespaced pods, so the namespace is always set.
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let (Some(spec), Some(uid)) = (pod.spec.as_ref(), pod.uid()) else {
        return;
    };

    let fate = decide_fate(&Api::namespaced(client.clone(), &namespace), &pod).await;
    match &fate {
        Fate::Ready => eprintln!("{namespace}/{name} ready"),
        Fate::CrashLoop { reason } => eprintln!("{namespace}/{name} crash-loop: {reason}"),
    }

    let now = Timestamp::from_second(Timestamp::now().as_second())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string();
    let patch = status::status_patch(spec, &uid, &fate, &pod_ip, &now);
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
    match with_retries(|| pods.patch_status(&name, &params, &patch)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.is_not_found() => {} // deleted meanwhile
        Err(err) => eprintln!(
            "{namespace}/{name}: writing pod status failed: {}",
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
    for requirement in &requirements {
        let secret = match with_retries(|| secrets.get_opt(&requirement.secret)).await {
            Ok(secret) => secret,
            Err(err) => {
                let reason = format!(
                    "reading Secret {:?} failed: {}",
                    requirement.secret,
                    describe(&err)
                );
                return Fate::CrashLoop { reason };
            }
        };
        if let Err(reason) = requirement.check(secret.as_ref()) {
            return Fate::CrashLoop { reason };
        }
    }
    Fate::Ready
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
