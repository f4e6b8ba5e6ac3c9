//! Benchmark of `kubectl rotate secret` (issue 3, "Benchmark"): a program that prints figures,
//! not a timed test. Run it with `cargo bench --bench rotation` (release build).
//!
//! It starts its own local control plane (`scripts/cluster.sh up` in a temporary directory, with
//! the release build of the fake kubelet) and stops it at the end with `scripts/cluster.sh down`,
//! which stops its processes by PID: also on an error, a panic or Ctrl-C. Then it measures:
//!
//! 1. **Demo app** (seeded as the e2e tests do): the wall time of rotating `openai-api-key`
//!    through real kubectl (`kubectl rotate secret app-secrets openai-api-key --from-stdin -y`)
//!    against the runbook's manual sequence scripted with kubectl (`patch secret --patch-file`,
//!    `rollout restart` api and worker, `rollout status` api and worker). One untimed warm-up of
//!    each, then `REPS` runs of each, alternating; median [min-max]. Runs are `GAP` apart,
//!    outside the timed part: `restartedAt` has one-second resolution, and the controller
//!    manager's client rate limiter (20 requests/s, burst 30) refills in between. After every
//!    run the Secret is checked to hold the new value.
//! 2. **Many consumers**: a namespace with one Secret and N Deployments (1 replica each, all
//!    `envFrom` the Secret), N = 1, 50, 200, created by one `kubectl apply` of a List and waited
//!    for. One rotation each (3 for N = 1, the "slowest single rollout" baseline; median): wall
//!    time, the slowest workload's `seconds` in the `-o json` report, and the API requests.
//!
//! 3. **A crowded namespace**: the demo app alone, then with 5,000 unrelated pods added (bound to
//!    another node, so the fake kubelet leaves them alone; they are listed and watched like any
//!    pod). `REPS` rotations of `openai-api-key` each, by the plugin binary itself (not through
//!    kubectl, whose own memory would count), for the median wall time and the median peak RSS
//!    (`wait4`'s `ru_maxrss`): the target is that both stay within 10% of the empty namespace's.
//!
//! **Counting requests.** The API server writes one audit line per request at stage
//! ResponseComplete (`DIR/audit.log`; watches add a ResponseStarted line, not counted). The
//! plugin's requests are the ResponseComplete lines appended after the log's size taken just
//! before the run (read 1 s after it, so the watches' completions are in), by user `admin`,
//! whose userAgent is not kubectl's (`kubectl/v...`): the plugin sends `kubectl-rotate/VERSION`,
//! and kubectl only execs the plugin. Nothing else runs meanwhile:
//! the run fails if kubectl made admin requests inside the plugin's window. Requests by
//! user `kube-controller-manager` in that window are the cluster's own work for the rollouts.
//! "Restarts sent" is when the last `patch deployments` completed, from the plugin's first request.
//!
//! Reading the figures: a rollout on this control plane takes the controllers' work only (the
//! fake kubelet starts pods at once), so with many consumers the time is the controller
//! manager's (client-side limit of 20 requests/s per controller) and the machine's CPU; the
//! plugin's own part is "all restarts sent after".
//!
//! The environment reaches `scripts/cluster.sh`: e.g. `KUBE_CONTROLLER_MANAGER=wrapper` runs the
//! controller manager through a script that adds `--kube-api-qps`/`--kube-api-burst`.

#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use base64::Engine;
use jiff::Timestamp;
use rand::Rng;
use serde_json::{Value, json};
use support::{Run, TestEnv, repo_root};
use tokio::runtime::Builder;

const REPS: usize = 5;
const CASES: [usize; 3] = [1, 50, 200];
const BASELINE_REPS: usize = 3;
const GAP: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let plane = Plane::start()?; // declared first, dropped last: stops the control plane
    let env = TestEnv::new(&plane.file("kubeconfig"), "benchdemo")?;
    let versions: Value = serde_json::from_str(&kubectl(&env, "version -o json", None)?.stdout)?;
    env.seed_demo_app()?;
    let (mut plugin, mut runbook) = (Vec::new(), Vec::new());
    for rep in 0..=REPS {
        let a = plugin_rotate(&env, "app-secrets openai-api-key")?.elapsed;
        std::thread::sleep(GAP);
        let b = scripted_runbook(&env)?;
        std::thread::sleep(GAP);
        let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
        let what = if rep == 0 { "warm-up" } else { "run" };
        eprintln!("bench: demo {what} {rep}: plugin {a:.2}s, runbook {b:.2}s");
        if rep > 0 {
            plugin.push(a);
            runbook.push(b);
        }
    }
    let mut envs = vec![env]; // namespaces stay until the end: no deletion traffic meanwhile
    let mut cases = Vec::new();
    for n in CASES {
        let (env, case) = consumers_case(&plane, n)?;
        envs.push(env);
        cases.push(case);
    }
    let crowd = crowded_case(&plane)?;
    print_summary(&versions, &plugin, &runbook, &cases, &crowd);
    Ok(())
}

