//! The fake kubelet's contract with the control plane (tools/fake-kubelet): it never loses a
//! pod, even in a burst of thousands, and its node stays Ready under kube-controller-manager's
//! node lifecycle controller because it renews its Lease in `kube-node-lease` as a kubelet does
//! (tools/fake-kubelet/src/lease.rs, src/resync.rs).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::TestFn;
use crate::support::{ControlPlane, TestEnv};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "fake_kubelet_runs_every_pod_of_a_burst_of_2000_and_its_node_stays_ready",
            fake_kubelet_runs_every_pod_of_a_burst_of_2000_and_its_node_stays_ready,
        ),
        (
            "fake_kubelet_renews_its_node_lease_and_the_node_lifecycle_controller_keeps_it_ready",
            fake_kubelet_renews_its_node_lease_and_the_node_lifecycle_controller_keeps_it_ready,
        ),
    ]
}

const NODE: &str = "fake-node";
const BURST: usize = 2000;
/// How long the burst may take from the first `kubectl apply` to the last pod Running.
const BURST_BOUND: Duration = Duration::from_secs(360);

/// A control plane of its own (the burst would slow every other test's pods): one `kubectl
/// apply` of a List of 2,000 pods, a Deployment created while it runs, and every pod must be
/// Running within `BURST_BOUND`, with the node Ready and untainted all along. A Node that sends
/// no heartbeat is made unreachable meanwhile, which shows the node lifecycle controller is at
/// work on this cluster.
fn fake_kubelet_runs_every_pod_of_a_burst_of_2000_and_its_node_stays_ready(
    _shared: &Path,
) -> Result<()> {
    let plane = ControlPlane::start()?;
    let env = TestEnv::new(&plane.kubeconfig, "burst")?;
    let ns = env.namespace.clone();
    let ghost = format!("ghost-{ns}");
    env.apply(&ghost_node(&ghost))?;
    let started = Instant::now();
    let pods = json!({"apiVersion": "v1", "kind": "List", "items": (0..BURST).map(|i| json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i:04}"), "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    })).collect::<Vec<_>>()});
    let applied = std::thread::scope(|scope| -> Result<Duration> {
        let burst = scope.spawn(|| {
            let input = pods.to_string();
            env.kubectl_with(&["apply", "-f", "-"], &[], Some(input.as_bytes()))
                .and_then(|run| run.success().map(|_| started.elapsed()))
        });
        // A Deployment's pod created during the burst must start too.
        std::thread::sleep(Duration::from_secs(3));
        env.kubectl(&["create", "deployment", "web", "--image=busybox", "-n", &ns])?
            .success()?;
        burst
            .join()
            .map_err(|_| anyhow::anyhow!("the apply panicked"))?
    })?;
    loop {
        node_is_ready_and_untainted(&env, NODE)?;
        let (running, total) = running_pods(&env)?;
        if running == BURST + 1 && total == BURST + 1 {
            break;
        }
        ensure!(
            started.elapsed() < BURST_BOUND,
            "{running} of {total} pods Running ({} expected) {}s after the burst began",
            BURST + 1,
            BURST_BOUND.as_secs()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let took = started.elapsed();
    eprintln!(
        "e2e: {} pods Running {:.1}s after the burst began (kubectl apply took {:.1}s); {}",
        BURST + 1,
        took.as_secs_f64(),
        applied.as_secs_f64(),
        fake_kubelet_usage(&plane.kubeconfig)?
    );
    // Ready for more than 60 s under the node lifecycle controller, which meanwhile marks the
    // Node that sends no heartbeat unreachable (40 s on 1.20, 50 s on 1.37, then its 5 s pass).
    let watched = Instant::now();
    while watched.elapsed() < Duration::from_secs(65) || !unreachable(&env, &ghost)? {
        node_is_ready_and_untainted(&env, NODE)?;
        ensure!(
            watched.elapsed() < Duration::from_secs(150),
            "Node {ghost}, which sends no heartbeat, was not tainted unreachable within 150 s: \
             is the nodelifecycle controller running (scripts/cluster.sh --controllers)?"
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    env.kubectl(&["delete", "node", &ghost, "--wait=false"])?
        .success()?;
    Ok(())
}

/// On the shared control plane: the Lease is the node's, held by it for 40 s, and renewed about
/// every 10 s; the node stays Ready and untainted for 70 s.
fn fake_kubelet_renews_its_node_lease_and_the_node_lifecycle_controller_keeps_it_ready(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "lease")?;
    let node = get_json(&env, &["get", "node", NODE])?;
    let lease = get_json(&env, &["get", "lease", NODE, "-n", "kube-node-lease"])?;
    ensure!(
        lease["spec"]["holderIdentity"] == NODE && lease["spec"]["leaseDurationSeconds"] == 40,
        "Lease kube-node-lease/{NODE}: {}",
        lease["spec"]
    );
    let owner = &lease["metadata"]["ownerReferences"][0];
    ensure!(
        owner["kind"] == "Node" && owner["uid"] == node["metadata"]["uid"],
        "the Lease is not owned by Node {NODE}: {owner}"
    );
    let started = Instant::now();
    let mut renewals: Vec<(String, Duration)> = Vec::new();
    while started.elapsed() < Duration::from_secs(70) {
        node_is_ready_and_untainted(&env, NODE)?;
        let lease = get_json(&env, &["get", "lease", NODE, "-n", "kube-node-lease"])?;
        let renewed = lease["spec"]["renewTime"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if renewals.last().is_none_or(|(last, _)| *last != renewed) {
            renewals.push((renewed, started.elapsed()));
        }
        let since = renewals.last().map_or(Duration::ZERO, |(_, at)| *at);
        ensure!(
            started.elapsed() - since < Duration::from_secs(20),
            "the Lease was not renewed for 20 s (renewals seen: {renewals:?})"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    ensure!(
        renewals.len() >= 6,
        "the Lease was renewed {} times in 70 s; every 10 s expected: {renewals:?}",
        renewals.len()
    );
    Ok(())
}

/// A Node with no kubelet behind it: Ready when created, never heard of again.
fn ghost_node(name: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
    })
    .to_string()
}

fn get_json(env: &TestEnv, args: &[&str]) -> Result<Value> {
    let mut args = args.to_vec();
    args.extend(["-o", "json"]);
    let run = env.kubectl(&args)?;
    run.success()?;
    serde_json::from_str(&run.stdout).with_context(|| format!("kubectl {args:?}"))
}

/// Fails unless Node `name` is Ready and has neither the unreachable nor the not-ready taint.
fn node_is_ready_and_untainted(env: &TestEnv, name: &str) -> Result<()> {
    let node = get_json(env, &["get", "node", name])?;
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    let Some(ready) = ready.filter(|c| c["status"] == "True") else {
        bail!("Node {name} is not Ready: {ready:?}");
    };
    let taints = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let bad = taints.iter().find(|t| {
        matches!(
            t["key"].as_str(),
            Some("node.kubernetes.io/unreachable" | "node.kubernetes.io/not-ready")
        )
    });
    ensure!(
        bad.is_none(),
        "Node {name} is tainted: {taints:?} ({ready})"
    );
    Ok(())
}

fn unreachable(env: &TestEnv, name: &str) -> Result<bool> {
    let node = get_json(env, &["get", "node", name])?;
    let taints = node["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    Ok(taints
        .iter()
        .any(|t| t["key"] == "node.kubernetes.io/unreachable"))
}

/// (Running, all) pods of the test's namespace.
fn running_pods(env: &TestEnv) -> Result<(usize, usize)> {
    let run = env.kubectl(&[
        "get",
        "pods",
        "-n",
        &env.namespace,
        "-o",
        "jsonpath={range .items[*]}{.status.phase}{\"\\n\"}{end}",
    ])?;
    run.success()?;
    let phases: Vec<&str> = run.stdout.lines().collect();
    let running = phases.iter().filter(|p| **p == "Running").count();
    Ok((running, phases.len()))
}

/// The fake kubelet's resident memory and CPU time so far (from DIR/pids next to the
/// kubeconfig); fails if it holds more than 512 MiB.
fn fake_kubelet_usage(kubeconfig: &Path) -> Result<String> {
    let pids = kubeconfig.parent().unwrap_or(Path::new(".")).join("pids");
    let Ok(pids) = std::fs::read_to_string(&pids) else {
        return Ok("fake kubelet usage unknown (a cluster the harness did not start)".into());
    };
    let pid = pids
        .lines()
        .find_map(|l| l.strip_prefix("fake-kubelet "))
        .context("no fake-kubelet in the cluster's pids")?
        .trim();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    // utime and stime, fields 14 and 15 of stat (12 and 13 after the command's ")").
    let ticks: u64 = fields
        .iter()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ensure!(
        rss_kib < 512 * 1024,
        "the fake kubelet holds {} MiB after the burst",
        rss_kib / 1024
    );
    Ok(format!(
        "fake kubelet: {} MiB resident, {:.1}s of CPU",
        rss_kib / 1024,
        ticks as f64 / 100.0
    ))
}
