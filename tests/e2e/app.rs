//! The runbook's app for real: the fake kubelet runs `demo-app` as a process for pods of image
//! `kubectl-rotate.io/demo-app` (tools/fake-kubelet/src/app.rs), against a real PostgreSQL 15
//! and Redis 7 started by each test on 127.0.0.1 (see `servers`). Secret values are generated
//! here and reach kubectl through stdin only.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use crate::TestFn;
use crate::servers::{Postgres, Redis};
use crate::support::{TestEnv, assert_no_values, bin_dir};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "app_starts_for_real_logs_and_answers_health_through_the_pod_proxy",
            app_starts_for_real_logs_and_answers_health_through_the_pod_proxy,
        ),
        (
            "app_with_a_wrong_postgres_password_crash_loops_with_the_servers_error",
            app_with_a_wrong_postgres_password_crash_loops_with_the_servers_error,
        ),
        (
            "app_with_another_encryption_key_crash_loops_on_the_tenant_data",
            app_with_another_encryption_key_crash_loops_on_the_tenant_data,
        ),
        (
            "app_rotation_succeeds_and_a_value_the_app_rejects_is_rolled_back",
            app_rotation_succeeds_and_a_value_the_app_rejects_is_rolled_back,
        ),
    ]
}

fn alphanumeric(len: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A Fernet key as Python's `Fernet.generate_key()` prints it.
fn fernet_key() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE.encode(bytes)
}

fn openai_key() -> String {
    format!("sk-{}", alphanumeric(40))
}

/// One test's namespace, servers and Deployment `api`.
struct AppStack {
    env: TestEnv,
    _postgres: Postgres,
    _redis: Redis,
}

impl AppStack {
    /// Starts PostgreSQL and Redis, seeds the tenants, creates `app-secrets` and the Deployment
    /// `api` (`replicas`), and waits for its rollout.
    fn start(kubeconfig: &Path, label: &str, replicas: u32) -> Result<AppStack> {
        let env = TestEnv::new(kubeconfig, label)?;
        let postgres_password = alphanumeric(24);
        let redis_password = alphanumeric(24);
        let encryption_key = fernet_key();
        let (postgres, redis) = std::thread::scope(|s| {
            let pg = s.spawn(|| Postgres::start(&postgres_password));
            let redis = Redis::start(&redis_password);
            (pg.join().expect("postgres start-up panicked"), redis)
        });
        let (postgres, redis) = (postgres?, redis?);

        let no_secrets = tempfile::tempdir()?;
        let seed = Command::new(bin_dir().join("demo-app"))
            .arg("seed")
            .env_clear()
            .env("DATABASE_URL", postgres.admin_url())
            .env("AI_AGENTS_ENCRYPTION_KEY", &encryption_key)
            .env("AI_AGENTS_SECRETS_DIR", no_secrets.path())
            .output()
            .context("running demo-app seed")?;
        ensure!(
            seed.status.success(),
            "demo-app seed failed: {}{}",
            String::from_utf8_lossy(&seed.stdout),
            String::from_utf8_lossy(&seed.stderr)
        );

        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "app-secrets", "namespace": env.namespace},
            "type": "Opaque",
            "data": {
                "postgres-password": b64(&postgres_password),
                "redis-password": b64(&redis_password),
                "openai-api-key": b64(&openai_key()),
                "encryption-key": b64(&encryption_key),
            },
        });
        env.kubectl_with(
            &["create", "-f", "-"],
            &[],
            Some(secret.to_string().as_bytes()),
        )?
        .success()?;
        env.apply(&deployment(replicas, postgres.port, redis.port).to_string())?;
        env.wait_rolled_out(&["deployment/api"])?;
        Ok(AppStack {
            env,
            _postgres: postgres,
            _redis: redis,
        })
    }

    fn pods(&self) -> Result<Vec<Value>> {
        let run = self.env.kubectl(&[
            "get",
            "pods",
            "-n",
            &self.env.namespace,
            "-l",
            "app=api",
            "-o",
            "json",
        ])?;
        run.success()?;
        let list: Value = serde_json::from_str(&run.stdout)?;
        Ok(list["items"].as_array().cloned().unwrap_or_default())
    }

    fn logs(&self, pod: &str, previous: bool) -> Result<String> {
        let mut args = vec!["logs", pod, "-n", &self.env.namespace];
        if previous {
            args.push("--previous");
        }
        Ok(self.env.kubectl(&args)?.stdout)
    }

    /// Waits (at most 60 s) for a pod of `api` in CrashLoopBackOff whose current or previous
    /// log contains `needle`; returns its name.
    fn wait_crash_loop_logging(&self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        loop {
            for pod in self.pods()? {
                let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
                if waiting["reason"] != "CrashLoopBackOff" {
                    continue;
                }
                let name = pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let restarts = pod["status"]["containerStatuses"][0]["restartCount"]
                    .as_i64()
                    .unwrap_or(0);
                ensure!(restarts >= 1, "a crash-looping container has restarted");
                for previous in [false, true] {
                    let log = self.logs(&name, previous)?;
                    if log.contains(needle) {
                        return Ok(name);
                    }
                    seen = log;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "no pod crash-looped with {needle:?} in its log within 60 s; last log:\n{seen}"
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Replaces key `key` of `app-secrets` (the patch in a private file, never argv).
    fn set_key(&self, key: &str, value: &str) -> Result<()> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        self.env
            .merge_patch_secret("app-secrets", &json!({"data": {key: encoded}}).to_string())
    }

    fn restart(&self) -> Result<()> {
        self.env
            .kubectl(&[
                "rollout",
                "restart",
                "deployment/api",
                "-n",
                &self.env.namespace,
            ])?
            .success()?;
        Ok(())
    }
}

/// The Deployment `api`: openai and redis keys through `secretKeyRef`, all four as files of a
/// `secret` volume at the app's path, the dash keys of `envFrom` skipped by the kubelet.
fn deployment(replicas: u32, postgres_port: u16, redis_port: u16) -> Value {
    let key_ref = |name: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": key}}});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "labels": {"app": "api"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api"}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "api",
                        "image": "kubectl-rotate.io/demo-app:dev",
                        "args": ["api"],
                        "ports": [{"name": "http", "containerPort": 8000}],
                        "envFrom": [{"secretRef": {"name": "app-secrets"}}],
                        "env": [
                            {"name": "DATABASE_HOST", "value": "127.0.0.1"},
                            {"name": "DATABASE_PORT", "value": postgres_port.to_string()},
                            {"name": "REDIS_HOST", "value": "127.0.0.1"},
                            {"name": "REDIS_PORT", "value": redis_port.to_string()},
                            {"name": "PORT", "value": "8000"},
                            {"name": "POOL_RECYCLE_SECONDS", "value": "2"},
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            key_ref("AI_AGENTS_OPENAI_API_KEY", "openai-api-key"),
                            key_ref("AI_AGENTS_REDIS_PASSWORD", "redis-password"),
                        ],
                        "volumeMounts": [{
                            "name": "secrets", "mountPath": "/etc/ai-agents/secrets", "readOnly": true,
                        }],
                        "readinessProbe": {
                            "httpGet": {"path": "/health", "port": 8000},
                            "periodSeconds": 1,
                        },
                    }],
                    "volumes": [{"name": "secrets", "secret": {"secretName": "app-secrets"}}],
                },
            },
        },
    })
}

