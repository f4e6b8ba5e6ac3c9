//! `pods/exec`, `pods/attach` and `pods/portforward` through the API server to the fake kubelet,
//! whose streams are served by the kubelet's own code (tools/kubernetes/kubelet-streams, on
//! k8s.io/cri-streaming): it runs the command on the host with the container's environment and
//! dials the pod's IP (in the cluster's network namespace).
//!
//! Clients: real kubectl 1.37 (exec over WebSocket `v5.channel.k8s.io`; port-forward tunnelling
//! SPDY inside WebSocket) and kube-rs (the plugin's own WebSocket port-forward,
//! `v4.channel.k8s.io`). Whatever the client speaks, an API server from 1.30 on speaks SPDY/3.1
//! to the kubelet, as to a real one. The forwarded port is a listener this test binds on the
//! pod's IP; `real_kubectl_reaches_the_demo_database` (run by the demo-stack test in `app`)
//! does the same with the demo's PostgreSQL.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::TestFn;
use crate::support::{TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "exec_streams_output_exit_codes_and_stdin",
            exec_streams_output_exit_codes_and_stdin,
        ),
        (
            "pods_run_in_the_clusters_network_namespace_which_reaches_only_the_machine",
            pods_run_in_the_clusters_network_namespace_which_reaches_only_the_machine,
        ),
        (
            "portforward_reaches_a_listener_on_the_pod_ip",
            portforward_reaches_a_listener_on_the_pod_ip,
        ),
    ]
}

/// A simulated pod `p`, Ready; its IP.
fn ready_pod(env: &TestEnv) -> Result<String> {
    let ns = env.namespace.as_str();
    env.kubectl(&["run", "p", "--image=busybox", "--restart=Never", "-n", ns])?
        .success()?;
    env.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/p",
        "-n",
        ns,
        "--timeout=60s",
    ])?
    .success()?;
    let ip = env
        .kubectl(&[
            "get",
            "pod",
            "p",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.podIP}",
        ])?
        .success()?
        .stdout
        .clone();
    ensure!(ip.starts_with("198."), "pod IP {ip:?}");
    Ok(ip)
}

fn exec_streams_output_exit_codes_and_stdin(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "exec")?;
    ready_pod(&env)?;
    let ns = env.namespace.as_str();

    let echo = env.kubectl(&["exec", "p", "-n", ns, "--", "echo", "hi there"])?;
    echo.success()?;
    ensure!(echo.stdout == "hi there\n", "stdout {:?}", echo.stdout);

    let failing = env.kubectl(&[
        "exec",
        "p",
        "-n",
        ns,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])?;
    failing.failure(3)?;
    ensure!(failing.stdout == "out\n", "stdout {:?}", failing.stdout);
    ensure!(
        failing.stderr.contains("err\n"),
        "stderr {:?}",
        failing.stderr
    );

    // Only PATH: a simulated pod's container has no environment of its own.
    let printed = env.kubectl(&["exec", "p", "-n", ns, "--", "env"])?;
    printed.success()?;
    ensure!(
        printed.stdout.lines().all(|l| l.starts_with("PATH=")),
        "env {:?}",
        printed.stdout
    );

    // stdin reaches the command and its end (v5 close) ends `cat`.
    let data = "line one\nline two\n".repeat(500);
    let cat = env.kubectl_with(
        &["exec", "-i", "p", "-n", ns, "--", "cat"],
        &[],
        Some(data.as_bytes()),
    )?;
    cat.success()?;
    ensure!(
        cat.stdout == data,
        "cat echoed {} bytes, not {}",
        cat.stdout.len(),
        data.len()
    );

    let missing = env.kubectl(&["exec", "p", "-n", ns, "--", "no-such-command-here"])?;
    ensure!(missing.code != Some(0), "a missing command succeeded");
    Ok(())
}