/// Unrelated pods added to the demo namespace for the crowded case.
const UNRELATED_PODS: usize = 5000;

struct Crowd {
    empty_wall: Vec<f64>,
    empty_rss_mb: Vec<f64>,
    crowded_wall: Vec<f64>,
    crowded_rss_mb: Vec<f64>,
}

/// The demo app's namespace without and with `UNRELATED_PODS` unrelated pods.
fn crowded_case(plane: &Plane) -> Result<Crowd> {
    let env = TestEnv::new(&plane.file("kubeconfig"), "benchcrowd")?;
    env.seed_demo_app()?;
    let home = tempfile::tempdir()?;
    let measure = |what: &str| -> Result<(Vec<f64>, Vec<f64>)> {
        let (mut wall, mut rss) = (Vec::new(), Vec::new());
        for rep in 0..=REPS {
            std::thread::sleep(GAP);
            let (seconds, kib) = direct_rotation(&env, home.path())?;
            eprintln!(
                "bench: {what} {rep}: {seconds:.2}s, peak RSS {:.1} MB",
                kib as f64 / 1024.0
            );
            if rep > 0 {
                wall.push(seconds);
                rss.push(kib as f64 / 1024.0);
            }
        }
        Ok((wall, rss))
    };
    let (empty_wall, empty_rss_mb) = measure("empty namespace")?;
    let started = Instant::now();
    for chunk in 0..UNRELATED_PODS / 500 {
        let items: Vec<String> = (0..500)
            .map(|i| {
                json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("unrelated-{:04}", chunk * 500 + i), "labels": {"app": "unrelated"}},
                    "spec": {"nodeName": "elsewhere", "automountServiceAccountToken": false,
                        "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}})
                .to_string()
            })
            .collect();
        let list = format!(
            r#"{{"kind": "List", "apiVersion": "v1", "items": [{}]}}"#,
            items.join(",")
        );
        kubectl(&env, "create -f -", Some(list.as_bytes()))?;
    }
    let listed = kubectl(&env, "get pods -l app=unrelated -o name", None)?;
    let count = listed.stdout.lines().count();
    ensure!(
        count == UNRELATED_PODS,
        "{count} unrelated pods, not {UNRELATED_PODS}"
    );
    eprintln!(
        "bench: {UNRELATED_PODS} unrelated pods created in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let (crowded_wall, crowded_rss_mb) = measure("5,000 unrelated pods")?;
    Ok(Crowd {
        empty_wall,
        empty_rss_mb,
        crowded_wall,
        crowded_rss_mb,
    })
}

/// One rotation of the demo's `openai-api-key` by the plugin binary, run directly: its wall
/// time and peak resident set (KiB, from `wait4`).
fn direct_rotation(env: &TestEnv, home: &Path) -> Result<(f64, i64)> {
    use std::io::Read;
    let value = new_value();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubectl-rotate"))
        .args([
            "secret",
            "app-secrets",
            "openai-api-key",
            "--from-stdin",
            "-y",
            "-n",
        ])
        .arg(&env.namespace)
        .env_clear()
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(value.as_bytes())?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data the kernel fills in; `pid` is our own child, reaped here
    // once (std's `Child` is not waited on afterwards).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let elapsed = started.elapsed().as_secs_f64();
    let stderr = reader.join().unwrap_or_default();
    ensure!(waited == pid, "wait4 failed");
    ensure!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the rotation failed:\n{stderr}"
    );
    check_value(env, "app-secrets", "openai-api-key", &value)?;
    Ok((elapsed, usage.ru_maxrss))
}

/// The benchmark's own control plane, in a temporary directory.
struct Plane {
    dir: tempfile::TempDir,
}

