//! Real processes for pods of the demo's images: a pod whose first container's image is one of
//! `IMAGES` (any tag) runs `--demo-app PATH` as a child process instead of being simulated (see
//! `main`): `kubectl-rotate.io/demo-app` runs the app with the container's `args`;
//! `kubectl-rotate.io/postgres` and `kubectl-rotate.io/redis` run its server entrypoints
//! (`demo-app postgres` / `demo-app redis`), which start Debian's real PostgreSQL 15 / Redis 7
//! for the pod. One task per such pod (`run`) starts the process, probes it, restarts it when it
//! exits and stops it when the pod is deleted.
//!
//! - **Environment**: resolved as a kubelet does at each container start (Secrets, ConfigMaps and
//!   Services read afresh through the API): service links first (`NAME_SERVICE_HOST`,
//!   `NAME_SERVICE_PORT`, `NAME_SERVICE_PORT_PORTNAME` for each Service of the namespace, unless
//!   `enableServiceLinks: false`; the host is the Service's node-local address, see `services`),
//!   then `envFrom[].secretRef` / `configMapRef` (keys that are not valid variable names are
//!   skipped, as Kubernetes 1.20 does), then `env[].value` with `$(VAR)` references expanded,
//!   `valueFrom.secretKeyRef` / `configMapKeyRef` (optional ones may be missing) and
//!   `valueFrom.fieldRef` (`status.podIP`, `metadata.name`, `metadata.namespace`,
//!   `metadata.uid`). `LISTEN_ADDRESS` is always the pod IP, so the process listens on the pod
//!   IP, where the API server's pod proxy and the Service proxies reach it. Only PATH is
//!   inherited from the fake kubelet.
//! - **Working directory** (`work_dir`), where the servers keep their data: for a StatefulSet's
//!   pod `STATE/volumes/NAMESPACE/POD`, which outlives the pod as a PersistentVolumeClaim from
//!   `volumeClaimTemplates` would (a restarted `postgres-0` finds its database) until the
//!   cluster starts again (`scripts/cluster.sh up` empties the state dir); for other pods the
//!   pod's directory `STATE/pods/UID`, which lives as long as the pod, like an `emptyDir`. Mode
//!   0711: others may pass through but not list them, so a server that drops root (PostgreSQL)
//!   reaches its data.
//! - **Secret volumes** mounted by the container are written as files (0600) in a per-pod
//!   directory (0700) under the state dir, removed with the pod. There is no mount namespace:
//!   instead `AI_AGENTS_SECRETS_DIR` points at the volume mounted at `/etc/ai-agents/secrets`,
//!   the path the app reads; this path translation stands in for the mount.
//! - **Log**: stdout and stderr go to `STATE/pods/UID/CONTAINER.log` (0600), served by the
//!   kubelet endpoint (see `logs::app_log`); at a restart the previous run's log becomes
//!   `CONTAINER.previous.log` (`kubectl logs --previous`).
//! - **Readiness**: a `readinessProbe` `httpGet` (`http://PODIP:PORT/PATH` answers 2xx/3xx) or
//!   `tcpSocket` (PODIP:PORT accepts) is performed for real every second (2 s timeout); without
//!   one the container is ready once it runs.
//! - **Restarts**: with `restartPolicy: Always` (the default) an exit is a container restart:
//!   restartCount + 1, lastState terminated with the exit code, state waiting `CrashLoopBackOff`
//!   for a back-off of 1, 2, 4, 8 then 10 s (a kubelet's goes 10 s .. 5 min; shorter here to keep
//!   tests fast). With `OnFailure` an exit 0 ends the pod (`Succeeded`), so Jobs complete; with
//!   `Never` any exit ends it (`Succeeded` or `Failed`).
//! - **Deletion**: the container's `preStop` `exec` hook (e.g. `sleep 2`, so that a Service
//!   stops sending it connections before it stops accepting them), then SIGTERM, then SIGKILL
//!   after the pod's grace period (at most 10 s), then the pod's files are removed. Aborting the task (the pod vanished) kills the process at once and
//!   removes the files too.
//!
//! - **`runAsNonRoot`** is checked as a kubelet does (`security`): a container that would run as
//!   root under it is not started (`CreateContainerConfigError`).
//!
//! Secret values go only to the child's environment and the 0600 files; never to argv or logs.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, Secret};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;