/// The pod IPs and the pods' processes live in the cluster's own network namespace (named in
/// DIR/netns by scripts/cluster.sh), reached from the machine through a veth pair.
fn pods_run_in_the_clusters_network_namespace_which_reaches_only_the_machine(
    kubeconfig: &Path,
) -> Result<()> {
    let Some((name, block)) = crate::support::cluster_netns(kubeconfig)? else {
        // A cluster the harness did not start: its network is not ours to inspect.
        return Ok(());
    };
    let env = TestEnv::new(kubeconfig, "netns")?;
    let ip = ready_pod(&env)?;
    let ns = env.namespace.as_str();
    // The command kubectl exec runs is in the namespace: same network namespace inode.
    let inside = env.kubectl(&[
        "exec",
        "p",
        "-n",
        ns,
        "--",
        "stat",
        "-L",
        "-c",
        "%i",
        "/proc/self/ns/net",
    ])?;
    inside.success()?;
    let expected = std::fs::metadata(format!("/var/run/netns/{name}"))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .with_context(|| format!("/var/run/netns/{name}"))?;
    ensure!(
        inside.stdout.trim() == expected.to_string(),
        "exec ran in namespace {:?}, not {name} ({expected})",
        inside.stdout
    );
    // Inside, the pod IP is local and the machine's loopback is not there: the API server
    // (on the machine's 127.0.0.1) cannot be reached from a pod.
    let routes = env.kubectl(&[
        "exec", "p", "-n", ns, "--", "ip", "-4", "route", "show", "table", "all",
    ])?;
    routes.success()?;
    ensure!(
        routes.stdout.contains(&format!("local {block} dev lo")),
        "routes inside: {}",
        routes.stdout
    );
    ensure!(
        !routes.stdout.lines().any(|l| l.starts_with("default")),
        "the namespace has a default route: {}",
        routes.stdout
    );
    let server = kubeconfig_server_port(kubeconfig)?;
    let probe = env.kubectl(&[
        "exec",
        "p",
        "-n",
        ns,
        "--",
        "bash",
        "-c",
        &format!("exec 3<>/dev/tcp/127.0.0.1/{server}"),
    ])?;
    ensure!(
        probe.code != Some(0),
        "a pod reached the API server on the machine's loopback"
    );
    // On the machine, the pod IP is routed into the namespace, not local.
    let route = std::process::Command::new("ip")
        .args(["-4", "route", "get", &ip])
        .output()?;
    let route = String::from_utf8_lossy(&route.stdout);
    ensure!(
        route.contains("dev krot-h") && !route.starts_with("local"),
        "the machine's route to {ip}: {route}"
    );
    Ok(())
}

/// The port of the API server the kubeconfig names.
fn kubeconfig_server_port(kubeconfig: &Path) -> Result<u16> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let server = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .context("no server in the kubeconfig")?;
    let port = server.rsplit(':').next().unwrap_or_default();
    port.parse().with_context(|| format!("server {server}"))
}

fn portforward_reaches_a_listener_on_the_pod_ip(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "portforward")?;
    let ip = ready_pod(&env)?;
    // "The container's" server: answers one line with "pong: LINE" then closes.
    let listener = crate::support::bind_in_pod_network(kubeconfig, &ip)?;
    let port = listener.local_addr()?.port();
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut conn, _) = listener.accept()?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut line = String::new();
        BufReader::new(conn.try_clone()?).read_line(&mut line)?;
        conn.write_all(format!("pong: {line}").as_bytes())?;
        Ok(())
    });

    let (answer, refused) =
        forward_once(kubeconfig, &env.namespace, "p", port, b"ping\n", Some(1))?;
    server.join().expect("the pod's server panicked")?;
    ensure!(answer == "pong: ping\n", "answer {answer:?}");
    let refused = refused.context("no error for a port nothing listens on")?;
    ensure!(
        refused.contains("connection refused") || refused.contains("Connection refused"),
        "error {refused:?}"
    );
    Ok(())
}

/// One connection through `pods/portforward` (kube-rs, WebSocket) to `pod`:`port`: sends
/// `request`, reads until the pod side closes. With `refused_port`, also forwards that port
/// and returns what its error channel says.
pub fn forward_once(
    kubeconfig: &Path,
    namespace: &str,
    pod: &str,
    port: u16,
    request: &[u8],
    refused_port: Option<u16>,
) -> Result<(String, Option<String>)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = crate::support::kube_client(kubeconfig).await?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let exchange = async {
            let mut forwarder = pods.portforward(pod, &[port]).await?;
            let mut stream = forwarder.take_stream(port).context("no stream")?;
            stream.write_all(request).await?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await?;
            drop(stream);
            let _ = forwarder.join().await;
            let mut refused = None;
            if let Some(other) = refused_port {
                // A port nothing listens on: the error channel says why.
                let mut forwarder = pods.portforward(pod, &[other]).await?;
                let error = forwarder.take_error(other).context("no error channel")?;
                refused = error.await;
                forwarder.abort();
            }
            anyhow::Ok((answer, refused))
        };
        tokio::time::timeout(Duration::from_secs(60), exchange)
            .await
            .context("port-forward took over 60 s")?
    })
}