fn pod_name(pod: &Value) -> String {
    pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The fake kubelet's directory for pod `uid` (its state dir is DIR/fake-kubelet, next to the
/// kubeconfig `scripts/cluster.sh` writes as DIR/kubeconfig).
fn pod_dir(kubeconfig: &Path, uid: &str) -> PathBuf {
    let dir = kubeconfig.parent().unwrap_or(Path::new("."));
    dir.join("fake-kubelet").join("pods").join(uid)
}

fn app_starts_for_real_logs_and_answers_health_through_the_pod_proxy(
    kubeconfig: &Path,
) -> Result<()> {
    let stack = AppStack::start(kubeconfig, "app-start", 1)?;
    let env = &stack.env;
    let pods = stack.pods()?;
    let pod = pods
        .iter()
        .find(|p| is_ready(p))
        .context("a Ready pod of api")?;
    let name = pod_name(pod);
    let log = stack.logs(&name, false)?;
    for line in [
        "Secrets loaded successfully",
        "database connection healthy",
        "redis connection healthy",
    ] {
        ensure!(log.contains(line), "{line:?} is not in the log:\n{log}");
    }
    for (key, value) in env.secret_values("app-secrets")? {
        let value = String::from_utf8_lossy(&value).into_owned();
        ensure!(
            !log.contains(&value),
            "the value of {key:?} is in the app's log"
        );
    }
    let path = format!(
        "/api/v1/namespaces/{}/pods/{name}:8000/proxy/health",
        env.namespace
    );
    let health = env.kubectl(&["get", "--raw", &path])?;
    health.success()?;
    let body: Value = serde_json::from_str(&health.stdout)
        .with_context(|| format!("health is JSON: {}", health.stdout))?;
    ensure!(body["status"] == "healthy", "health answer: {body}");

    // exec runs in the container's environment; port-forward reaches the app's own server.
    let pod_ip = pod["status"]["podIP"].as_str().unwrap_or_default();
    let printed = env.kubectl(&[
        "exec",
        &name,
        "-n",
        &env.namespace,
        "--",
        "printenv",
        "POD_NAME",
        "LISTEN_ADDRESS",
    ])?;
    printed.success()?;
    ensure!(
        printed.stdout == format!("{name}\n{pod_ip}\n"),
        "exec printed {:?}",
        printed.stdout
    );
    let (answer, _) = crate::stream::forward_once(
        kubeconfig,
        &env.namespace,
        &name,
        8000,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        None,
    )?;
    ensure!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("healthy"),
        "/health through port-forward: {answer}"
    );

    // The Secret volume: private files in a private directory, while the pod lives.
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let dir = pod_dir(kubeconfig, &uid);
    if env_owns_cluster_dir(kubeconfig) {
        let file = dir.join("volumes/secrets/encryption-key");
        let mode = std::fs::metadata(&file)
            .with_context(|| format!("{} exists", file.display()))?
            .permissions()
            .mode();
        ensure!(
            mode & 0o777 == 0o600,
            "{} has mode {mode:o}",
            file.display()
        );
        let mode = std::fs::metadata(&dir)?.permissions().mode();
        ensure!(mode & 0o777 == 0o700, "{} has mode {mode:o}", dir.display());
    }

    // Deleting the pod stops the process (SIGTERM) and removes its files; a new one starts.
    env.kubectl(&[
        "delete",
        "pod",
        &name,
        "-n",
        &env.namespace,
        "--timeout=30s",
    ])?
    .success()?;
    if env_owns_cluster_dir(kubeconfig) {
        ensure!(
            !dir.exists(),
            "{} is left after the pod's deletion",
            dir.display()
        );
    }
    env.wait_rolled_out(&["deployment/api"])?;
    env.wait_until(
        "a new api pod to be Ready",
        &[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "app=api",
            "-o",
            "json",
        ],
        |out| {
            serde_json::from_str::<Value>(out).is_ok_and(|list| {
                list["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(|p| is_ready(p) && pod_name(p) != name))
            })
        },
    )?;
    Ok(())
}

/// Whether the fake kubelet's state dir is next to the kubeconfig (a cluster of
/// `scripts/cluster.sh` on this machine).
fn env_owns_cluster_dir(kubeconfig: &Path) -> bool {
    kubeconfig
        .parent()
        .is_some_and(|d| d.join("fake-kubelet").join("pods").is_dir())
}

fn app_with_a_wrong_postgres_password_crash_loops_with_the_servers_error(
    kubeconfig: &Path,
) -> Result<()> {
    let stack = AppStack::start(kubeconfig, "app-pgpass", 1)?;
    stack.set_key("postgres-password", &alphanumeric(24))?;
    stack.restart()?;
    let pod = stack.wait_crash_loop_logging("password authentication failed")?;
    // The old pod keeps serving: the rollout waits for a Ready new pod.
    let ready = stack.pods()?.iter().filter(|p| is_ready(p)).count();
    ensure!(
        ready == 1,
        "the old pod stays Ready while {pod} crash-loops"
    );
    Ok(())
}

fn app_with_another_encryption_key_crash_loops_on_the_tenant_data(kubeconfig: &Path) -> Result<()> {
    let stack = AppStack::start(kubeconfig, "app-fernet", 1)?;
    stack.set_key("encryption-key", &fernet_key())?;
    stack.restart()?;
    stack.wait_crash_loop_logging("cannot be decrypted")?;
    Ok(())
}

fn app_rotation_succeeds_and_a_value_the_app_rejects_is_rolled_back(
    kubeconfig: &Path,
) -> Result<()> {
    let stack = AppStack::start(kubeconfig, "app-rotate", 2)?;
    let env = &stack.env;
    let new_key = openai_key();
    let rotate = env.kubectl_with(
        &[
            "rotate",
            "secret",
            "app-secrets",
            "openai-api-key",
            "--from-stdin",
            "-y",
            "--timeout",
            "120s",
            "-n",
            &env.namespace,
        ],
        &[],
        Some(format!("{new_key}\n").as_bytes()),
    )?;
    rotate.success()?;
    let values = env.secret_values("app-secrets")?;
    ensure!(
        values.get("openai-api-key").map(Vec::as_slice) == Some(new_key.as_bytes()),
        "the Secret holds the new key"
    );
    assert_no_values(&rotate, &values)?;

    // A token is not an OpenAI key: the new pods exit at start-up and the run undoes itself.
    let bad = env.kubectl(&[
        "rotate",
        "secret",
        "app-secrets",
        "openai-api-key",
        "--generate",
        "token",
        "-y",
        "--timeout",
        "120s",
        "-n",
        &env.namespace,
    ])?;
    bad.failure(1)?;
    let values = env.secret_values("app-secrets")?;
    ensure!(
        values.get("openai-api-key").map(Vec::as_slice) == Some(new_key.as_bytes()),
        "the Secret holds the good key again after the rollback\nstdout:\n{}\nstderr:\n{}",
        bad.stdout,
        bad.stderr
    );
    env.wait_rolled_out(&["deployment/api"])?;
    env.wait_until(
        "every api pod to be Ready (and no other left)",
        &[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "app=api",
            "-o",
            "json",
        ],
        |out| {
            serde_json::from_str::<Value>(out).is_ok_and(|list| {
                list["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 2 && items.iter().all(is_ready))
            })
        },
    )?;
    Ok(())
}
