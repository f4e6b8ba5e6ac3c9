//! `kubectl rotate secret` end to end: every value source, exactly the consumers restarted,
//! the backup, the guard against concurrent edits, dry runs, refusals, RBAC, crash-loop
//! detection, and no value in any output.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use base64::Engine;
use serde_json::Value;

use crate::TestFn;
use crate::support::{Run, TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "the_openai_preset_says_what_to_do_before_it_asks_for_the_key",
            the_openai_preset_says_what_to_do_before_it_asks_for_the_key,
        ),
        (
            "a_dry_run_in_json_is_the_plan_the_text_preview_shows",
            a_dry_run_in_json_is_the_plan_the_text_preview_shows,
        ),
        (
            "rotation_with_a_generated_password_changes_only_that_key_and_restarts_its_consumers",
            rotation_with_a_generated_password_changes_only_that_key_and_restarts_its_consumers,
        ),
        (
            "rotation_from_stdin_strips_one_newline",
            rotation_from_stdin_strips_one_newline,
        ),
        (
            "rotation_from_a_file_keeps_the_bytes",
            rotation_from_a_file_keeps_the_bytes,
        ),
        (
            "rotation_from_an_environment_variable",
            rotation_from_an_environment_variable,
        ),
        (
            "rotation_with_a_hidden_prompt_on_a_terminal",
            rotation_with_a_hidden_prompt_on_a_terminal,
        ),
        (
            "a_concurrent_change_between_plan_and_apply_is_not_overwritten",
            a_concurrent_change_between_plan_and_apply_is_not_overwritten,
        ),
        (
            "dry_run_client_and_server_write_nothing",
            dry_run_client_and_server_write_nothing,
        ),
        (
            "refusals_name_the_object_and_write_nothing",
            refusals_name_the_object_and_write_nothing,
        ),
        (
            "a_helm_managed_secret_needs_force",
            a_helm_managed_secret_needs_force,
        ),
        (
            "secrets_that_gitops_tools_or_vault_write_back_are_refused_naming_where_to_change_them",
            secrets_that_gitops_tools_or_vault_write_back_are_refused_naming_where_to_change_them,
        ),
        (
            "without_a_terminal_or_yes_it_refuses_at_once",
            without_a_terminal_or_yes_it_refuses_at_once,
        ),
        (
            "a_crash_looping_rollout_fails_within_seconds",
            a_crash_looping_rollout_fails_within_seconds,
        ),
        (
            "a_user_who_cannot_patch_deployments_is_refused_before_any_write",
            a_user_who_cannot_patch_deployments_is_refused_before_any_write,
        ),
        (
            "json_output_is_the_documented_report_and_stdout_stays_clean",
            json_output_is_the_documented_report_and_stdout_stays_clean,
        ),
        (
            "restart_none_and_an_explicit_list_are_honoured",
            restart_none_and_an_explicit_list_are_honoured,
        ),
        (
            "last_applied_configuration_holding_the_old_value_is_removed",
            last_applied_configuration_holding_the_old_value_is_removed,
        ),
    ]
}

/// A snapshot of what a rotation may change, to compare before and after.
struct Snapshot {
    values: BTreeMap<String, Vec<u8>>,
    resource_version: String,
    restarted_at: BTreeMap<String, Option<String>>,
    backups: usize,
}