/// Sends `request` to `port` of `pod` through the API server (kube-rs port-forward) and returns
/// what the server answered once `enough` says so (servers such as PostgreSQL and Redis keep
/// the connection open after answering). At most 30 s.
pub fn forward_exchange(
    kubeconfig: &Path,
    namespace: &str,
    pod: &str,
    port: u16,
    request: &[u8],
    enough: impl Fn(&[u8]) -> bool,
) -> Result<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let client = crate::support::kube_client(kubeconfig).await?;
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        let exchange = async {
            let mut forwarder = pods.portforward(pod, &[port]).await?;
            let mut stream = forwarder.take_stream(port).context("no stream")?;
            stream.write_all(request).await?;
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !enough(&answer) {
                let n = stream.read(&mut buf).await?;
                ensure!(n > 0, "the server closed the connection after {answer:?}");
                answer.extend_from_slice(&buf[..n]);
            }
            drop(stream);
            forwarder.abort();
            anyhow::Ok(answer)
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .context("port-forward took over 30 s")?
    })
}

/// What a person does with the demo's database and real kubectl: `kubectl port-forward
/// svc/postgres :5432` and the machine's psql through it, as the app's role; `kubectl exec -it`
/// on a real terminal (a pseudo-terminal in the pod, as its `tty` says); `kubectl cp` out of the
/// pod; `kubectl attach` to its output. The password goes to psql in its environment, and
/// nothing printed holds a value.
pub fn real_kubectl_reaches_the_demo_database(env: &TestEnv) -> Result<()> {
    let ns = env.namespace.as_str();
    let values = env.secret_values("app-secrets")?;
    let password = String::from_utf8(values["postgres-password"].clone())?;

    let mut forward = env
        .command("kubectl")
        .args(["port-forward", "-n", ns, "svc/postgres", ":5432"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting kubectl port-forward")?;
    let stdout = forward.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let answer = (|| -> Result<crate::support::Run> {
        // "Forwarding from 127.0.0.1:PORT -> 5432"
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .context("kubectl port-forward printed no local port within 30 s")?;
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                break rest.split(' ').next().unwrap_or_default().to_string();
            }
        };
        let started = std::time::Instant::now();
        let output = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "ai_agents",
                "-d",
                "ai_agents",
            ])
            .args([
                "-tAc",
                "SELECT current_user || ' ' || count(*) FROM tenant_configs",
            ])
            .env("PGPASSWORD", &password)
            .env("PGCONNECT_TIMEOUT", "20")
            .output()
            .context("running psql (the postgresql package)")?;
        Ok(crate::support::Run::from(output, started.elapsed()))
    })();
    let _ = forward.kill();
    let _ = forward.wait();
    let answer = answer?;
    answer.success()?;
    ensure!(
        answer.stdout.trim() == "ai_agents 3",
        "psql through kubectl port-forward: {:?}",
        answer.stdout
    );
    assert_no_values(&answer, &values)?;

    let command = format!(
        "kubectl exec -it postgres-0 -n {ns} -- sh -c 'tty; psql -P pager=off -U postgres -d ai_agents -tAc \"SELECT 40 + 2\"'"
    );
    let shown = env.run_with_terminal(&command, b"")?;
    shown.success()?;
    ensure!(
        shown.stdout.contains("/dev/pts/") && shown.stdout.contains("42"),
        "kubectl exec -it showed {:?}",
        shown.stdout
    );
    assert_no_values(&shown, &values)?;

    // "The container" is the machine: what kubectl cp brings out is the machine's file.
    let out = tempfile::tempdir()?;
    let copy = out.path().join("os-release");
    // (/usr/lib/os-release: /etc/os-release is a relative link, which tar copies as a link)
    let from = format!("{ns}/postgres-0:/usr/lib/os-release");
    env.kubectl(&["cp", &from, copy.to_str().context("UTF-8 path")?])?
        .success()?;
    ensure!(
        std::fs::read(&copy)? == std::fs::read("/usr/lib/os-release")?,
        "kubectl cp brought another file"
    );

    // kubectl attach follows the container's output: a login as a role that does not exist,
    // made meanwhile, shows up as the server's log line.
    let mut attach = env
        .command("kubectl")
        .args(["attach", "-n", ns, "postgres-0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("starting kubectl attach")?;
    let stdout = attach.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let seen = (|| -> Result<String> {
        std::thread::sleep(Duration::from_secs(2)); // attached before the line is written
        let login = [
            "exec",
            "postgres-0",
            "-n",
            ns,
            "--",
            "psql",
            "-U",
            "no_such_role",
            "-d",
        ];
        let refused = env.kubectl(&[&login[..], &["ai_agents", "-c", "SELECT 1"]].concat())?;
        ensure!(refused.code != Some(0), "a login as no_such_role succeeded");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(left)
                .context("kubectl attach showed no log line of the refused login within 20 s")?;
            if line.contains("no_such_role") {
                return Ok(line);
            }
        }
    })();
    let _ = attach.kill();
    let _ = attach.wait();
    let seen = seen?;
    ensure!(
        !values
            .values()
            .any(|v| seen.as_bytes().windows(v.len()).any(|w| w == v.as_slice())),
        "the attached output holds a value"
    );
    Ok(())
}