use crate::services::{Proxies, expand};
use crate::status::{self, Fate};

/// The images (without tag) whose pods run for real, and the `demo-app` role each runs.
const IMAGES: [(&str, Image); 3] = [
    ("kubectl-rotate.io/demo-app", Image::App),
    ("kubectl-rotate.io/postgres", Image::Postgres),
    ("kubectl-rotate.io/redis", Image::Redis),
];

/// What a real pod runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Image {
    /// `demo-app ARGS...` (the app's role comes from the container's args).
    App,
    /// `demo-app postgres`: a real PostgreSQL server for the pod.
    Postgres,
    /// `demo-app redis`: a real Redis server for the pod.
    Redis,
}

impl Image {
    /// The arguments before the container's own.
    fn entrypoint(self) -> &'static [&'static str] {
        match self {
            Image::App => &[],
            Image::Postgres => &["postgres"],
            Image::Redis => &["redis"],
        }
    }
}
/// Where the app reads its Secret volume (see the module doc: no mount namespace).
const SECRETS_MOUNT: &str = "/etc/ai-agents/secrets";
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_GRACE: u64 = 10;

/// What the pod runs for real, if anything: its first container's image is one of `IMAGES`.
pub fn pod_image(pod: &Pod) -> Option<Image> {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref())
        .and_then(image_of)
}

fn image_of(image: &str) -> Option<Image> {
    let name = image.split('@').next().unwrap_or(image);
    // A tag follows the last ':' only when it comes after the last '/'.
    let name = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    };
    IMAGES.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
}

/// The pod's directory under the state dir.
pub fn pod_dir(state_dir: &Path, uid: &str) -> PathBuf {
    state_dir.join("pods").join(uid)
}

/// Where the pod's processes run and keep their data (see the module doc).
pub fn work_dir(state_dir: &Path, pod: &Pod) -> PathBuf {
    let stateful = pod
        .owner_references()
        .iter()
        .any(|o| o.kind == "StatefulSet" && o.controller == Some(true));
    if stateful {
        state_dir
            .join("volumes")
            .join(pod.namespace().unwrap_or_default())
            .join(pod.name_any())
    } else {
        pod_dir(state_dir, &pod.uid().unwrap_or_default())
    }
}

/// The log file of `container` of pod `uid` (current run, or the previous one).
pub fn log_path(state_dir: &Path, uid: &str, container: &str, previous: bool) -> PathBuf {
    let suffix = if previous { ".previous.log" } else { ".log" };
    pod_dir(state_dir, uid).join(format!("{container}{suffix}"))
}

/// Removes the pod's directory when dropped (also when the task is aborted).
struct PodFiles(PathBuf);

impl Drop for PodFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything `run` needs about where it runs.
pub struct Runner {
    pub client: Client,
    pub image: Image,
    pub services: Arc<Proxies>,
    pub binary: PathBuf,
    pub state_dir: PathBuf,
    pub node_ip: Ipv4Addr,
    pub pod_ip: Ipv4Addr,
    pub started_at: String,
}