impl Plane {
    fn start() -> Result<Self> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--release", "--locked", "-p", "fake-kubelet"]);
        let built = build.current_dir(repo_root()).status()?;
        ensure!(built.success(), "building the fake kubelet failed");
        let dir = tempfile::Builder::new().prefix("rotate-bench-").tempdir()?;
        let plane = Plane { dir };
        stop_on_interrupt(plane.dir.path().to_path_buf());
        let mut up = Command::new(repo_root().join("scripts/cluster.sh"));
        up.arg("up").arg(plane.dir.path()).stdout(Stdio::null());
        up.env("FAKE_KUBELET", support::bin_dir().join("fake-kubelet"));
        ensure!(up.status()?.success(), "the control plane did not start");
        Ok(plane)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn cluster_down(dir: &Path) {
    let script = repo_root().join("scripts/cluster.sh");
    let _ = Command::new(script).arg("down").arg(dir).status();
}

impl Drop for Plane {
    fn drop(&mut self) {
        cluster_down(self.dir.path());
    }
}

/// Ctrl-C skips destructors: stop the control plane, then exit.
fn stop_on_interrupt(dir: PathBuf) {
    std::thread::spawn(move || {
        let rt = Builder::new_current_thread().enable_all().build();
        if let Ok(rt) = rt
            && rt.block_on(tokio::signal::ctrl_c()).is_ok()
        {
            eprintln!("bench: interrupted; stopping the control plane");
            cluster_down(&dir);
            let _ = std::fs::remove_dir_all(&dir);
            std::process::exit(130);
        }
    });
}

/// Real kubectl with the words of `line` plus `-n NAMESPACE`; fails unless it exits 0.
fn kubectl(env: &TestEnv, line: &str, stdin: Option<&[u8]>) -> Result<Run> {
    let mut args: Vec<&str> = line.split_whitespace().collect();
    args.extend(["-n", &env.namespace]);
    let run = env.kubectl_with(&args, &[], stdin)?;
    run.success()?;
    Ok(run)
}

/// A fresh value of the shape the demo app accepts (`^sk-[A-Za-z0-9_-]{20,}$`).
fn new_value() -> String {
    let alnum = rand::rng().sample_iter(rand::distr::Alphanumeric);
    let tail: String = alnum.take(48).map(char::from).collect();
    format!("sk-proj-{tail}")
}

fn b64(value: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// Checks that Secret `secret` holds `value` under `key`.
fn check_value(env: &TestEnv, secret: &str, key: &str, value: &str) -> Result<()> {
    let stored = env.secret_values(secret)?.remove(key);
    let ok = stored.as_deref() == Some(value.as_bytes());
    ensure!(ok, "{secret}/{key} does not hold the new value");
    Ok(())
}

/// `kubectl rotate secret SECRET KEY [FLAGS] --from-stdin -y -n NS`, timed by `Run::elapsed`.
fn plugin_rotate(env: &TestEnv, args: &str) -> Result<Run> {
    let value = new_value();
    let line = format!("rotate secret {args} --from-stdin -y");
    let run = kubectl(env, &line, Some(value.as_bytes()))?;
    let words: Vec<&str> = args.split_whitespace().collect();
    check_value(env, words[0], words[1], &value)?;
    Ok(run)
}

/// The runbook's manual sequence, scripted with kubectl; the patch goes through a file (0600).
fn scripted_runbook(env: &TestEnv) -> Result<Duration> {
    let value = new_value();
    let mut file = tempfile::NamedTempFile::new()?;
    let patch = json!({"data": {"openai-api-key": b64(&value)}});
    file.write_all(patch.to_string().as_bytes())?;
    let patch_file = file.path().to_str().context("a UTF-8 path")?;
    let steps = [
        &format!("patch secret app-secrets --patch-file {patch_file}"),
        "rollout restart deployment/api",
        "rollout restart deployment/worker",
        "rollout status deployment/api --timeout=120s",
        "rollout status deployment/worker --timeout=120s",
    ];
    let started = Instant::now();
    for step in steps {
        kubectl(env, step, None)?;
    }
    let elapsed = started.elapsed();
    check_value(env, "app-secrets", "openai-api-key", &value)?;
    Ok(elapsed)
}

struct Case {
    n: usize,
    wall: Vec<f64>,
    slow: Vec<f64>,
    req: Requests,
}

/// A Deployment named NAME, 1 replica, reading every key of Secret `shared` through envFrom.
const CONSUMER: &str = r#"{"apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "NAME"}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "NAME"}},
  "template": {"metadata": {"labels": {"app": "NAME"}}, "spec": {"automountServiceAccountToken": false,
    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9",
      "envFrom": [{"secretRef": {"name": "shared"}}]}]}}}}"#;