fn snapshot(env: &TestEnv) -> Result<Snapshot> {
    let secret = env.get_json("secret", "app-secrets")?;
    let mut restarted_at = BTreeMap::new();
    for name in ["api", "worker", "frontend"] {
        let d = env.get_json("deployment", name)?;
        let at =
            d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
                .as_str()
                .map(str::to_string);
        restarted_at.insert(name.to_string(), at);
    }
    Ok(Snapshot {
        values: env.secret_values("app-secrets")?,
        resource_version: secret["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        restarted_at,
        backups: env.backups_of("app-secrets")?.len(),
    })
}

/// Fails unless nothing changed between two snapshots.
fn unchanged(before: &Snapshot, after: &Snapshot) -> Result<()> {
    ensure!(before.values == after.values, "the Secret's values changed");
    ensure!(
        before.resource_version == after.resource_version,
        "the Secret was written"
    );
    ensure!(
        before.restarted_at == after.restarted_at,
        "a workload was restarted"
    );
    ensure!(before.backups == after.backups, "a backup was created");
    Ok(())
}

/// Checks a successful rotation of `key`: only it changed, to `expected` if given; the backup
/// holds the old value; exactly `restarted` were restarted and are rolled out; no value leaked.
fn check_rotated(
    env: &TestEnv,
    run: &Run,
    before: &Snapshot,
    key: &str,
    expected: Option<&[u8]>,
    restarted: &[&str],
) -> Result<()> {
    run.success()?;
    let after = snapshot(env)?;
    for (k, v) in &before.values {
        if k == key {
            ensure!(after.values[k] != *v, "{key} did not change");
        } else {
            ensure!(
                after.values[k] == *v,
                "{k} changed although only {key} was rotated"
            );
        }
    }
    if let Some(expected) = expected {
        ensure!(
            after.values[key] == expected,
            "{key} does not hold the new value"
        );
    }
    let backups = env.backups_of("app-secrets")?;
    ensure!(
        backups.len() == before.backups + 1,
        "expected one new backup, have {}",
        backups.len()
    );
    let newest = backups.last().context("a backup")?;
    let saved = base64::engine::general_purpose::STANDARD
        .decode(newest["data"][key].as_str().unwrap_or_default())?;
    ensure!(
        saved == before.values[key],
        "the backup does not hold the old value of {key}"
    );
    for name in ["api", "worker", "frontend"] {
        let was = &before.restarted_at[name];
        let now = &after.restarted_at[name];
        if restarted.contains(&name) {
            ensure!(now.is_some() && now != was, "{name} was not restarted");
            let d = env.get_json("deployment", name)?;
            let (spec, status) = (&d["spec"], &d["status"]);
            ensure!(
                status["updatedReplicas"] == spec["replicas"]
                    && status["availableReplicas"] == spec["replicas"]
                    && status["replicas"] == spec["replicas"],
                "{name} was not rolled out when the command returned: {status}"
            );
        } else {
            ensure!(
                now == was,
                "{name} was restarted although it does not use {key}"
            );
        }
    }
    let mut all = before.values.clone();
    all.insert(format!("{key} (new)"), after.values[key].clone());
    assert_no_values(run, &all)
}

fn rotation_with_a_generated_password_changes_only_that_key_and_restarts_its_consumers(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "generate")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?;
    check_rotated(
        &env,
        &run,
        &before,
        "redis-password",
        None,
        &["api", "worker"],
    )?;
    let value = &env.secret_values("app-secrets")?["redis-password"];
    ensure!(
        base64::engine::general_purpose::STANDARD
            .decode(value)?
            .len()
            == 32,
        "a password is 32 random bytes in base64"
    );
    ensure!(
        run.stdout.contains("Rotated redis-password"),
        "{}",
        run.stdout
    );
    let events = env.kubectl(&[
        "get",
        "events",
        "-n",
        &env.namespace,
        "--field-selector",
        "reason=SecretRotated",
        "-o",
        "json",
    ])?;
    let events: Value = serde_json::from_str(&events.stdout)?;
    ensure!(
        events["items"].as_array().is_some_and(|i| i.len() == 1),
        "one SecretRotated event: {events}"
    );
    ensure!(
        events["items"][0]["involvedObject"]["name"] == "app-secrets",
        "{events}"
    );
    Ok(())
}

fn rotation_from_stdin_strips_one_newline(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "stdin")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let new = b"sk-proj-fromstdin0123456789abcdefghijklmnop";
    let mut input = new.to_vec();
    input.push(b'\n');
    let run = env.kubectl_with(
        &[
            "rotate",
            "secret",
            "app-secrets",
            "openai-api-key",
            "--from-stdin",
            "-y",
            "-n",
            &env.namespace,
        ],
        &[],
        Some(&input),
    )?;
    check_rotated(
        &env,
        &run,
        &before,
        "openai-api-key",
        Some(new),
        &["api", "worker"],
    )
}

fn rotation_from_a_file_keeps_the_bytes(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "file")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("new-key");
    let new = b"file-password-with-symbols+/=";
    std::fs::write(&path, new)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "postgres-password",
        "--from-file",
        path.to_str().unwrap_or_default(),
        "-y",
    ])?;
    check_rotated(
        &env,
        &run,
        &before,
        "postgres-password",
        Some(new),
        &["api", "worker"],
    )
}

