//! The encryption-key preset where a current Kubernetes (1.37) adds rules 1.20 had not: Pod
//! Security admission on the migration Job's pods (`encryption.job`) and
//! `autoscaling/v2` HorizontalPodAutoscalers on the consumers it scales down. These tests need
//! a server that has both (1.23+: `tests/e2e/newer-release-tests.txt`).
//!
//! The local control plane runs the HPA controller but no metrics API (scripts/cluster.sh): it
//! keeps replicas within min..max and leaves a workload at 0 replicas alone, but never computes
//! a scale from metrics, so it never writes `ScaledToZero` (which needs `minReplicas: 0` and an
//! Object or External metric). The tests show what the plugin reads and does (the preview, the
//! refusal, the HPA left untouched, the recorded counts restored); what the controller does at
//! 0 replicas is the source's (`plan::autoscaling` cites it), and the `ScaledToZero` condition it
//! would have written is written here through the status subresource, just before the plugin
//! reads it (the controller rewrites an HPA's conditions on its 15 s resync).

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::TestFn;
use crate::encryption_rotation::{
    JOB_CONFIG, ROWS, app_back_and_serving, replicas, rows_readable_with, start,
};
use crate::support::TestEnv;

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "encryption_key_job_running_as_root_in_a_restricted_namespace_is_refused_before_any_write",
            encryption_key_job_running_as_root_in_a_restricted_namespace_is_refused_before_any_write,
        ),
        (
            "encryption_key_job_in_a_restricted_namespace_runs_with_the_security_context_restricted_asks_for",
            encryption_key_job_in_a_restricted_namespace_runs_with_the_security_context_restricted_asks_for,
        ),
        (
            "encryption_key_preview_shows_the_hpa_of_api_and_refuses_only_one_that_scales_from_zero",
            encryption_key_preview_shows_the_hpa_of_api_and_refuses_only_one_that_scales_from_zero,
        ),
    ]
}

/// Labels the namespace `pod-security.kubernetes.io/enforce: restricted` and checks that it
/// enforces: a pod without a security context is refused by a server-side dry run.
fn enforce_restricted(env: &TestEnv) -> Result<()> {
    env.kubectl(&[
        "label",
        "namespace",
        &env.namespace,
        "pod-security.kubernetes.io/enforce=restricted",
    ])?
    .success()?;
    let plain = env.kubectl(&[
        "run",
        "plain",
        "-n",
        &env.namespace,
        "--image=kubectl-rotate.io/demo-app:dev",
        "--dry-run=server",
    ])?;
    plain.failure(1)?;
    ensure!(
        plain
            .stderr
            .contains("violates PodSecurity \"restricted:latest\""),
        "the namespace enforces restricted: {}",
        plain.stderr
    );
    Ok(())
}

/// The demo stack without the bulk tenants (whose insert needs `kubectl exec`): the seed's
/// 3 tenants, and `api` and `worker` serving.
fn demo_stack(kubeconfig: &Path, label: &str) -> Result<TestEnv> {
    let env = TestEnv::new(kubeconfig, label)?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    env.apply_demo_stack(&["api", "worker"])?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    Ok(env)
}

/// The Jobs this tool created in the namespace.
fn jobs_created(env: &TestEnv) -> Result<String> {
    let run = env.kubectl(&[
        "get",
        "jobs",
        "-n",
        &env.namespace,
        "-l",
        "app.kubernetes.io/managed-by=kubectl-rotate",
        "-o",
        "name",
    ])?;
    run.success()?;
    Ok(run.stdout)
}

/// Refused before any write, and before the database is reached (no port-forward, no exec):
/// the Job's check is the encryption preflight's first.
fn encryption_key_job_running_as_root_in_a_restricted_namespace_is_refused_before_any_write(
    kubeconfig: &Path,
) -> Result<()> {
    let env = demo_stack(kubeconfig, "ek-psa-root")?;
    enforce_restricted(&env)?;
    let before = env.secret_values("app-secrets")?;
    let files = tempfile::tempdir()?;
    let config = files.path().join("config.yaml");
    let root = JOB_CONFIG.replace(
        "        args: [reencrypt]\n",
        "        args: [reencrypt]\n        securityContext: {runAsUser: 0}\n",
    );
    ensure!(root != JOB_CONFIG, "the config asks for root");
    std::fs::write(&config, root)?;
    let dir = files.path().join("run");
    let run = env.rotate(&[
        "--config",
        config.to_str().unwrap_or_default(),
        "encryption-key",
        "-y",
        "--backup-dir",
        dir.to_str().unwrap_or_default(),
    ])?;
    run.failure(1)?;
    for part in [
        format!("would not run in namespace {}", env.namespace),
        "dry-run create of the Job (dryRun=All, nothing stored) warns: would violate PodSecurity \
         \"restricted:latest\": runAsUser=0 (container \"migrate\" must not set runAsUser=0)"
            .to_string(),
        "remove or change what encryption.job.securityContext / podSecurityContext".to_string(),
        "nothing was changed".to_string(),
    ] {
        ensure!(run.stderr.contains(&part), "{part:?} in:\n{}", run.stderr);
    }
    ensure!(jobs_created(&env)?.is_empty(), "no Job was created");
    ensure!(env.journals_of("app-secrets")?.is_empty(), "no run started");
    ensure!(
        env.backups_of("app-secrets")?.is_empty(),
        "no backup was written"
    );
    ensure!(!dir.exists(), "no file was written");
    ensure!(
        env.secret_values("app-secrets")? == before,
        "the Secret is unchanged"
    );
    for name in ["api", "worker"] {
        ensure!(replicas(&env, name)? == 2, "{name} was not scaled");
    }
    Ok(())
}

