//! What a current Kubernetes serves and 1.20 did not (issue 24): CronJobs (`batch/v1`) and the
//! Jobs they create reading a key, native sidecars (init containers with `restartPolicy:
//! Always`) reading a key, and a Service's pods read from its EndpointSlices, with the
//! port-forward rule Kubernetes 1.35 added. The tests that need a newer release than the oldest
//! one the suite runs on are listed, with that release, in tests/e2e/newer-release-tests.txt.

use std::path::Path;

use anyhow::{Result, ensure};
use serde_json::{Value, json};

use crate::TestFn;
use crate::rbac::{DATABASE, bind, contains_all, manifest, rotate_as};
use crate::support::{TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "a_cronjob_and_the_job_it_created_that_read_the_key_are_listed_and_reported_never_restarted",
            a_cronjob_and_the_job_it_created_that_read_the_key_are_listed_and_reported_never_restarted,
        ),
        (
            "a_deployment_whose_only_reader_is_a_native_sidecar_is_restarted_by_a_rotation",
            a_deployment_whose_only_reader_is_a_native_sidecar_is_restarted_by_a_rotation,
        ),
        (
            "a_database_role_without_create_on_pods_portforward_is_refused_in_the_preflight_naming_the_pod_behind_the_service",
            a_database_role_without_create_on_pods_portforward_is_refused_in_the_preflight_naming_the_pod_behind_the_service,
        ),
    ]
}

/// A container that reads `key` of Secret `secret` as `variable`, and does nothing else.
fn reader(name: &str, variable: &str, secret: &str, key: &str) -> Value {
    json!({
        "name": name,
        "image": "registry.k8s.io/pause:3.9",
        "env": [{"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}],
    })
}

/// The consumers cell of the status row of `key`.
fn status_row<'a>(stdout: &'a str, key: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(key))
        .unwrap_or_default()
}

fn a_cronjob_and_the_job_it_created_that_read_the_key_are_listed_and_reported_never_restarted(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cron")?;
    env.seed_demo_app()?;
    let job_before = start_report(&env)?;

    let status = env.rotate(&["status", "app-secrets"])?;
    status.success()?;
    let row = status_row(&status.stdout, "redis-password");
    for consumer in [
        "cronjob/report (env REDIS_PASSWORD in c, not restarted)",
        "job/report-now (env REDIS_PASSWORD in c, not restarted)",
    ] {
        ensure!(
            row.contains(consumer),
            "status lists {consumer}:\n{}",
            status.stdout
        );
    }
    ensure!(
        !status_row(&status.stdout, "openai-api-key").contains("report"),
        "the report reads only redis-password:\n{}",
        status.stdout
    );
    status_json_lists_as_not_restartable(&env, &[("CronJob", "report"), ("Job", "report-now")])?;

    let rotate = [
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
    ];
    let preview = env.rotate(&[&rotate[..], &["--dry-run"]].concat())?;
    preview.success()?;
    let text = format!("{}{}", preview.stdout, preview.stderr);
    for expected in [
        "cronjob/report (env REDIS_PASSWORD in c): a CronJob's next Job reads the new value",
        "job/report-now (env REDIS_PASSWORD in c): a Job of cronjob/report: its running pods keep the old value \
         until they end",
    ] {
        ensure!(
            text.contains(expected),
            "the preview says {expected:?}:\n{text}"
        );
    }

    let run = env.rotate(&[&rotate[..], &["-y", "-o", "json"]].concat())?;
    run.success()?;
    assert_no_values(&run, &env.secret_values("app-secrets")?)?;
    let report: Value = serde_json::from_str(&run.stdout)?;
    let workloads = report["workloads"].as_array().cloned().unwrap_or_default();
    for (kind, name) in [("CronJob", "report"), ("Job", "report-now")] {
        ensure!(
            workloads
                .iter()
                .any(|w| w["kind"] == kind && w["name"] == name && w["outcome"] == "notRestarted"),
            "the report lists {kind} {name} as not restarted: {}",
            run.stdout
        );
    }
    // Reported, not touched: the CronJob's template and the running Job are as they were.
    let cronjob_after = env.get_json("cronjob", "report")?;
    ensure!(
        cronjob_after["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["annotations"]
            .is_null(),
        "the CronJob was not restarted: {cronjob_after}"
    );
    let job_after = env.get_json("job", "report-now")?;
    ensure!(
        job_after["metadata"]["uid"] == job_before["metadata"]["uid"]
            && job_after["metadata"]["generation"] == job_before["metadata"]["generation"],
        "the Job was left running as it was: {job_after}"
    );
    Ok(())
}

/// `status app-secrets -o json` lists each of `consumers` (kind, name) as a consumer of
/// redis-password through REDIS_PASSWORD, not restartable.
fn status_json_lists_as_not_restartable(env: &TestEnv, consumers: &[(&str, &str)]) -> Result<()> {
    let json_status = env.rotate(&["status", "app-secrets", "-o", "json"])?;
    json_status.success()?;
    let doc: Value = serde_json::from_str(&json_status.stdout)?;
    let keys = doc["secrets"][0]["keys"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let redis = keys
        .iter()
        .find(|k| k["name"] == "redis-password")
        .cloned()
        .unwrap_or_default();
    for kind_name in consumers {
        ensure!(
            redis["consumers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    (c["kind"].as_str(), c["name"].as_str())
                        == (Some(kind_name.0), Some(kind_name.1))
                        && c["restartable"] == false
                        && c["usages"][0]["variable"] == "REDIS_PASSWORD"
                }),
            "the JSON status lists {kind_name:?}, not restartable: {redis}"
        );
    }
    Ok(())
}

/// A nightly report reading redis-password (its schedule never comes during the test) and a
/// run of it started by hand, as `kubectl create job --from=cronjob/...` does: the Job is owned
/// by the CronJob. Returns the Job once its pod runs.
fn start_report(env: &TestEnv) -> Result<Value> {
    let cronjob = json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report"},
        "spec": {
            "schedule": "0 3 1 1 *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [reader("c", "REDIS_PASSWORD", "app-secrets", "redis-password")],
            }}}},
        },
    });
    env.apply(&cronjob.to_string())?;
    let ns = env.namespace.clone();
    env.kubectl(&[
        "create",
        "job",
        "report-now",
        "--from=cronjob/report",
        "-n",
        &ns,
    ])?
    .success()?;
    env.wait_until(
        "the report Job's pod to run",
        &[
            "get",
            "pods",
            "-n",
            &ns,
            "-l",
            "job-name=report-now",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
        |out| out.contains("Running"),
    )?;
    let job_before = env.get_json("job", "report-now")?;
    ensure!(
        job_before["metadata"]["ownerReferences"][0]["kind"] == "CronJob",
        "kubectl made the CronJob own the Job: {job_before}"
    );
    Ok(job_before)
}