/// One Secret and `n` Deployments consuming it: rotates its key and counts the requests.
fn consumers_case(plane: &Plane, n: usize) -> Result<(TestEnv, Case)> {
    let env = TestEnv::new(&plane.file("kubeconfig"), &format!("bench{n}"))?;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shared"},
        "type": "Opaque", "data": {"api-key": b64(&new_value())}});
    let consumer = |i| CONSUMER.replace("NAME", &format!("c{i:03}"));
    let items: Vec<String> = (0..n).map(consumer).collect();
    let items = items.join(",");
    let list = format!(r#"{{"kind": "List", "apiVersion": "v1", "items": [{items}]}}"#);
    let started = Instant::now();
    kubectl(&env, "apply -f -", Some(secret.to_string().as_bytes()))?;
    kubectl(&env, "apply -f -", Some(list.as_bytes()))?;
    wait_all_rolled_out(&env, n)?;
    let setup = started.elapsed().as_secs_f64();
    eprintln!("bench: {n} Deployment(s) created and rolled out in {setup:.1}s");

    let (mut wall, mut slow, mut req) = (Vec::new(), Vec::new(), None);
    for _ in 0..if n == 1 { BASELINE_REPS } else { 1 } {
        std::thread::sleep(GAP);
        let offset = std::fs::metadata(plane.file("audit.log"))?.len() as usize;
        let run = plugin_rotate(&env, "shared api-key -o json")?;
        let report: Value = serde_json::from_str(&run.stdout).context("the -o json report")?;
        let workloads = report["workloads"].as_array().context("report.workloads")?;
        let ok = workloads.len() == n && report["succeeded"] == true;
        ensure!(ok, "unexpected report: {report}");
        let seconds = workloads.iter().filter_map(|w| w["seconds"].as_f64());
        slow.push(seconds.fold(0.0, f64::max));
        wall.push(run.elapsed.as_secs_f64());
        if req.is_none() {
            std::thread::sleep(Duration::from_secs(1)); // the watches' completions land
            let events = audit_since(&plane.file("audit.log"), offset)?;
            let counted = count_requests(&events);
            let kubectl = counted.admin_kubectl;
            ensure!(
                kubectl == 0,
                "{kubectl} admin requests by kubectl during the run"
            );
            req = Some(counted);
        }
    }
    let req = req.context("no run")?;
    let case = Case { n, wall, slow, req };
    Ok((env, case))
}