/// Runs the pod's app container until `stop` fires (graceful stop; returns afterwards, files
/// removed) or the task is aborted.
pub async fn run(runner: Runner, pod: Pod, stop: oneshot::Receiver<()>) {
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let (Some(spec), Some(uid)) = (pod.spec.clone(), pod.uid()) else {
        return;
    };
    let Some(container) = spec.containers.first().cloned() else {
        return;
    };
    let dir = pod_dir(&runner.state_dir, &uid);
    if let Err(err) = make_dir(&dir, 0o711) {
        eprintln!("{namespace}/{name}: creating {}: {err}", dir.display());
        return;
    }
    let _files = PodFiles(dir.clone());
    let work = work_dir(&runner.state_dir, &pod);
    if work != dir {
        let parent = work.parent().map(Path::to_path_buf).unwrap_or_default();
        for d in [runner.state_dir.join("volumes"), parent, work.clone()] {
            if let Err(err) = make_dir(&d, 0o711) {
                eprintln!("{namespace}/{name}: creating {}: {err}", d.display());
                return;
            }
        }
    }
    let grace = spec
        .termination_grace_period_seconds
        .map_or(MAX_GRACE, |g| (g.max(0) as u64).min(MAX_GRACE));
    let pods: Api<Pod> = Api::namespaced(runner.client.clone(), &namespace);
    let mut stop = stop;
    let mut restarts: i32 = 0;
    let mut last_terminated: Option<Value> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = crate::now();
        let child = match start(&runner, &pod, &spec, &container, &dir, &work).await {
            Ok(child) => Some(child),
            Err(reason) => {
                eprintln!(
                    "{namespace}/{name}: container {} not started: {reason}",
                    container.name
                );
                let state =
                    json!({"waiting": {"reason": "CreateContainerConfigError", "message": reason}});
                patch(
                    &pods,
                    &runner,
                    &pod,
                    &spec,
                    &uid,
                    &container,
                    state,
                    false,
                    restarts,
                    &last_terminated,
                )
                .await;
                None
            }
        };
        if let Some(mut child) = child {
            eprintln!(
                "{namespace}/{name}: app started at {} (restarts: {restarts})",
                runner.pod_ip
            );
            let running = json!({"running": {"startedAt": started}});
            let has_probe = probe_target(&container, runner.pod_ip).is_some();
            let mut ready = !has_probe;
            patch(
                &pods,
                &runner,
                &pod,
                &spec,
                &uid,
                &container,
                running.clone(),
                ready,
                restarts,
                &last_terminated,
            )
            .await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let exit = loop {
                tokio::select! {
                    status = child.wait() => break status.ok(),
                    _ = &mut stop => {
                        pre_stop(&container, grace, &namespace, &name).await;
                        terminate(&mut child, grace).await;
                        eprintln!("{namespace}/{name}: app stopped");
                        return;
                    }
                    _ = tick.tick(), if has_probe => {
                        let now_ready = probe(&container, runner.pod_ip).await;
                        if now_ready != ready {
                            ready = now_ready;
                            patch(&pods, &runner, &pod, &spec, &uid, &container, running.clone(), ready, restarts, &last_terminated).await;
                        }
                    }
                }
            };
            let code = exit.and_then(|s| s.code()).unwrap_or(137);
            let reason = if code == 0 { "Completed" } else { "Error" };
            let terminated = json!({"terminated": {
                "exitCode": code, "reason": reason, "startedAt": started, "finishedAt": crate::now(),
                "containerID": format!("fake://{uid}/{}", container.name),
            }});
            if !restarts_after(spec.restart_policy.as_deref(), code) {
                eprintln!("{namespace}/{name}: app exited with {code}; the pod is finished");
                let last = last_terminated.clone();
                patch(
                    &pods, &runner, &pod, &spec, &uid, &container, terminated, false, restarts,
                    &last,
                )
                .await;
                // Its log stays readable until the pod is deleted.
                let _ = stop.await;
                return;
            }
            eprintln!(
                "{namespace}/{name}: app exited with {code}; restarting in {}s",
                backoff.as_secs()
            );
            restarts += 1;
            last_terminated = Some(terminated);
            let waiting = json!({"waiting": {
                "reason": "CrashLoopBackOff",
                "message": format!("back-off {}s restarting failed container={} pod={name}", backoff.as_secs(), container.name),
            }});
            patch(
                &pods,
                &runner,
                &pod,
                &spec,
                &uid,
                &container,
                waiting,
                false,
                restarts,
                &last_terminated,
            )
            .await;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = &mut stop => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Whether a container that exited with `code` is started again under the pod's restartPolicy.
fn restarts_after(policy: Option<&str>, code: i32) -> bool {
    match policy {
        Some("Never") => false,
        Some("OnFailure") => code != 0,
        _ => true,
    }
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    make_dir(dir, 0o700)
}

fn make_dir(dir: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
}

/// Starts one run of the container: env, volumes, log, process.
async fn start(
    runner: &Runner,
    pod: &Pod,
    spec: &PodSpec,
    container: &Container,
    dir: &Path,
    work: &Path,
) -> Result<Child, String> {
    crate::security::verify_run_as_non_root(pod, container)?;
    let namespace = pod.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(runner.client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(runner.client.clone(), &namespace);
    let mut env = resolve_env(
        pod,
        container,
        runner.pod_ip,
        &runner.services,
        &secrets,
        &config_maps,
    )
    .await?;
    let secrets_dir = write_volumes(spec, container, dir, &secrets).await?;
    if let Some(secrets_dir) = secrets_dir {
        env.insert(
            "AI_AGENTS_SECRETS_DIR".into(),
            secrets_dir.display().to_string(),
        );
    } else if !env.contains_key("AI_AGENTS_SECRETS_DIR") {
        // Nothing is mounted there: an empty directory rather than the host's path.
        let empty = dir.join("no-secrets");
        make_private_dir(&empty).map_err(|e| format!("creating {}: {e}", empty.display()))?;
        env.insert("AI_AGENTS_SECRETS_DIR".into(), empty.display().to_string());
    }
    env.insert("LISTEN_ADDRESS".into(), runner.pod_ip.to_string());

    let log = dir.join(format!("{}.log", container.name));
    let previous = dir.join(format!("{}.previous.log", container.name));
    if log.exists() {
        let _ = std::fs::rename(&log, &previous);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log)
        .map_err(|e| format!("creating the log {}: {e}", log.display()))?;
    let err_file = file.try_clone().map_err(|e| format!("log: {e}"))?;
    let mut command = Command::new(&runner.binary);
    command
        .args(runner.image.entrypoint())
        .args(container.args.iter().flatten())
        .env_clear()
        .envs(&env)
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(work)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err_file)
        .process_group(0)
        .kill_on_drop(true);
    crate::netns::enter(&mut command);
    end_with_this_process(&mut command);
    command
        .spawn()
        .map_err(|e| format!("starting {}: {e}", runner.binary.display()))
}

/// The container's `lifecycle.preStop` `exec` hook, run as a kubelet runs it when the pod is
/// deleted: before SIGTERM, in the pod's network, for at most the grace period. (A hook of
/// another kind is not supported here and is skipped with a line in this process's log.)
async fn pre_stop(container: &Container, grace: u64, namespace: &str, name: &str) {
    let Some(hook) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    else {
        return;
    };
    let Some((program, args)) = hook
        .exec
        .as_ref()
        .and_then(|e| e.command.as_ref())
        .and_then(|c| c.split_first())
    else {
        eprintln!("{namespace}/{name}: preStop hook without exec: skipped");
        return;
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    crate::netns::enter(&mut command);
    match command.spawn() {
        Ok(mut child) => {
            if tokio::time::timeout(Duration::from_secs(grace), child.wait())
                .await
                .is_err()
            {
                eprintln!("{namespace}/{name}: preStop hook still running after {grace}s: killed");
            }
        }
        Err(err) => eprintln!("{namespace}/{name}: preStop hook {program}: {err}"),
    }
}

/// SIGTERM, then SIGKILL after `grace` seconds.
async fn terminate(child: &mut Child, grace: u64) {
    if let Some(pid) = child.id() {
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped yet.
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(Duration::from_secs(grace), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// A valid environment variable name (C identifier), as Kubernetes 1.20 checks for envFrom.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn secret_bytes(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    data
}

fn config_map_text(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

async fn get_secret(secrets: &Api<Secret>, name: &str) -> Result<Option<Secret>, String> {
    crate::with_retries(|| secrets.get_opt(name))
        .await
        .map_err(|e| format!("reading Secret {name:?}: {}", crate::describe(&e)))
}

async fn get_config_map(maps: &Api<ConfigMap>, name: &str) -> Result<Option<ConfigMap>, String> {
    crate::with_retries(|| maps.get_opt(name))
        .await
        .map_err(|e| format!("reading ConfigMap {name:?}: {}", crate::describe(&e)))
}

/// The environment `kubectl exec` gets in an app pod's container: the container's, resolved as
/// when it started, with the same `LISTEN_ADDRESS` (Secret volumes are not mounted again).
///
/// In a PostgreSQL pod `PGHOST` is the server's socket directory (unless the container sets
/// it), so `kubectl exec POD -- psql -U postgres` reaches that pod's server as in the official
/// image.
pub async fn exec_env(
    client: &Client,
    services: &Arc<Proxies>,
    state_dir: &Path,
    pod: &Pod,
    container: &str,
    pod_ip: Ipv4Addr,
) -> Result<BTreeMap<String, String>, String> {
    let namespace = pod.namespace().unwrap_or_default();
    let Some(container) = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .find(|c| c.name == container)
    else {
        return Err(format!("container {container} not found"));
    };
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let mut env = resolve_env(pod, container, pod_ip, services, &secrets, &config_maps).await?;
    env.insert("LISTEN_ADDRESS".into(), pod_ip.to_string());
    if pod_image(pod) == Some(Image::Postgres) && !env.contains_key("PGHOST") {
        // The server writes where its socket is (a short path: see demo-app's socket_dir).
        let run = work_dir(state_dir, pod).join("run");
        let sockets = std::fs::read_to_string(run.join("socket-dir"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| run.display().to_string());
        env.insert("PGHOST".into(), sockets);
    }
    Ok(env)
}

/// The container's environment, as a kubelet resolves it: service links, then envFrom, then
/// env (which overrides, and may refer to what came before with `$(VAR)`).
async fn resolve_env(
    pod: &Pod,
    container: &Container,
    pod_ip: Ipv4Addr,
    services: &Arc<Proxies>,
    secrets: &Api<Secret>,
    maps: &Api<ConfigMap>,
) -> Result<BTreeMap<String, String>, String> {
    let links = pod.spec.as_ref().and_then(|s| s.enable_service_links) != Some(false);
    let mut env = if links {
        services
            .service_env(&pod.namespace().unwrap_or_default())
            .await?
    } else {
        BTreeMap::new()
    };
    let text = |bytes: Vec<u8>, what: &str| {
        String::from_utf8(bytes).map_err(|_| format!("{what} is not UTF-8 text"))
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.secret_ref {
            let name = &r.name;
            match get_secret(secrets, name).await? {
                Some(secret) => {
                    for (k, v) in secret_bytes(&secret) {
                        let key = format!("{prefix}{k}");
                        if valid_env_name(&key) {
                            env.insert(key, text(v, &format!("key {k:?} of Secret {name:?}"))?);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret {name:?} not found")),
            }
        }
        if let Some(r) = &from.config_map_ref {
            let name = &r.name;
            match get_config_map(maps, name).await? {
                Some(cm) => {
                    for (k, v) in config_map_text(&cm) {
                        let key = format!("{prefix}{k}");
                        if valid_env_name(&key) {
                            env.insert(key, v);
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap {name:?} not found")),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            let value = expand(var.value.as_deref().unwrap_or_default(), &env);
            env.insert(var.name.clone(), value);
            continue;
        };
        if let Some(r) = &from.secret_key_ref {
            let optional = r.optional == Some(true);
            let value = match get_secret(secrets, &r.name).await? {
                Some(s) => secret_bytes(&s).remove(&r.key),
                None if optional => None,
                None => return Err(format!("secret {:?} not found", r.name)),
            };
            match value {
                Some(v) => {
                    let what = format!("key {:?} of Secret {:?}", r.key, r.name);
                    env.insert(var.name.clone(), text(v, &what)?);
                }
                None if optional => {}
                None => {
                    return Err(format!("couldn't find key {} in Secret {}", r.key, r.name));
                }
            }
        } else if let Some(r) = &from.config_map_key_ref {
            let value = get_config_map(maps, &r.name)
                .await?
                .and_then(|cm| config_map_text(&cm).remove(&r.key));
            match value {
                Some(v) => {
                    env.insert(var.name.clone(), v);
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(format!(
                        "couldn't find key {} in ConfigMap {}",
                        r.key, r.name
                    ));
                }
            }
        } else if let Some(r) = &from.field_ref {
            let value = match r.field_path.as_str() {
                "status.podIP" => pod_ip.to_string(),
                "metadata.name" => pod.name_any(),
                "metadata.namespace" => pod.namespace().unwrap_or_default(),
                "metadata.uid" => pod.uid().unwrap_or_default(),
                other => return Err(format!("unsupported fieldRef {other:?}")),
            };
            env.insert(var.name.clone(), value);
        } else {
            return Err(format!("unsupported valueFrom of {:?}", var.name));
        }
    }
    Ok(env)
}

/// Writes the container's mounted `secret` volumes under `dir/volumes/NAME` (0700, files 0600);
/// returns the directory of the one mounted at the app's secrets path.
async fn write_volumes(
    spec: &PodSpec,
    container: &Container,
    dir: &Path,
    secrets: &Api<Secret>,
) -> Result<Option<PathBuf>, String> {
    let mut app_dir = None;
    for mount in container.volume_mounts.iter().flatten() {
        let Some(volume) = spec.volumes.iter().flatten().find(|v| v.name == mount.name) else {
            return Err(format!("volume {:?} is not declared", mount.name));
        };
        let Some(source) = &volume.secret else {
            continue; // only Secret volumes are materialised
        };
        let name = source.secret_name.clone().unwrap_or_default();
        let optional = source.optional == Some(true);
        let data = match get_secret(secrets, &name).await? {
            Some(secret) => secret_bytes(&secret),
            None if optional => BTreeMap::new(),
            None => return Err(format!("secret {name:?} not found")),
        };
        let files: Vec<(String, Vec<u8>)> = match &source.items {
            Some(items) => {
                let mut files = Vec::new();
                for item in items {
                    match data.get(&item.key) {
                        Some(v) => files.push((item.path.clone(), v.clone())),
                        None if optional => {}
                        None => {
                            return Err(format!("couldn't find key {} in Secret {name}", item.key));
                        }
                    }
                }
                files
            }
            None => data.into_iter().collect(),
        };
        let target = dir.join("volumes").join(&mount.name);
        let _ = std::fs::remove_dir_all(&target);
        make_private_dir(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
        for (path, value) in files {
            if path.contains("..") || path.starts_with('/') {
                return Err(format!("invalid volume item path {path:?}"));
            }
            let file = target.join(&path);
            if let Some(parent) = file.parent() {
                make_private_dir(parent).map_err(|e| format!("creating a volume dir: {e}"))?;
            }
            write_private(&file, &value)
                .map_err(|e| format!("writing volume {:?} file {path:?}: {e}", mount.name))?;
        }
        if mount.mount_path.trim_end_matches('/') == SECRETS_MOUNT {
            app_dir = Some(target);
        }
    }
    Ok(app_dir)
}

fn write_private(path: &Path, value: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(value)
}

/// What the container's readiness probe checks.
#[derive(Debug, PartialEq)]
enum ProbeTarget {
    /// `httpGet`: a GET of the path answers 2xx or 3xx.
    Http(Ipv4Addr, u16, String),
    /// `tcpSocket`: the port accepts a connection.
    Tcp(Ipv4Addr, u16),
}

/// A probe's port: a number, or the name of one of the container's ports.
fn probe_port(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// Where the container's readiness probe goes (`httpGet` or `tcpSocket`; `exec` is not run).
fn probe_target(container: &Container, pod_ip: Ipv4Addr) -> Option<ProbeTarget> {
    let probe = container.readiness_probe.as_ref()?;
    if let Some(get) = &probe.http_get {
        let port = probe_port(container, &get.port)?;
        let path = get.path.clone().unwrap_or_else(|| "/".into());
        return Some(ProbeTarget::Http(pod_ip, port, path));
    }
    let tcp = probe.tcp_socket.as_ref()?;
    Some(ProbeTarget::Tcp(pod_ip, probe_port(container, &tcp.port)?))
}

/// One probe: ready when the answer is 2xx or 3xx (HTTP) or the port accepts (TCP), within 2 s.
async fn probe(container: &Container, pod_ip: Ipv4Addr) -> bool {
    let attempt = async {
        match probe_target(container, pod_ip)? {
            ProbeTarget::Tcp(ip, port) => Some(TcpStream::connect((ip, port)).await.is_ok()),
            ProbeTarget::Http(ip, port, path) => {
                let mut stream = TcpStream::connect((ip, port)).await.ok()?;
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: kube-probe/1.31\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(request.as_bytes()).await.ok()?;
                let mut head = [0u8; 64];
                let mut len = 0;
                while len < 16 {
                    let n = stream.read(&mut head[len..]).await.ok()?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                }
                let line = String::from_utf8_lossy(&head[..len]).into_owned();
                let code: u16 = line.split(' ').nth(1)?.parse().ok()?;
                Some((200..400).contains(&code))
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The pod status for the app container in `state` (a ContainerState as JSON).
#[allow(clippy::too_many_arguments)]
pub fn app_status(
    spec: &PodSpec,
    uid: &str,
    container: &str,
    state: Value,
    ready: bool,
    restarts: i32,
    last_state: &Option<Value>,
    pod_ip: &str,
    host_ip: &str,
    started_at: &str,
    now: &str,
) -> Value {
    let mut patch = status::status_patch(spec, uid, &Fate::Ready, pod_ip, host_ip, started_at);
    let status = &mut patch["status"];
    let running = state.get("running").is_some();
    // A container that will not be restarted ends the pod.
    if let Some(code) = state.pointer("/terminated/exitCode") {
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        status["phase"] = json!(phase);
    }
    if let Some(containers) = status["containerStatuses"].as_array_mut() {
        for c in containers.iter_mut().filter(|c| c["name"] == container) {
            c["ready"] = json!(ready);
            c["started"] = json!(running);
            c["restartCount"] = json!(restarts);
            c["state"] = state.clone();
            match last_state {
                Some(last) => c["lastState"] = last.clone(),
                None => c["lastState"] = json!({}),
            }
        }
    }
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions
            .iter_mut()
            .filter(|c| c["type"] == "Ready" || c["type"] == "ContainersReady")
        {
            c["status"] = json!(if ready { "True" } else { "False" });
            c["lastTransitionTime"] = json!(now);
            if !ready {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!("containers with unready status: [{container}]"));
            }
        }
    }
    patch
}

#[allow(clippy::too_many_arguments)]
async fn patch(
    pods: &Api<Pod>,
    runner: &Runner,
    pod: &Pod,
    spec: &PodSpec,
    uid: &str,
    container: &Container,
    state: Value,
    ready: bool,
    restarts: i32,
    last_state: &Option<Value>,
) {
    let name = pod.name_any();
    let body = app_status(
        spec,
        uid,
        &container.name,
        state,
        ready,
        restarts,
        last_state,
        &runner.pod_ip.to_string(),
        &runner.node_ip.to_string(),
        &runner.started_at,
        &crate::now(),
    );
    let (params, body) = (PatchParams::default(), Patch::Merge(&body));
    if let Err(err) = crate::with_retries(|| pods.patch_status(&name, &params, &body)).await {
        eprintln!(
            "{}/{name}: writing pod status failed: {}",
            pod.namespace().unwrap_or_default(),
            crate::describe(&err)
        );
    }
}

/// Makes `command`'s process get SIGTERM when the fake kubelet dies, however it dies
/// (`scripts/cluster.sh down` stops it with SIGTERM), so nothing it started outlives its cluster.
pub fn end_with_this_process(command: &mut tokio::process::Command) {
    // SAFETY: prctl(2) is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_app_image_is_recognised_with_any_tag() {
        let app = Some(Image::App);
        assert_eq!(image_of("kubectl-rotate.io/demo-app"), app);
        assert_eq!(image_of("kubectl-rotate.io/demo-app:dev"), app);
        assert_eq!(image_of("kubectl-rotate.io/demo-app@sha256:abc"), app);
        assert_eq!(image_of("kubectl-rotate.io/demo-app-x:dev"), None);
        assert_eq!(image_of("example/api:1"), None);
        assert_eq!(image_of("localhost:5000/kubectl-rotate.io/demo-app"), None);
        assert_eq!(
            image_of("kubectl-rotate.io/postgres:15"),
            Some(Image::Postgres)
        );
        assert_eq!(image_of("kubectl-rotate.io/redis"), Some(Image::Redis));
    }

    #[test]
    fn the_restart_policy_decides_whether_an_exit_ends_the_pod() {
        assert!(restarts_after(None, 0));
        assert!(restarts_after(Some("Always"), 1));
        assert!(restarts_after(Some("OnFailure"), 1));
        assert!(!restarts_after(Some("OnFailure"), 0));
        assert!(!restarts_after(Some("Never"), 1));
    }

    #[test]
    fn a_finished_container_ends_the_pod() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "seed".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let done = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let patch = app_status(
            &spec,
            "u",
            "seed",
            done,
            false,
            0,
            &None,
            "198.18.0.2",
            "198.18.0.1",
            "T0",
            "T1",
        );
        assert_eq!(patch["status"]["phase"], "Succeeded");
        let failed = json!({"terminated": {"exitCode": 2, "reason": "Error"}});
        let patch = app_status(
            &spec,
            "u",
            "seed",
            failed,
            false,
            0,
            &None,
            "198.18.0.2",
            "198.18.0.1",
            "T0",
            "T1",
        );
        assert_eq!(patch["status"]["phase"], "Failed");
    }

    #[test]
    fn readiness_probes_are_http_or_tcp_by_number_or_port_name() {
        let container: Container = serde_json::from_value(json!({
            "name": "postgres",
            "ports": [{"name": "postgres", "containerPort": 5432}],
            "readinessProbe": {"tcpSocket": {"port": "postgres"}},
        }))
        .unwrap();
        let ip = Ipv4Addr::new(198, 18, 0, 4);
        assert_eq!(
            probe_target(&container, ip),
            Some(ProbeTarget::Tcp(ip, 5432))
        );
        let container: Container = serde_json::from_value(json!({
            "name": "api",
            "readinessProbe": {"httpGet": {"port": 8000, "path": "/health"}},
        }))
        .unwrap();
        assert_eq!(
            probe_target(&container, ip),
            Some(ProbeTarget::Http(ip, 8000, "/health".into()))
        );
    }

    #[test]
    fn env_names_follow_the_c_identifier_rule() {
        assert!(valid_env_name("AI_AGENTS_KEY"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("postgres-password"));
        assert!(!valid_env_name("1abc"));
        assert!(!valid_env_name(""));
    }

    #[test]
    fn a_restarted_container_is_waiting_with_its_last_exit() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "api".into(),
                image: Some("kubectl-rotate.io/demo-app:dev".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let last = Some(json!({"terminated": {"exitCode": 1, "reason": "Error"}}));
        let waiting = json!({"waiting": {"reason": "CrashLoopBackOff"}});
        let patch = app_status(
            &spec,
            "u",
            "api",
            waiting,
            false,
            2,
            &last,
            "198.18.0.2",
            "198.18.0.1",
            "T0",
            "T1",
        );
        let c = &patch["status"]["containerStatuses"][0];
        assert_eq!(c["restartCount"], 2);
        assert_eq!(c["ready"], false);
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 1);
        let ready = patch["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["status"], "False");
    }

    #[test]
    fn a_pre_stop_exec_hook_runs_before_the_container_is_stopped_and_is_bounded_by_the_grace() {
        let marker =
            std::env::temp_dir().join(format!("fake-kubelet-prestop-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let container: Container = serde_json::from_value(json!({
            "name": "c",
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", format!("touch {}", marker.display())]}}},
        }))
        .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(pre_stop(&container, 5, "ns", "p"));
        assert!(marker.exists(), "the hook ran");
        std::fs::remove_file(&marker).unwrap();
        let slow: Container = serde_json::from_value(json!({
            "name": "c",
            "lifecycle": {"preStop": {"exec": {"command": ["sleep", "30"]}}},
        }))
        .unwrap();
        let started = std::time::Instant::now();
        runtime.block_on(pre_stop(&slow, 1, "ns", "p"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "cut at the grace period"
        );
    }
}
