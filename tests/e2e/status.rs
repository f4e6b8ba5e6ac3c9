//! `kubectl rotate status` end to end, and the connection flags every verb shares.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use serde_json::Value;

use crate::TestFn;
use crate::support::{TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "a_bare_pod_and_a_running_job_that_read_the_key_are_shown_and_left_with_what_to_do",
            a_bare_pod_and_a_running_job_that_read_the_key_are_shown_and_left_with_what_to_do,
        ),
        (
            "status_shows_the_demo_apps_keys_with_api_and_worker_as_consumers",
            status_shows_the_demo_apps_keys_with_api_and_worker_as_consumers,
        ),
        (
            "status_json_has_the_documented_shape",
            status_json_has_the_documented_shape,
        ),
        (
            "status_of_a_missing_secret_names_it_and_exits_1",
            status_of_a_missing_secret_names_it_and_exits_1,
        ),
        (
            "status_for_a_user_without_rights_names_the_missing_permission",
            status_for_a_user_without_rights_names_the_missing_permission,
        ),
        (
            "impersonation_with_as_is_honoured",
            impersonation_with_as_is_honoured,
        ),
        (
            "status_against_a_silent_server_fails_within_the_request_timeout",
            status_against_a_silent_server_fails_within_the_request_timeout,
        ),
        (
            "status_against_a_closed_port_says_the_server_is_unreachable",
            status_against_a_closed_port_says_the_server_is_unreachable,
        ),
        (
            "kubeconfig_flag_loads_only_that_file",
            kubeconfig_flag_loads_only_that_file,
        ),
        (
            "kubeconfig_env_list_is_merged_and_context_namespace_is_the_default",
            kubeconfig_env_list_is_merged_and_context_namespace_is_the_default,
        ),
        (
            "namespace_flag_overrides_the_contexts_namespace",
            namespace_flag_overrides_the_contexts_namespace,
        ),
        (
            "unknown_context_is_an_error_listing_the_contexts",
            unknown_context_is_an_error_listing_the_contexts,
        ),
        (
            "all_secrets_view_skips_tokens_helm_records_and_backups",
            all_secrets_view_skips_tokens_helm_records_and_backups,
        ),
        (
            "all_namespaces_adds_a_namespace_column",
            all_namespaces_adds_a_namespace_column,
        ),
    ]
}