fn rotation_from_an_environment_variable(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "env")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let new = "sk-proj-fromenvironment0123456789abcdefghij";
    let run = env.kubectl_with(
        &[
            "rotate",
            "secret",
            "app-secrets",
            "openai-api-key",
            "--from-env",
            "NEW_OPENAI_KEY",
            "-y",
            "-n",
            &env.namespace,
        ],
        &[("NEW_OPENAI_KEY", new)],
        None,
    )?;
    check_rotated(
        &env,
        &run,
        &before,
        "openai-api-key",
        Some(new.as_bytes()),
        &["api", "worker"],
    )
}

fn rotation_with_a_hidden_prompt_on_a_terminal(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "prompt")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let new = "sk-proj-typedatprompt0123456789abcdefghijk";
    // A real pseudo-terminal (util-linux `script`), answered the way a person types: the value,
    // the value again, then `y` at the confirmation.
    let command = format!(
        "kubectl rotate secret app-secrets openai-api-key --prompt -n {}",
        env.namespace
    );
    let typed = format!("{new}\n{new}\ny\n");
    let run = env.run_with_terminal(&command, typed.as_bytes())?;
    ensure!(
        run.code == Some(0),
        "prompt run failed: {:?}\n{}",
        run.code,
        run.stdout
    );
    ensure!(
        env.secret_values("app-secrets")?["openai-api-key"] == new.as_bytes(),
        "the prompted value was not stored"
    );
    ensure!(!run.stdout.contains(new), "the prompt echoed the value");
    let after = snapshot(&env)?;
    ensure!(
        after.restarted_at["api"] != before.restarted_at["api"],
        "api was not restarted"
    );
    Ok(())
}

fn a_concurrent_change_between_plan_and_apply_is_not_overwritten(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "race")?;
    env.seed_demo_app()?;
    let barrier = tempfile::tempdir()?;
    let barrier_path = barrier.path().to_str().unwrap_or_default().to_string();
    let concurrent = b"changed-by-someone-else-meanwhile";
    std::thread::scope(|scope| -> Result<()> {
        let rotation = scope.spawn(|| {
            env.kubectl_with(
                &[
                    "rotate",
                    "secret",
                    "app-secrets",
                    "redis-password",
                    "--generate",
                    "password",
                    "-y",
                    "-n",
                    &env.namespace,
                ],
                &[
                    ("KUBECTL_ROTATE_TEST_PAUSE_AT", "before:patch"),
                    ("KUBECTL_ROTATE_TEST_PAUSE_DIR", &barrier_path),
                ],
                None,
            )
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !barrier.path().join("paused").exists() {
            ensure!(
                Instant::now() < deadline,
                "the rotation never reached the apply step"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // Someone else writes the key while the rotation waits between plan and apply.
        let encoded = base64::engine::general_purpose::STANDARD.encode(concurrent);
        let patch = format!(r#"{{"data":{{"redis-password":"{encoded}"}}}}"#);
        env.merge_patch_secret("app-secrets", &patch)?;
        std::fs::write(barrier.path().join("resume"), b"")?;
        let run = rotation.join().expect("rotation thread")?;
        run.failure(1)?;
        ensure!(
            run.stderr.contains(
                "changed since it was read; nothing was overwritten; run again to re-plan"
            ),
            "{}",
            run.stderr
        );
        ensure!(
            env.secret_values("app-secrets")?["redis-password"] == concurrent,
            "the concurrent change was overwritten"
        );
        Ok(())
    })
}

fn dry_run_client_and_server_write_nothing(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "dryrun")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "encryption-key",
        "--force",
        "--generate",
        "fernet",
        "--dry-run=client",
    ])?;
    run.success()?;
    ensure!(
        run.stdout.contains("*** (before)") && run.stdout.contains("*** (after)"),
        "{}",
        run.stdout
    );
    ensure!(
        run.stdout.contains("Dry run (client): nothing was sent"),
        "{}",
        run.stdout
    );
    unchanged(&before, &snapshot(&env)?)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "encryption-key",
        "--force",
        "--generate",
        "fernet",
        "--dry-run=server",
    ])?;
    run.success()?;
    ensure!(
        run.stdout
            .contains("Dry run (server): the API server accepted"),
        "{}",
        run.stdout
    );
    unchanged(&before, &snapshot(&env)?)?;
    assert_no_values(&run, &before.values)
}

