//! The app the load goes to, deployed into one namespace: everything about it is here, behind
//! `deploy_app` (namespace in, a guard out), so that another way of running it (e.g. PostgreSQL
//! and Redis as workloads of `demo/app.yaml`) replaces this file only.
//!
//! Today, as `tests/e2e/app.rs` does: real PostgreSQL 15 and Redis 7 as child processes on
//! 127.0.0.1 (`tests/e2e/servers.rs`), tenants seeded with `demo-app seed`, Secret
//! `app-secrets` with generated values (created through kubectl's stdin), the Deployments `api`
//! (2 replicas, readinessProbe `GET /health` on 8000) and `worker` (1 replica, `args:
//! [worker]`) of the image `kubectl-rotate.io/demo-app`, which the fake kubelet runs as real
//! processes on their pod IPs, and the Service `api` (selector `app=api`, port 8000) whose
//! Endpoints the load follows.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use crate::servers::{Postgres, Redis};
use crate::support::{TestEnv, bin_dir};

/// What `deploy_app` started outside the cluster; dropping it stops PostgreSQL and Redis. (The
/// namespace and what is in it go with the `TestEnv`.)
pub struct App {
    _postgres: Postgres,
    _redis: Redis,
}

/// Deploys the app into `env`'s namespace and waits until `api` and `worker` are rolled out.
pub fn deploy_app(env: &TestEnv) -> Result<App> {
    let postgres_password = alphanumeric(24);
    let redis_password = alphanumeric(24);
    let encryption_key = fernet_key();
    let (postgres, redis) = std::thread::scope(|s| {
        let pg = s.spawn(|| Postgres::start(&postgres_password));
        let redis = Redis::start(&redis_password);
        (pg.join().expect("postgres start-up panicked"), redis)
    });
    let (postgres, redis) = (postgres?, redis?);

    // The seed reads the encryption key from its environment, never argv.
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
            "openai-api-key": b64(&format!("sk-{}", alphanumeric(40))),
            "encryption-key": b64(&encryption_key),
        },
    });
    env.kubectl_with(
        &["create", "-f", "-"],
        &[],
        Some(secret.to_string().as_bytes()),
    )?
    .success()?;
    let (pg, rd) = (postgres.port, redis.port);
    let manifests = json!({
        "apiVersion": "v1", "kind": "List",
        "items": [
            deployment("api", 2, pg, rd),
            deployment("worker", 1, pg, rd),
            service(),
        ],
    });
    env.apply(&manifests.to_string())?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    Ok(App {
        _postgres: postgres,
        _redis: redis,
    })
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

/// The Deployment `role` (`api` or `worker`, also its `args`): every key of `app-secrets`
/// through envFrom (the dash keys skipped, as a kubelet does), openai and redis keys through
/// secretKeyRef, all four as files of a Secret volume at the app's path. `api` has its port and
/// a readinessProbe on `/health` every second.
fn deployment(role: &str, replicas: u32, postgres_port: u16, redis_port: u16) -> Value {
    let key_ref = |name: &str, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": key}}});
    let mut container = json!({
        "name": role,
        "image": "kubectl-rotate.io/demo-app:dev",
        "args": [role],
        "envFrom": [{"secretRef": {"name": "app-secrets"}}],
        "env": [
            {"name": "DATABASE_HOST", "value": "127.0.0.1"},
            {"name": "DATABASE_PORT", "value": postgres_port.to_string()},
            {"name": "REDIS_HOST", "value": "127.0.0.1"},
            {"name": "REDIS_PORT", "value": redis_port.to_string()},
            {"name": "PORT", "value": "8000"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            key_ref("AI_AGENTS_OPENAI_API_KEY", "openai-api-key"),
            key_ref("AI_AGENTS_REDIS_PASSWORD", "redis-password"),
        ],
        "volumeMounts": [{
            "name": "secrets", "mountPath": "/etc/ai-agents/secrets", "readOnly": true,
        }],
    });
    if role == "api" {
        container["ports"] = json!([{"name": "http", "containerPort": 8000}]);
        container["readinessProbe"] = json!({
            "httpGet": {"path": "/health", "port": 8000},
            "periodSeconds": 1,
        });
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": role, "labels": {"app": role}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": role}},
            "template": {
                "metadata": {"labels": {"app": role}},
                "spec": {
                    "automountServiceAccountToken": false,
                    "terminationGracePeriodSeconds": 5,
                    "containers": [container],
                    "volumes": [{"name": "secrets", "secret": {"secretName": "app-secrets"}}],
                },
            },
        },
    })
}

/// The Service `api`: the endpoints controller lists the Ready pods of `app=api` in the
/// Endpoints object `api`, which the load follows.
fn service() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "api", "labels": {"app": "api"}},
        "spec": {
            "selector": {"app": "api"},
            "ports": [{"name": "http", "port": 8000, "targetPort": 8000}],
        },
    })
}