/// The rows of the status table: (secret, key, consumers cell).
fn rows(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .skip(1)
        .map(|line| {
            line.split("   ")
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect()
}

fn status_shows_the_demo_apps_keys_with_api_and_worker_as_consumers(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "demo")?;
    env.seed_demo_app()?;
    let run = env.rotate(&["status"])?;
    run.success()?;
    assert_no_values(&run, &env.secret_values("app-secrets")?)?;
    // Like kubectl, the plugin says who it is, so audit logs tell its requests apart.
    let audit = kubeconfig.with_file_name("audit.log");
    if audit.exists() {
        let agent = format!(
            "\"userAgent\":\"kubectl-rotate/{}\"",
            env!("CARGO_PKG_VERSION")
        );
        ensure!(
            std::fs::read_to_string(&audit)?.contains(&agent),
            "no request with {agent} in the audit log"
        );
    }

    let header = run.stdout.lines().next().unwrap_or_default();
    ensure!(
        header.split_whitespace().collect::<Vec<_>>()
            == ["SECRET", "KEY", "BYTES", "LAST", "ROTATED", "CONSUMERS"],
        "header: {header}"
    );
    let rows = rows(&run.stdout);
    let keys: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    ensure!(
        keys == [
            "encryption-key",
            "openai-api-key",
            "postgres-password",
            "redis-password"
        ],
        "keys: {keys:?}\n{}",
        run.stdout
    );
    for row in &rows {
        ensure!(row[0] == "app-secrets", "{row:?}");
        ensure!(row[3] == "not recorded", "{row:?}");
        let consumers = &row[4];
        ensure!(
            consumers.contains("deployment/api (envFrom in api)"),
            "{row:?}"
        );
        ensure!(consumers.contains("deployment/worker ("), "{row:?}");
        ensure!(!consumers.contains("frontend"), "{row:?}");
    }
    let openai = rows
        .iter()
        .find(|r| r[1] == "openai-api-key")
        .expect("openai row");
    ensure!(openai[2] == "56", "sk-proj- plus 48 characters: {openai:?}");
    ensure!(
        openai[4].contains("env OPENAI_API_KEY in worker") && openai[4].contains("volume secrets"),
        "{openai:?}"
    );
    let redis = rows
        .iter()
        .find(|r| r[1] == "redis-password")
        .expect("redis row");
    ensure!(
        !redis[4].contains("env "),
        "worker reads redis-password only through the volume: {redis:?}"
    );
    Ok(())
}

fn status_json_has_the_documented_shape(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "json")?;
    env.seed_demo_app()?;
    let run = env.rotate(&["status", "app-secrets", "-o", "json"])?;
    run.success()?;
    assert_no_values(&run, &env.secret_values("app-secrets")?)?;
    ensure!(
        run.stderr.is_empty(),
        "stderr must stay empty for scripts: {}",
        run.stderr
    );
    let doc: Value = serde_json::from_str(&run.stdout)?;
    ensure!(
        doc["apiVersion"] == "kubectl-rotate.io/v1alpha1" && doc["kind"] == "StatusReport",
        "{doc}"
    );
    let secret = &doc["secrets"][0];
    ensure!(
        secret["namespace"] == env.namespace.as_str()
            && secret["name"] == "app-secrets"
            && secret["type"] == "Opaque",
        "{secret}"
    );
    ensure!(
        secret["warnings"].as_array().is_some_and(|w| w.is_empty()),
        "{secret}"
    );
    let keys = secret["keys"].as_array().expect("keys array");
    ensure!(keys.len() == 4, "{secret}");
    let openai = keys
        .iter()
        .find(|k| k["name"] == "openai-api-key")
        .expect("openai key");
    ensure!(
        openai["bytes"] == 56 && openai["lastRotation"].is_null(),
        "{openai}"
    );
    let consumers = openai["consumers"].as_array().expect("consumers");
    let names: Vec<String> = consumers
        .iter()
        .map(|c| {
            format!(
                "{}/{}",
                c["kind"].as_str().unwrap_or(""),
                c["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    ensure!(
        names == ["Deployment/api", "Deployment/worker"],
        "{names:?}"
    );
    ensure!(consumers[0]["restartable"] == true, "{openai}");
    ensure!(
        consumers[0]["usages"][0]
            == serde_json::json!({"type": "envFrom", "container": "api", "initContainer": false}),
        "{openai}"
    );
    ensure!(
        consumers[1]["usages"][0]
            == serde_json::json!({"type": "env", "container": "worker", "initContainer": false, "variable": "OPENAI_API_KEY", "key": "openai-api-key"}),
        "{openai}"
    );
    ensure!(
        consumers[1]["usages"][1] == serde_json::json!({"type": "volume", "volume": "secrets"}),
        "{openai}"
    );
    Ok(())
}

fn status_of_a_missing_secret_names_it_and_exits_1(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "missing")?;
    let run = env.rotate(&["status", "no-such-secret"])?;
    run.failure(1)?;
    let expected = format!(
        "error: Secret \"no-such-secret\" not found in namespace \"{}\"",
        env.namespace
    );
    ensure!(run.stderr.starts_with(&expected), "{}", run.stderr);
    ensure!(
        run.stderr.contains("kubectl rotate status -n"),
        "the error says what to do next: {}",
        run.stderr
    );
    ensure!(run.stdout.is_empty(), "{}", run.stdout);

    // A namespace that does not exist is named, not reported as empty.
    let missing = format!("{}-gone", env.namespace);
    let run = env.kubectl(&["rotate", "status", "-n", &missing])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .starts_with(&format!("error: namespace {missing:?} does not exist")),
        "{}",
        run.stderr
    );
    Ok(())
}

fn status_for_a_user_without_rights_names_the_missing_permission(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "forbidden")?;
    env.seed_demo_app()?;
    let run = env.rotate(&["status", "app-secrets", "--context", "nobody"])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(&format!(
            "cannot read Secret {}/app-secrets: permission denied",
            env.namespace
        )),
        "{}",
        run.stderr
    );
    ensure!(
        run.stderr
            .contains(r#"User "nobody" cannot get resource "secrets""#),
        "{}",
        run.stderr
    );
    let run = env.rotate(&["status", "--context", "nobody"])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains(r#"User "nobody" cannot list resource "secrets""#),
        "{}",
        run.stderr
    );
    Ok(())
}