fn refusals_name_the_object_and_write_nothing(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "refuse")?;
    env.seed_demo_app()?;
    let ns = env.namespace.clone();
    let before = snapshot(&env)?;
    // (arguments, stdin, expected error)
    type Case<'a> = (Vec<&'a str>, Option<Vec<u8>>, String);
    let cases: Vec<Case> = vec![
        (
            vec!["secret", "nope", "k", "--generate", "hex", "-y"],
            None,
            format!("Secret \"nope\" not found in namespace \"{ns}\""),
        ),
        (
            vec![
                "secret",
                "app-secrets",
                "stripe-key",
                "--generate",
                "hex",
                "-y",
            ],
            None,
            format!(
                "key \"stripe-key\" not found in Secret {ns}/app-secrets (keys: encryption-key, openai-api-key, postgres-password, redis-password); check the name, or pass --create-key"
            ),
        ),
        (
            vec![
                "secret",
                "app-secrets",
                "redis-password",
                "--from-stdin",
                "-y",
            ],
            Some(before.values["redis-password"].clone()),
            format!(
                "the new value of key \"redis-password\" in Secret {ns}/app-secrets is the same as the current one"
            ),
        ),
    ];
    for (args, stdin, expected) in cases {
        let mut all = args.clone();
        all.insert(0, "rotate");
        all.extend(["-n", &ns]);
        let run = env.kubectl_with(&all, &[], stdin.as_deref())?;
        run.failure(1)?;
        ensure!(
            run.stderr.contains(&expected),
            "expected {expected:?} in:\n{}",
            run.stderr
        );
        assert_no_values(&run, &before.values)?;
    }
    unchanged(&before, &snapshot(&env)?)?;

    let immutable = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"frozen","namespace":"{ns}"}},"immutable":true,"data":{{"k":"dmFsdWUtb25l"}}}}"#
    );
    env.kubectl_with(&["create", "-f", "-"], &[], Some(immutable.as_bytes()))?
        .success()?;
    let run = env.rotate(&["secret", "frozen", "k", "--generate", "hex", "-y"])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains(&format!("Secret {ns}/frozen is immutable")),
        "{}",
        run.stderr
    );

    // --create-key adds a key that does not exist yet.
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "stripe-key",
        "--generate",
        "token",
        "--create-key",
        "-y",
        "--restart",
        "none",
    ])?;
    run.success()?;
    ensure!(
        env.secret_values("app-secrets")?["stripe-key"].len() == 40,
        "the new key holds a 40-character token"
    );
    Ok(())
}

fn a_helm_managed_secret_needs_force(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "helm")?;
    let ns = env.namespace.clone();
    let managed = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"chart-secret","namespace":"{ns}","labels":{{"app.kubernetes.io/managed-by":"Helm"}}}},"data":{{"password":"b2xkLXZhbHVlLTEyMw=="}}}}"#
    );
    env.kubectl_with(&["create", "-f", "-"], &[], Some(managed.as_bytes()))?
        .success()?;
    let run = env.rotate(&[
        "secret",
        "chart-secret",
        "password",
        "--generate",
        "password",
        "-y",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains(&format!("Secret {ns}/chart-secret is managed by Helm"))
            && run.stderr.contains("--force"),
        "{}",
        run.stderr
    );
    let run = env.rotate(&[
        "secret",
        "chart-secret",
        "password",
        "--generate",
        "password",
        "-y",
        "--force",
    ])?;
    run.success()?;
    ensure!(
        run.stdout
            .contains("managed by Helm; it will likely revert this change"),
        "{}",
        run.stdout
    );
    Ok(())
}

fn without_a_terminal_or_yes_it_refuses_at_once(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "noyes")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains("without confirmation: there is no terminal to ask on")
            && run.stderr.contains("-y/--yes"),
        "{}",
        run.stderr
    );
    ensure!(
        run.elapsed < Duration::from_secs(10),
        "it must not wait for an answer: {:?}",
        run.elapsed
    );
    unchanged(&before, &snapshot(&env)?)
}