/// Polls `kubectl get deployments` (1/s) until all `n` are rolled out with 1 ready replica.
fn wait_all_rolled_out(env: &TestEnv, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let rolled_out = |d: &&Value| {
        let (s, generation) = (&d["status"], d["metadata"]["generation"].as_i64());
        let ones = ["replicas", "updatedReplicas", "availableReplicas"];
        s["observedGeneration"].as_i64() >= generation && ones.iter().all(|k| s[k] == 1)
    };
    loop {
        let list: Value = serde_json::from_str(&kubectl(env, "get deploy -o json", None)?.stdout)?;
        let items = list["items"].as_array().context("a list")?;
        let done = items.iter().filter(rolled_out).count();
        if done == n {
            return Ok(());
        }
        let late = Instant::now() > deadline;
        ensure!(!late, "{done} of {n} rolled out in 600s");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The audit events at stage ResponseComplete appended after byte `offset`.
fn audit_since(path: &Path, offset: usize) -> Result<Vec<Value>> {
    let log = std::fs::read(path)?;
    let events = serde_json::Deserializer::from_slice(&log[offset..]).into_iter();
    let mut events: Vec<Value> = events.collect::<Result<_, _>>()?;
    events.retain(|e| e["stage"] == "ResponseComplete");
    Ok(events)
}

#[derive(Default)]
struct Requests {
    by_kind: BTreeMap<String, usize>,
    admin_kubectl: usize,
    kcm: usize,
    restarts_sent_s: f64,
}

impl Requests {
    fn total(&self) -> usize {
        self.by_kind.values().sum()
    }
}

fn user(e: &Value) -> &str {
    e["user"]["username"].as_str().unwrap_or_default()
}

fn by_kubectl(e: &Value) -> bool {
    let agent = e["userAgent"].as_str().unwrap_or_default();
    agent.starts_with("kubectl/")
}

fn time(e: &Value, field: &str) -> Timestamp {
    let text = e[field].as_str().unwrap_or_default();
    text.parse().unwrap_or_default()
}

/// The plugin's requests among `events` (see the module's doc), and what else ran meanwhile.
fn count_requests(events: &[Value]) -> Requests {
    let plugin = |e: &&Value| user(e) == "admin" && !by_kubectl(e);
    let ours: Vec<&Value> = events.iter().filter(plugin).collect();
    let mut req = Requests::default();
    for e in &ours {
        let (verb, object) = (e["verb"].as_str().unwrap_or("?"), &e["objectRef"]);
        let what = match (object["resource"].as_str(), object["subresource"].as_str()) {
            (Some(resource), Some(sub)) => format!("{verb} {resource}/{sub}"),
            (Some(resource), None) => format!("{verb} {resource}"),
            _ => format!("{verb} {}", e["requestURI"].as_str().unwrap_or("?")),
        };
        *req.by_kind.entry(what).or_default() += 1;
    }
    let received = |e: &Value| time(e, "requestReceivedTimestamp");
    let times: Vec<Timestamp> = ours.iter().map(|e| received(e)).collect();
    let (Some(&first), Some(&last)) = (times.iter().min(), times.iter().max()) else {
        return req;
    };
    let seconds = |t: Timestamp| (t - first).total(jiff::Unit::Second).unwrap_or(0.0);
    let window = first..=last;
    let inside = |e: &&Value| window.contains(&received(e));
    let meanwhile: Vec<&Value> = events.iter().filter(inside).collect();
    let kubectl_admin = |e: &&&Value| user(e) == "admin" && by_kubectl(e);
    req.admin_kubectl = meanwhile.iter().filter(kubectl_admin).count();
    let controllers = |e: &&&Value| user(e) == "kube-controller-manager";
    req.kcm = meanwhile.iter().filter(controllers).count();
    let restart = |e: &&&Value| e["verb"] == "patch" && e["objectRef"]["resource"] == "deployments";
    let sent = ours
        .iter()
        .filter(restart)
        .map(|e| time(e, "stageTimestamp"));
    req.restarts_sent_s = sent.max().map_or(0.0, seconds);
    req
}

fn median(xs: &[f64]) -> f64 {
    let mut sorted = xs.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// `median s [min-max] (runs)`, or the one figure.
fn spread(xs: &[f64]) -> String {
    let lo = xs.iter().copied().fold(f64::MAX, f64::min);
    let hi = xs.iter().copied().fold(f64::MIN, f64::max);
    match xs.len() {
        1 => format!("{lo:.2} s"),
        n => format!("{:.2} s [{lo:.2}-{hi:.2}] ({n} runs)", median(xs)),
    }
}

/// Prints one line of the table: "figure|value|target|met", in columns.
fn row(line: &str) {
    let cells: Vec<&str> = line.split('|').chain(["", "", ""]).collect();
    let [figure, value, target, met] = [cells[0], cells[1], cells[2], cells[3]];
    println!("{figure:<46} {value:<32} {target:<10} {met}");
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

fn print_summary(versions: &Value, plugin: &[f64], runbook: &[f64], cases: &[Case], crowd: &Crowd) {
    let (one, mid, big) = (&cases[0], &cases[1], &cases[2]);
    let demo_ratio = median(plugin) / median(runbook);
    let ratio = median(&big.wall) / median(&one.wall);
    // Requests = a + b·N through the smallest and the largest case, checked on the middle one.
    let total = |c: &Case| c.req.total() as f64;
    let b = (total(big) - total(one)) / (big.n - one.n) as f64;
    let a = total(one) - b * one.n as f64;
    let predicted = a + b * mid.n as f64;
    let linear = (total(mid) - predicted).abs() <= (0.02 * predicted).max(2.0);
    let mut kinds: Vec<&String> = cases.iter().flat_map(|c| c.req.by_kind.keys()).collect();
    kinds.sort();
    kinds.dedup();
    // No polling: each get/list/watch count is the same whatever N.
    let count = |c: &Case, k: &str| c.req.by_kind.get(k).copied().unwrap_or(0);
    let constant = |k: &str| cases.iter().all(|c| count(c, k) == count(one, k));
    let is_read = |k: &str| ["get ", "list ", "watch "].iter().any(|r| k.starts_with(r));
    let no_polling = kinds.iter().all(|k| !is_read(k) || constant(k));
    let per_case = |f: &dyn Fn(&Case) -> String| {
        let cells: Vec<String> = cases.iter().map(f).collect();
        cells.join(" / ")
    };
    let ns = per_case(&|c| c.n.to_string());
    let totals = per_case(&|c| c.req.total().to_string());
    let kcm = per_case(&|c| c.req.kcm.to_string());

    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = |side: &str| versions[side]["gitVersion"].as_str().map(str::to_string);
    let server = version("serverVersion").unwrap_or_default();
    let client = version("clientVersion").unwrap_or_default();
    println!(
        "\nkubectl-rotate benchmark: {cores} cores, kube-apiserver {server}, kubectl {client}"
    );
    row("figure|value|target|met");
    row(&format!("demo: kubectl rotate secret|{}", spread(plugin)));
    row(&format!("demo: scripted runbook|{}", spread(runbook)));
    let demo_met = met(demo_ratio <= 0.5);
    row(&format!(
        "demo: plugin / runbook|{demo_ratio:.2}x|<= 0.50x|{demo_met}"
    ));
    for c in cases {
        let (n, wall, slow) = (c.n, spread(&c.wall), spread(&c.slow));
        row(&format!("N={n}: plugin wall time|{wall}"));
        row(&format!("N={n}: slowest workload in the report|{slow}"));
        row(&format!(
            "N={n}: all restarts sent after|{:.2} s",
            c.req.restarts_sent_s
        ));
    }
    let (big_n, one_n, ratio_met) = (big.n, one.n, met(ratio <= 1.5));
    row(&format!(
        "N={big_n} / N={one_n} wall time|{ratio:.1}x|<= 1.5x|{ratio_met}"
    ));
    row(&format!("plugin API requests, N = {ns}|{totals}"));
    let (mid_n, linear) = (mid.n, met(linear));
    row(&format!(
        "requests = a + b*N (N={mid_n}: {predicted:.0} predicted)|{a:.1} + {b:.2}*N|linear|{linear}"
    ));
    row(&format!(
        "get/list/watch requests constant in N|{}|no polling|{}",
        met(no_polling),
        met(no_polling)
    ));
    row(&format!("kube-controller-manager requests meanwhile|{kcm}"));
    let time_ratio = median(&crowd.crowded_wall) / median(&crowd.empty_wall);
    let rss_ratio = median(&crowd.crowded_rss_mb) / median(&crowd.empty_rss_mb);
    row(&format!(
        "demo ns: wall time, empty|{}",
        spread(&crowd.empty_wall)
    ));
    row(&format!(
        "demo ns + {UNRELATED_PODS} unrelated pods: wall time|{}",
        spread(&crowd.crowded_wall)
    ));
    row(&format!(
        "  crowded / empty wall time|{time_ratio:.2}x|<= 1.10x|{}",
        met(time_ratio <= 1.10)
    ));
    let mb = |xs: &[f64]| {
        let lo = xs.iter().copied().fold(f64::MAX, f64::min);
        let hi = xs.iter().copied().fold(f64::MIN, f64::max);
        format!("{:.1} MB [{lo:.1}-{hi:.1}]", median(xs))
    };
    row(&format!(
        "demo ns: plugin peak RSS, empty|{}",
        mb(&crowd.empty_rss_mb)
    ));
    row(&format!(
        "demo ns + {UNRELATED_PODS} unrelated pods: peak RSS|{}",
        mb(&crowd.crowded_rss_mb)
    ));
    row(&format!(
        "  crowded / empty peak RSS|{rss_ratio:.2}x|<= 1.10x|{}",
        met(rss_ratio <= 1.10)
    ));

    println!("\nplugin requests by verb and resource       {ns}");
    for k in kinds {
        let counts = per_case(&|c| count(c, k).to_string());
        println!("  {k:<42} {counts}");
    }
}