fn impersonation_with_as_is_honoured(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "as")?;
    env.seed_demo_app()?;
    let run = env.rotate(&["status", "app-secrets", "--as", "somebody-else"])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains(r#"User "somebody-else" cannot get resource "secrets""#),
        "{}",
        run.stderr
    );
    // With the group that grants everything, the impersonated user may read.
    let run = env.rotate(&[
        "status",
        "app-secrets",
        "--as",
        "somebody-else",
        "--as-group",
        "system:masters",
    ])?;
    run.success()?;
    Ok(())
}

/// A kubeconfig for `server` with a throwaway token.
fn kubeconfig_for(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
         users:\n- name: u\n  user:\n    token: not-a-real-token\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n\
         current-context: ctx\n"
    )
}

fn status_against_a_silent_server_fails_within_the_request_timeout(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "silent")?;
    // A server that accepts connections and never answers: only a timeout can end the request.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("silent.kubeconfig");
    std::fs::write(&path, kubeconfig_for(&format!("https://127.0.0.1:{port}")))?;
    let run = env.kubectl(&[
        "rotate",
        "status",
        "--kubeconfig",
        path.to_str().unwrap_or_default(),
        "--request-timeout=2s",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains("did not answer within --request-timeout=2s"),
        "{}",
        run.stderr
    );
    ensure!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    Ok(())
}

fn status_against_a_closed_port_says_the_server_is_unreachable(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "closed")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // bound, then closed
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("closed.kubeconfig");
    std::fs::write(&path, kubeconfig_for(&format!("https://127.0.0.1:{port}")))?;
    let run = env.kubectl(&[
        "rotate",
        "status",
        "--kubeconfig",
        path.to_str().unwrap_or_default(),
        "--request-timeout=5s",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(&format!(
            "cannot reach the API server at https://127.0.0.1:{port}"
        )),
        "{}",
        run.stderr
    );
    ensure!(
        run.elapsed < Duration::from_secs(10),
        "took {:?}",
        run.elapsed
    );
    Ok(())
}

/// The run's kubeconfig as YAML, to derive variants from.
fn load(kubeconfig: &Path) -> Result<serde_yaml::Value> {
    Ok(serde_yaml::from_str(&std::fs::read_to_string(kubeconfig)?)?)
}

fn write(dir: &Path, name: &str, doc: &serde_yaml::Value) -> Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, serde_yaml::to_string(doc)?)?;
    Ok(path.to_string_lossy().into_owned())
}

/// Adds a context named `name` for the admin user with `namespace` as its namespace.
fn add_context(doc: &mut serde_yaml::Value, name: &str, namespace: &str) {
    let context: serde_yaml::Value = serde_yaml::from_str(&format!(
        "name: {name}\ncontext:\n  cluster: local\n  user: admin\n  namespace: {namespace}\n"
    ))
    .expect("valid yaml");
    doc["contexts"]
        .as_sequence_mut()
        .expect("contexts list")
        .push(context);
}

fn kubeconfig_flag_loads_only_that_file(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "flag")?;
    env.seed_demo_app()?;
    let dir = tempfile::tempdir()?;
    // KUBECONFIG points at a broken file; --kubeconfig must not even read it.
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "this: [is not a kubeconfig")?;
    let good = write(dir.path(), "good", &load(kubeconfig)?)?;
    let broken_var = broken.to_string_lossy().into_owned();
    let run = env.kubectl_with(
        &[
            "rotate",
            "status",
            "app-secrets",
            "-n",
            &env.namespace,
            "--kubeconfig",
            &good,
        ],
        &[("KUBECONFIG", &broken_var)],
        None,
    )?;
    run.success()?;
    ensure!(run.stdout.contains("openai-api-key"), "{}", run.stdout);
    let run = env.kubectl_with(
        &["rotate", "status", "app-secrets", "-n", &env.namespace],
        &[("KUBECONFIG", &broken_var)],
        None,
    )?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("cannot read the kubeconfig"),
        "{}",
        run.stderr
    );
    Ok(())
}