fn a_crash_looping_rollout_fails_within_seconds(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "crash")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    // api and worker validate that the key starts with sk-; a token does not.
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "openai-api-key",
        "--generate",
        "token",
        "-y",
        "--timeout",
        "2m",
    ])?;
    run.failure(1)?;
    ensure!(
        run.elapsed < Duration::from_secs(20),
        "a crash loop must fail fast, not at the 2m timeout: {:?}",
        run.elapsed
    );
    for (workload, container) in [
        ("deployment/api", "container api"),
        ("deployment/worker", "container worker"),
    ] {
        let line = run
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{workload}: new pod")))
            .unwrap_or_default();
        ensure!(
            line.contains(container) && line.contains("CrashLoopBackOff"),
            "{workload}: {}",
            run.stderr
        );
    }
    // The default is to roll back automatically (tests/e2e/backup.rs covers it in depth).
    ensure!(
        run.stderr.contains("holds the old value again"),
        "{}",
        run.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == before.values,
        "rolled back to the old value"
    );
    assert_no_values(&run, &before.values)
}

fn a_user_who_cannot_patch_deployments_is_refused_before_any_write(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbac")?;
    env.seed_demo_app()?;
    let ns = env.namespace.clone();
    let rbac = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
          {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{{"name":"secret-editor","namespace":"{ns}"}},
            "rules":[{{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list","patch","create"]}},
                     {{"apiGroups":["apps"],"resources":["deployments","statefulsets","daemonsets"],"verbs":["get","list","watch"]}},
                     {{"apiGroups":["batch"],"resources":["cronjobs"],"verbs":["list"]}},
                     {{"apiGroups":[""],"resources":["pods"],"verbs":["list","watch"]}}]}},
          {{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding","metadata":{{"name":"nobody-edits-secrets","namespace":"{ns}"}},
            "roleRef":{{"apiGroup":"rbac.authorization.k8s.io","kind":"Role","name":"secret-editor"}},
            "subjects":[{{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"nobody"}}]}}]}}"#
    );
    env.kubectl_with(&["create", "-f", "-"], &[], Some(rbac.as_bytes()))?
        .success()?;
    let before = snapshot(&env)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
        "--context",
        "nobody",
    ])?;
    run.failure(1)?;
    for missing in [
        format!("patch deployments/api in namespace {ns} (to restart it)"),
        format!("patch deployments/worker in namespace {ns} (to restart it)"),
    ] {
        ensure!(
            run.stderr.contains(&missing),
            "missing {missing:?} in:\n{}",
            run.stderr
        );
    }
    ensure!(run.stderr.contains("nothing was changed"), "{}", run.stderr);
    ensure!(
        !run.stderr.contains("patch secrets"),
        "patching Secrets is allowed: {}",
        run.stderr
    );
    unchanged(&before, &snapshot(&env)?)
}

fn json_output_is_the_documented_report_and_stdout_stays_clean(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "json")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "openai-api-key",
        "--generate",
        "token",
        "--length",
        "48",
        "-y",
        "-o",
        "json",
        "--restart",
        "deployment/frontend",
    ])?;
    run.success()?;
    let report: Value = serde_json::from_str(&run.stdout)
        .with_context(|| format!("stdout is one JSON document:\n{}", run.stdout))?;
    ensure!(
        report["apiVersion"] == "kubectl-rotate.io/v1alpha1"
            && report["kind"] == "ChangeReport"
            && report["action"] == "rotate",
        "{report}"
    );
    ensure!(
        report["namespace"] == env.namespace.as_str()
            && report["secret"] == "app-secrets"
            && report["succeeded"] == true,
        "{report}"
    );
    ensure!(
        report["keys"][0]["name"] == "openai-api-key" && report["keys"][0]["after"]["bytes"] == 48,
        "{report}"
    );
    ensure!(
        report["keys"][0]["before"]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.len() == 8),
        "{report}"
    );
    ensure!(
        report["backup"]
            .as_str()
            .is_some_and(|b| b.starts_with("app-secrets-backup-")),
        "{report}"
    );
    ensure!(
        report["dryRun"] == "none" && report["durationSeconds"].as_f64().is_some(),
        "{report}"
    );
    let outcomes: Vec<String> = report["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|w| {
            format!(
                "{}/{}={}",
                w["kind"].as_str().unwrap_or(""),
                w["name"].as_str().unwrap_or(""),
                w["outcome"].as_str().unwrap_or("")
            )
        })
        .collect();
    ensure!(
        outcomes
            == [
                "Deployment/frontend=rolledOut",
                "Deployment/api=notRestarted",
                "Deployment/worker=notRestarted"
            ],
        "{outcomes:?}"
    );
    ensure!(
        run.stderr.contains("*** (after)"),
        "the preview goes to stderr with -o json: {}",
        run.stderr
    );
    let mut all = before.values.clone();
    all.insert(
        "new".into(),
        env.secret_values("app-secrets")?["openai-api-key"].clone(),
    );
    assert_no_values(&run, &all)
}