fn a_deployment_whose_only_reader_is_a_native_sidecar_is_restarted_by_a_rotation(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "sidecar")?;
    let token = deploy_mesh(&env)?;
    let ns = env.namespace.clone();
    // The fake kubelet reports the sidecar running beside the app, as a kubelet does.
    let pods = env.kubectl(&["get", "pods", "-n", &ns, "-l", "app=mesh", "-o", "json"])?;
    pods.success()?;
    let pods: Value = serde_json::from_str(&pods.stdout)?;
    let sidecar = &pods["items"][0]["status"]["initContainerStatuses"][0];
    ensure!(
        sidecar["name"] == "proxy"
            && !sidecar["state"]["running"].is_null()
            && sidecar["ready"] == true,
        "the sidecar runs: {sidecar}"
    );
    ensure!(
        pods["items"][0]["spec"]["initContainers"][0]["restartPolicy"] == "Always",
        "the API server kept restartPolicy: Always: {}",
        pods["items"][0]["spec"]
    );

    let status = env.rotate(&["status", "mesh-secrets"])?;
    status.success()?;
    ensure!(
        status_row(&status.stdout, "token")
            .contains("deployment/mesh (env TOKEN in sidecar proxy)"),
        "status names the sidecar:\n{}",
        status.stdout
    );
    let json_status = env.rotate(&["status", "mesh-secrets", "-o", "json"])?;
    json_status.success()?;
    let doc: Value = serde_json::from_str(&json_status.stdout)?;
    let usage = &doc["secrets"][0]["keys"][0]["consumers"][0]["usages"][0];
    ensure!(
        *usage
            == json!({"type": "env", "container": "proxy", "initContainer": true, "sidecar": true,
                      "variable": "TOKEN", "key": "token"}),
        "-o json marks the sidecar: {}",
        json_status.stdout
    );

    let before = env.restarted_at("deployment", "mesh")?;
    let run = env.rotate(&[
        "secret",
        "mesh-secrets",
        "token",
        "--generate",
        "password",
        "-y",
        "-o",
        "json",
    ])?;
    run.success()?;
    assert_no_values(&run, &env.secret_values("mesh-secrets")?)?;
    let report: Value = serde_json::from_str(&run.stdout)?;
    let mesh = report["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["name"] == "mesh")
        .cloned()
        .unwrap_or_default();
    ensure!(
        mesh["kind"] == "Deployment" && mesh["outcome"] == "rolledOut",
        "the sidecar's Deployment was restarted and rolled out: {}",
        run.stdout
    );
    let after = env.restarted_at("deployment", "mesh")?;
    ensure!(
        after.is_some() && after != before,
        "restartedAt was set: {after:?}"
    );
    env.wait_rolled_out(&["deployment/mesh"])?;
    ensure!(
        env.secret_values("mesh-secrets")?["token"] != token.as_bytes(),
        "the token changed"
    );
    Ok(())
}