fn kubeconfig_env_list_is_merged_and_context_namespace_is_the_default(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "merged")?;
    env.seed_demo_app()?;
    let dir = tempfile::tempdir()?;
    // First file: only a context (with this test's namespace) and the current-context.
    let mut contexts_only: serde_yaml::Value =
        serde_yaml::from_str("apiVersion: v1\nkind: Config\ncontexts: []\n")?;
    add_context(&mut contexts_only, "work", &env.namespace);
    contexts_only["current-context"] = "work".into();
    // Second file: the clusters and users (and its own current-context, which must lose).
    let mut credentials = load(kubeconfig)?;
    credentials["contexts"] = serde_yaml::Value::Sequence(vec![]);
    credentials["current-context"] = "elsewhere".into();
    let first = write(dir.path(), "contexts", &contexts_only)?;
    let second = write(dir.path(), "credentials", &credentials)?;
    let list = format!("{first}:{}:{second}", dir.path().join("missing").display());
    let run = env.kubectl_with(&["rotate", "status"], &[("KUBECONFIG", &list)], None)?;
    run.success()?;
    ensure!(
        run.stdout.contains("app-secrets"),
        "the context's namespace is the default: {}",
        run.stdout
    );
    Ok(())
}

fn namespace_flag_overrides_the_contexts_namespace(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "nsflag")?;
    env.seed_demo_app()?;
    let other = TestEnv::new(kubeconfig, "nsother")?;
    let dir = tempfile::tempdir()?;
    let mut doc = load(kubeconfig)?;
    add_context(&mut doc, "pinned", &other.namespace);
    let path = write(dir.path(), "config", &doc)?;
    // The context points at the empty namespace; --context selects it.
    let run = env.kubectl(&[
        "rotate",
        "status",
        "--kubeconfig",
        &path,
        "--context",
        "pinned",
    ])?;
    run.success()?;
    ensure!(!run.stdout.contains("app-secrets"), "{}", run.stdout);
    ensure!(
        run.stderr.contains(&format!(
            "No Secrets found in namespace {}",
            other.namespace
        )),
        "{}",
        run.stderr
    );
    // -n wins over the context's namespace.
    let run = env.kubectl(&[
        "rotate",
        "status",
        "--kubeconfig",
        &path,
        "--context",
        "pinned",
        "-n",
        &env.namespace,
    ])?;
    run.success()?;
    ensure!(run.stdout.contains("app-secrets"), "{}", run.stdout);
    Ok(())
}

fn unknown_context_is_an_error_listing_the_contexts(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "noctx")?;
    let run = env.rotate(&["status", "--context", "prod-eu"])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains(r#"context "prod-eu" not found in the kubeconfig"#),
        "{}",
        run.stderr
    );
    ensure!(
        run.stderr.contains("contexts there: admin, nobody"),
        "{}",
        run.stderr
    );
    Ok(())
}