fn restart_none_and_an_explicit_list_are_honoured(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "restart")?;
    env.seed_demo_app()?;
    let before = snapshot(&env)?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
        "--restart",
        "none",
    ])?;
    run.success()?;
    ensure!(
        run.stdout
            .contains("pods keep the old value until they restart"),
        "{}",
        run.stdout
    );
    let after = snapshot(&env)?;
    ensure!(
        after.restarted_at == before.restarted_at,
        "nothing may restart with --restart none"
    );
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
        "--restart",
        "deploy/worker",
    ])?;
    run.success()?;
    let last = snapshot(&env)?;
    ensure!(
        last.restarted_at["worker"] != after.restarted_at["worker"],
        "worker was named"
    );
    ensure!(
        last.restarted_at["api"] == after.restarted_at["api"],
        "api was not named"
    );
    Ok(())
}

fn last_applied_configuration_holding_the_old_value_is_removed(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "applied")?;
    let ns = env.namespace.clone();
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"applied","namespace":"{ns}"}},"stringData":{{"token":"plain-old-token-value"}}}}"#
    );
    // Client-side apply stores the manifest, value included, in the annotation.
    env.kubectl_with(&["apply", "-f", "-"], &[], Some(manifest.as_bytes()))?
        .success()?;
    let status = env.rotate(&["status", "applied"])?;
    ensure!(
        status
            .stderr
            .contains("last-applied-configuration holds its values in plain JSON"),
        "{}",
        status.stderr
    );
    let run = env.rotate(&["secret", "applied", "token", "--generate", "token", "-y"])?;
    run.success()?;
    ensure!(
        run.stdout
            .contains("kubectl.kubernetes.io/last-applied-configuration: *** (removed"),
        "{}",
        run.stdout
    );
    ensure!(
        !run.stdout.contains("plain-old-token-value")
            && !run.stderr.contains("plain-old-token-value"),
        "value leaked"
    );
    let secret = env.get_json("secret", "applied")?;
    ensure!(
        secret["metadata"]["annotations"]
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_none(),
        "{secret}"
    );
    Ok(())
}

/// Argo CD (both tracking modes), Flux (Kustomization and HelmRelease) and the Vault Secrets
/// Operator would write the old value back: each is refused, naming the tool and where the
/// value must change instead; `--force` goes on with that warning.
fn secrets_that_gitops_tools_or_vault_write_back_are_refused_naming_where_to_change_them(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "gitops")?;
    let ns = env.namespace.clone();
    let cases: [(&str, serde_json::Value, &str, &str); 5] = [
        (
            "argo-annotated",
            serde_json::json!({"annotations": {"argocd.argoproj.io/tracking-id": "web:/Secret:x/y"}}),
            "Argo CD (application web)",
            "the Git repository Argo CD syncs it from",
        ),
        (
            "argo-labelled",
            serde_json::json!({"labels": {"app.kubernetes.io/instance": "web"}}),
            "Argo CD (application web, label app.kubernetes.io/instance)",
            "the Git repository Argo CD syncs it from",
        ),
        (
            "flux-kustomized",
            serde_json::json!({"labels": {
                "kustomize.toolkit.fluxcd.io/name": "apps",
                "kustomize.toolkit.fluxcd.io/namespace": "flux-system",
            }}),
            "Flux (Kustomization flux-system/apps)",
            "the Git repository Flux applies it from",
        ),
        (
            "flux-helm",
            serde_json::json!({"labels": {
                "helm.toolkit.fluxcd.io/name": "web",
                "helm.toolkit.fluxcd.io/namespace": "flux-system",
            }}),
            "Flux (HelmRelease flux-system/web)",
            "the HelmRelease's values in the Git repository Flux applies",
        ),
        (
            "vault-synced",
            serde_json::json!({"labels": {"app.kubernetes.io/managed-by": "hashicorp-vso"}}),
            "the Vault Secrets Operator",
            "Vault",
        ),
    ];
    for (name, meta, who, source) in cases {
        let mut metadata = meta.clone();
        metadata["name"] = serde_json::json!(name);
        metadata["namespace"] = serde_json::json!(ns);
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": metadata,
            "data": {"password": "b2xkLXZhbHVlLTEyMw=="},
        });
        env.kubectl_with(
            &["create", "-f", "-"],
            &[],
            Some(secret.to_string().as_bytes()),
        )?
        .success()?;
        let before = env.secret_values(name)?;
        let args = ["secret", name, "password", "--generate", "password", "-y"];
        let run = env.rotate(&args)?;
        run.failure(1)?;
        ensure!(
            run.stderr
                .contains(&format!("Secret {ns}/{name} is managed by {who}"))
                && run
                    .stderr
                    .contains(&format!("change the value in {source} instead"))
                && run.stderr.contains("--force"),
            "{name}: {}",
            run.stderr
        );
        ensure!(
            env.secret_values(name)? == before,
            "{name}: nothing was written"
        );
        let mut forced = args.to_vec();
        forced.push("--force");
        let run = env.rotate(&forced)?;
        run.success()?;
        ensure!(
            run.stdout.contains(&format!(
                "managed by {who}; it will likely revert this change"
            )),
            "{name}: {}",
            run.stdout
        );
    }
    Ok(())
}