/// Secret `mesh-secrets` (`token`, generated) and Deployment `mesh`, rolled out, whose app
/// container reads nothing and whose proxy beside it, a native sidecar, reads the token.
/// Returns the token.
fn deploy_mesh(env: &TestEnv) -> Result<String> {
    let token = String::from_utf8(crate::support::random_password().expose().to_vec())?;
    // Created from stdin (never argv), without a last-applied annotation that would hold it.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "mesh-secrets", "namespace": env.namespace},
        "stringData": {"token": token},
    });
    env.kubectl_with(
        &["create", "-f", "-"],
        &[],
        Some(secret.to_string().as_bytes()),
    )?
    .success()?;
    let mut proxy = reader("proxy", "TOKEN", "mesh-secrets", "token");
    proxy["restartPolicy"] = json!("Always");
    // The app container reads nothing; the proxy beside it, a native sidecar, reads the token.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "mesh"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "mesh"}},
            "template": {
                "metadata": {"labels": {"app": "mesh"}},
                "spec": {
                    "initContainers": [proxy],
                    "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.9"}],
                },
            },
        },
    });
    env.apply(&deployment.to_string())?;
    env.wait_rolled_out(&["deployment/mesh"])?;
    Ok(token)
}

fn a_database_role_without_create_on_pods_portforward_is_refused_in_the_preflight_naming_the_pod_behind_the_service(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "pf-create")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres"])?;
    env.wait_rolled_out(&["statefulset/postgres"])?;
    let ns = env.namespace.clone();
    // The shipped database Role as it was before Kubernetes 1.35: port-forward as get only.
    let shipped = manifest(&DATABASE)?;
    let old_rule = "    resources: [\"pods/portforward\"]\n    verbs: [\"get\", \"create\"]";
    ensure!(
        shipped.contains(old_rule),
        "the shipped Role grants create on pods/portforward"
    );
    let before_135 = shipped.replace(
        old_rule,
        "    resources: [\"pods/portforward\"]\n    verbs: [\"get\"]",
    );
    bind(&env, &before_135, DATABASE.role, "dba-1-34")?;
    let before = env.secret_values("app-secrets")?;
    let refused = rotate_as(&env, "dba-1-34", &["postgres", "-y"])?;
    refused.failure(1)?;
    contains_all(
        &refused.stderr,
        &[
            "nothing was changed. Missing permissions:",
            // The pod behind service/postgres, found through its EndpointSlices (its Endpoints
            // on a server without them).
            &format!(
                "create pods/portforward/postgres-0 in namespace {ns} (to reach service/postgres:5432 through \
                 the API server; from Kubernetes 1.35 a WebSocket upgrade is also authorized as create)"
            ),
            "  - apiGroups: [\"\"]\n    resources: [\"pods/portforward\"]\n    verbs: [\"create\"]",
        ],
    )?;
    ensure!(
        !refused.stderr.contains("get pods/portforward"),
        "get is granted, only create is missing: {}",
        refused.stderr
    );
    ensure!(
        !refused.stderr.to_lowercase().contains("deprecated"),
        "no deprecation warning reaches the user: {}",
        refused.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == before,
        "nothing was changed"
    );

    // Where the server serves EndpointSlices, the plugin never reads the deprecated Endpoints
    // (from 1.33 each read draws a warning): its requests in the audit log.
    if env.serves_endpoint_slices()? {
        let audit =
            std::fs::read_to_string(kubeconfig.with_file_name("audit.log")).unwrap_or_default();
        let ours: Vec<Value> = audit
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                e["objectRef"]["namespace"] == ns.as_str()
                    && e["userAgent"]
                        .as_str()
                        .is_some_and(|a| a.starts_with("kubectl-rotate/"))
            })
            .collect();
        let resources: Vec<&str> = ours
            .iter()
            .filter_map(|e| e["objectRef"]["resource"].as_str())
            .collect();
        ensure!(
            resources.contains(&"endpointslices") && !resources.contains(&"endpoints"),
            "the plugin read the Service's EndpointSlices, not its Endpoints: {resources:?}"
        );
    }
    Ok(())
}