fn all_secrets_view_skips_tokens_helm_records_and_backups(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "skips")?;
    env.seed_demo_app()?;
    let extra = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
          {{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"sh.helm.release.v1.web.v1","namespace":"{ns}"}},"type":"helm.sh/release.v1","data":{{"release":"eA=="}}}},
          {{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"app-secrets-backup-1","namespace":"{ns}","labels":{{"kubectl-rotate.io/backup-of":"app-secrets"}}}},"data":{{"k":"eA=="}}}},
          {{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"bot-token","namespace":"{ns}","annotations":{{"kubernetes.io/service-account.name":"default"}}}},"type":"kubernetes.io/service-account-token"}}
        ]}}"#,
        ns = env.namespace
    );
    // The token controller deletes a token Secret whose ServiceAccount does not exist (yet).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while env
        .kubectl(&["get", "serviceaccount", "default", "-n", &env.namespace])?
        .code
        != Some(0)
    {
        ensure!(
            std::time::Instant::now() < deadline,
            "no default ServiceAccount in {}",
            env.namespace
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    env.kubectl_with(&["create", "-f", "-"], &[], Some(extra.as_bytes()))?
        .success()?;
    let listed = env.kubectl(&["get", "secrets", "-n", &env.namespace, "-o", "name"])?;
    ensure!(
        listed.stdout.contains("secret/bot-token") && listed.stdout.contains("sh.helm.release"),
        "{}",
        listed.stdout
    );
    let run = env.rotate(&["status", "-o", "json"])?;
    run.success()?;
    let doc: Value = serde_json::from_str(&run.stdout)?;
    let names: Vec<&str> = doc["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["name"].as_str())
        .collect();
    ensure!(names == ["app-secrets"], "{names:?}");
    // Named explicitly, a skipped Secret is still shown.
    env.rotate(&["status", "bot-token"])?.success()?;
    Ok(())
}

fn all_namespaces_adds_a_namespace_column(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "allns")?;
    env.seed_demo_app()?;
    let run = env.kubectl(&["rotate", "status", "-A"])?;
    run.success()?;
    ensure!(run.stdout.starts_with("NAMESPACE"), "{}", run.stdout);
    let ours = run
        .stdout
        .lines()
        .filter(|l| l.starts_with(&format!("{} ", env.namespace)))
        .count();
    ensure!(
        ours == 4,
        "four keys of app-secrets in {}: {}",
        env.namespace,
        run.stdout
    );
    Ok(())
}

/// Issue 15, finding 9: a pod without a controller and a running Job that read the key
/// (`secretKeyRef`) used to appear nowhere; they keep the old value, and after a database-side
/// change they lose access without warning.
fn a_bare_pod_and_a_running_job_that_read_the_key_are_shown_and_left_with_what_to_do(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "unseen")?;
    env.seed_demo_app()?;
    let container = serde_json::json!({
        "name": "c",
        "image": "registry.k8s.io/pause:3.9",
        "env": [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "app-secrets", "key": "redis-password"}}}],
    });
    env.apply(
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "debug"},
            "spec": {"containers": [container.clone()]},
        })
        .to_string(),
    )?;
    env.apply(
        &serde_json::json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
        })
        .to_string(),
    )?;
    env.wait_until(
        "the Job's pod to run",
        &[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "job-name=migrate",
            "-o",
            "jsonpath={.items[*].status.phase}",
        ],
        |out| out.contains("Running"),
    )?;

    let status = env.rotate(&["status", "app-secrets"])?;
    status.success()?;
    let line = status
        .stdout
        .lines()
        .find(|l| l.contains("redis-password"))
        .unwrap_or_default()
        .to_string();
    for consumer in ["pod/debug", "job/migrate"] {
        ensure!(
            line.contains(consumer),
            "status lists {consumer}:\n{}",
            status.stdout
        );
    }

    let preview = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "--dry-run",
    ])?;
    preview.success()?;
    let text = format!("{}{}", preview.stdout, preview.stderr);
    for expected in [
        "pod/debug (env REDIS_PASSWORD in c): a pod without a controller",
        "job/migrate (env REDIS_PASSWORD in c): a Job: its running pods keep the old value",
    ] {
        ensure!(
            text.contains(expected),
            "the preview says {expected:?}:\n{text}"
        );
    }

    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
        "-o",
        "json",
    ])?;
    run.success()?;
    let report: serde_json::Value = serde_json::from_str(&run.stdout)?;
    let workloads = report["workloads"].as_array().cloned().unwrap_or_default();
    for (kind, name) in [("Pod", "debug"), ("Job", "migrate")] {
        ensure!(
            workloads
                .iter()
                .any(|w| w["kind"] == kind && w["name"] == name && w["outcome"] == "notRestarted"),
            "the report lists {kind} {name} as not restarted: {}",
            run.stdout
        );
    }
    Ok(())
}