/// Gives `api` and `worker` what `restricted` asks for, so that they may start again in the
/// namespace once it enforces it (their new pods come at the scale-up).
fn restrict_consumers(env: &TestEnv) -> Result<()> {
    let patch = r#"{"spec": {"template": {"spec": {
        "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]
    }}}}"#;
    for name in ["api", "worker"] {
        let container = env.get_json("deployment", name)?["spec"]["template"]["spec"]["containers"]
            [0]["name"]
            .as_str()
            .context("a container")?
            .to_string();
        env.kubectl(&[
            "patch",
            "deployment",
            name,
            "-n",
            &env.namespace,
            "--type",
            "strategic",
            "-p",
            &patch.replace("\"name\": \"app\"", &format!("\"name\": \"{container}\"")),
        ])?
        .success()?;
    }
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])
}

/// Needs PostgreSQL through the API server (port-forward, pg_dump by exec): on 1.37 only once
/// the fake kubelet speaks SPDY (tests/e2e/streaming-tests.txt).
fn encryption_key_job_in_a_restricted_namespace_runs_with_the_security_context_restricted_asks_for(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-psa")?;
    restrict_consumers(&env)?;
    enforce_restricted(&env)?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let config = files.path().join("config.yaml");
    std::fs::write(&config, JOB_CONFIG)?;
    let dir = files.path().join("run");
    let run = env.rotate(&[
        "--config",
        config.to_str().unwrap_or_default(),
        "encryption-key",
        "-y",
        "--backup-dir",
        dir.to_str().unwrap_or_default(),
    ])?;
    run.success()?;
    let text = format!("{}{}", run.stdout, run.stderr);
    ensure!(
        !text.contains("PodSecurity"),
        "no Pod Security warning:\n{text}"
    );
    ensure!(
        text.contains(&format!("{ROWS} rows: {ROWS} on the new key")),
        "{text}"
    );
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(new != old, "the Secret holds the new key");
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)?;
    let job = jobs_created(&env)?;
    let job = job.trim().strip_prefix("job.batch/").context("one Job")?;
    let pod = &env.get_json("job", job)?["spec"]["template"]["spec"];
    let context = &pod["securityContext"];
    ensure!(
        context["runAsNonRoot"] == true
            && context["runAsUser"] == 65532
            && context["seccompProfile"]["type"] == "RuntimeDefault",
        "the pod's security context: {context}"
    );
    let container = &pod["containers"][0]["securityContext"];
    ensure!(
        container["allowPrivilegeEscalation"] == false
            && container["capabilities"]["drop"] == serde_json::json!(["ALL"]),
        "the container's security context: {container}"
    );
    Ok(())
}

/// `api`'s HPA as a team writes it (CPU, 1 to 4 replicas).
const HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: api}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 1
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
"#;

/// Writes the HPA's `ScaledToZero` condition as the controller would (`status` True: it scaled
/// `api` to zero itself).
fn set_scaled_to_zero(env: &TestEnv, status: &str) -> Result<()> {
    let patch = serde_json::json!({"status": {"desiredReplicas": 0, "conditions": [{
        "type": "ScaledToZero", "status": status, "reason": "ScaledToZero",
        "message": "the HPA controller scaled the workload to zero",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }]}});
    env.kubectl(&[
        "patch",
        "hpa",
        "api",
        "-n",
        &env.namespace,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ])?
    .success()?;
    Ok(())
}

/// Needs PostgreSQL through the API server (the preflight counts the rows before the HPAs are
/// weighed): on 1.37 only once the fake kubelet speaks SPDY.
fn encryption_key_preview_shows_the_hpa_of_api_and_refuses_only_one_that_scales_from_zero(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-hpa")?;
    env.apply(HPA)?;
    let hpa_before = env.get_json("hpa", "api")?["spec"].clone();
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;

    set_scaled_to_zero(&env, "True")?;
    let dir = files.path().join("refused");
    let run = env.rotate(&[
        "encryption-key",
        "-y",
        "--backup-dir",
        dir.to_str().unwrap_or_default(),
    ])?;
    run.failure(1)?;
    for part in [
        format!(
            "HPA {}/api scaled deployment/api to zero itself",
            env.namespace
        ),
        format!(
            "kubectl patch hpa api -n {} --type merge -p '{{\"spec\":{{\"minReplicas\":1}}}}'",
            env.namespace
        ),
        "--strategy keyring".to_string(),
        "nothing was changed".to_string(),
    ] {
        ensure!(run.stderr.contains(&part), "{part:?} in:\n{}", run.stderr);
    }
    ensure!(env.journals_of("app-secrets")?.is_empty(), "no run started");
    ensure!(replicas(&env, "api")? == 2, "api was not scaled");

    // Once it scaled `api` up again (the condition goes False on its next rescale), it stops
    // acting at 0 replicas: shown in the preview, and the run goes ahead.
    set_scaled_to_zero(&env, "False")?;
    let dir = files.path().join("run");
    let dir_arg = dir.to_str().context("UTF-8 path")?;
    // (a backup directory outside the repository, where `cargo test` runs: the preview checks
    // it as the run would)
    let preview = env.rotate(&["encryption-key", "--dry-run", "--backup-dir", dir_arg])?;
    preview.success()?;
    let note = "HPA api scales deployment/api: at 0 replicas it stops acting; it resumes once the recorded \
                count is back";
    let text = format!("{}{}", preview.stdout, preview.stderr);
    ensure!(text.contains(note), "the preview names the HPA:\n{text}");
    env.rotate(&[
        "encryption-key",
        "-y",
        "--backup-dir",
        dir.to_str().unwrap_or_default(),
    ])?
    .success()?;
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)?;
    ensure!(
        env.get_json("hpa", "api")?["spec"] == hpa_before,
        "the HPA is left as it was"
    );
    Ok(())
}
