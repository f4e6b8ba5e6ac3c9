//! The app the load goes to, deployed into one namespace: everything about it is here, behind
//! `deploy_app` (namespace in; the namespace and what is in it go with the `TestEnv`).
//!
//! The runbook's app as `scripts/demo.sh` deploys it (`demo/app.yaml`): Secrets `app-secrets`
//! and `postgres-admin` with generated values (`demo/secret.py`, through kubectl's stdin), real
//! PostgreSQL 15 (StatefulSet `postgres`) and Redis 7 (Deployment `redis`) run by the fake
//! kubelet inside the cluster's network namespace, the tenants seeded by the Job
//! `seed-tenants`, then the Deployments `api` (2 replicas, readinessProbe `GET /health` on
//! 8000) and `worker` (2), and the Service `api` whose Endpoints the load follows.

use anyhow::Result;

use crate::support::TestEnv;

/// Deploys the app into `env`'s namespace and waits until `api` and `worker` are rolled out.
pub fn deploy_app(env: &TestEnv) -> Result<()> {
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    env.apply_demo_stack(&[])?;
    env.wait_rolled_out(&[
        "statefulset/postgres",
        "deployment/redis",
        "deployment/api",
        "deployment/worker",
    ])?;
    Ok(())
}