/// Issue 15, finding 7: `-o json` with a dry run showed no plan (`"workloads": []` while the
/// text listed two restarts), and a new key's preview named a backup "(none: only new keys)".
fn a_dry_run_in_json_is_the_plan_the_text_preview_shows(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "dryjson")?;
    env.seed_demo_app()?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "--dry-run",
        "-o",
        "json",
    ])?;
    run.success()?;
    let report: Value = serde_json::from_str(&run.stdout)?;
    ensure!(
        report["state"] == "dryRun" && report["dryRun"] == "client",
        "{report}"
    );
    let backup = report["backup"].as_str().unwrap_or_default();
    ensure!(
        backup.starts_with("app-secrets-backup-") && run.stderr.contains(backup),
        "the backup a run would make, as the preview names it: {report}"
    );
    let restarts: Vec<String> = report["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|w| w["outcome"] == "toRestart")
        .map(|w| {
            format!(
                "{}/{}",
                w["kind"].as_str().unwrap_or_default(),
                w["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    ensure!(
        restarts == ["Deployment/api", "Deployment/worker"],
        "the workloads to restart: {restarts:?}"
    );
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["name"].as_str().unwrap_or_default())
        .collect();
    ensure!(
        steps == ["backup", "patch", "restart", "watch"],
        "steps: {steps:?}"
    );
    ensure!(
        report["steps"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|s| s["status"] == "pending"),
        "every step is pending: {report}"
    );
    ensure!(
        env.backups_of("app-secrets")?.is_empty(),
        "nothing was written"
    );

    let new_key = env.rotate(&[
        "secret",
        "app-secrets",
        "session-key",
        "--generate",
        "token",
        "--create-key",
        "--dry-run",
    ])?;
    new_key.success()?;
    ensure!(
        new_key
            .stdout
            .contains("Backup: no backup needed: the key is new"),
        "{}",
        new_key.stdout
    );
    Ok(())
}

/// Issue 15, finding 8: the preset's "Before: get the new API key ..." was printed in the
/// preview, after the key had been typed.
fn the_openai_preset_says_what_to_do_before_it_asks_for_the_key(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "before")?;
    env.seed_demo_app()?;
    let new = "sk-proj-typedatprompt0123456789abcdefghijk";
    let command = format!("kubectl rotate openai -n {}", env.namespace);
    let typed = format!("{new}\n{new}\ny\n");
    let run = env.run_with_terminal(&command, typed.as_bytes())?;
    ensure!(run.code == Some(0), "{:?}\n{}", run.code, run.stdout);
    let before = run
        .stdout
        .find("Before: Get the new API key")
        .context("the Before line")?;
    let prompt = run
        .stdout
        .find("New value for openai-api-key")
        .context("the prompt")?;
    ensure!(before < prompt, "Before comes first:\n{}", run.stdout);
    ensure!(
        env.secret_values("app-secrets")?["openai-api-key"] == new.as_bytes(),
        "the typed key was stored"
    );
    Ok(())
}
