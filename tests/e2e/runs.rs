//! Runs as journaled steps, end to end: a rotation killed (SIGKILL) at every step boundary is
//! shown by `status` as unfinished, finished by `resume` or undone by `rollback --run`, and
//! ends consistent either way; Ctrl-C during the watch; a second Ctrl-C; two rotations of one
//! Secret (the lock); consumers that are unhealthy before the change; an OnDelete StatefulSet;
//! backup retention.
//!
//! The kill points come from the plugin's test-only pause hook (debug builds only), so each
//! boundary is hit deterministically; the kill itself is a real SIGKILL of the plugin process.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use base64::Engine;
use serde_json::Value;

use crate::TestFn;
use crate::support::{Pause, Run, TestEnv, assert_no_values};

macro_rules! killed {
    ($name:ident, $at:expr, $then:expr) => {
        fn $name(kubeconfig: &Path) -> Result<()> {
            killed_at(kubeconfig, $at, $then)
        }
    };
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Resume,
    Rollback,
}

killed!(
    killed_before_backup_then_resumed,
    "before:backup",
    Then::Resume
);
killed!(
    killed_before_backup_then_rolled_back,
    "before:backup",
    Then::Rollback
);
killed!(
    killed_after_backup_before_its_journal_entry_then_resumed,
    "after:backup",
    Then::Resume
);
killed!(
    killed_after_backup_before_its_journal_entry_then_rolled_back,
    "after:backup",
    Then::Rollback
);
killed!(
    killed_before_patch_then_resumed,
    "before:patch",
    Then::Resume
);
killed!(
    killed_before_patch_then_rolled_back,
    "before:patch",
    Then::Rollback
);
killed!(
    killed_after_patch_before_its_journal_entry_then_resumed,
    "after:patch",
    Then::Resume
);
killed!(
    killed_after_patch_before_its_journal_entry_then_rolled_back,
    "after:patch",
    Then::Rollback
);
killed!(
    killed_before_restart_then_resumed,
    "before:restart",
    Then::Resume
);
killed!(
    killed_before_restart_then_rolled_back,
    "before:restart",
    Then::Rollback
);
killed!(
    killed_after_restart_before_its_journal_entry_then_resumed,
    "after:restart",
    Then::Resume
);
killed!(
    killed_after_restart_before_its_journal_entry_then_rolled_back,
    "after:restart",
    Then::Rollback
);
killed!(
    killed_before_watch_then_resumed,
    "before:watch",
    Then::Resume
);
killed!(
    killed_before_watch_then_rolled_back,
    "before:watch",
    Then::Rollback
);

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "killed_before_backup_then_resumed",
            killed_before_backup_then_resumed,
        ),
        (
            "killed_before_backup_then_rolled_back",
            killed_before_backup_then_rolled_back,
        ),
        (
            "killed_after_backup_before_its_journal_entry_then_resumed",
            killed_after_backup_before_its_journal_entry_then_resumed,
        ),
        (
            "killed_after_backup_before_its_journal_entry_then_rolled_back",
            killed_after_backup_before_its_journal_entry_then_rolled_back,
        ),
        (
            "killed_during_the_automatic_undo_then_resume_finishes_the_undo",
            killed_during_the_automatic_undo_then_resume_finishes_the_undo,
        ),
        (
            "killed_before_patch_then_resumed",
            killed_before_patch_then_resumed,
        ),
        (
            "killed_before_patch_then_rolled_back",
            killed_before_patch_then_rolled_back,
        ),
        (
            "killed_after_patch_before_its_journal_entry_then_resumed",
            killed_after_patch_before_its_journal_entry_then_resumed,
        ),
        (
            "killed_after_patch_before_its_journal_entry_then_rolled_back",
            killed_after_patch_before_its_journal_entry_then_rolled_back,
        ),
        (
            "killed_before_restart_then_resumed",
            killed_before_restart_then_resumed,
        ),
        (
            "killed_before_restart_then_rolled_back",
            killed_before_restart_then_rolled_back,
        ),
        (
            "killed_after_restart_before_its_journal_entry_then_resumed",
            killed_after_restart_before_its_journal_entry_then_resumed,
        ),
        (
            "killed_after_restart_before_its_journal_entry_then_rolled_back",
            killed_after_restart_before_its_journal_entry_then_rolled_back,
        ),
        (
            "killed_before_watch_then_resumed",
            killed_before_watch_then_resumed,
        ),
        (
            "killed_before_watch_then_rolled_back",
            killed_before_watch_then_rolled_back,
        ),
        (
            "ctrl_c_during_the_watch_stops_at_the_boundary_and_resume_finishes",
            ctrl_c_during_the_watch_stops_at_the_boundary_and_resume_finishes,
        ),
        (
            "a_second_ctrl_c_exits_at_once_and_resume_checks_the_step",
            a_second_ctrl_c_exits_at_once_and_resume_checks_the_step,
        ),
        (
            "a_second_rotation_of_a_locked_secret_is_refused_at_once",
            a_second_rotation_of_a_locked_secret_is_refused_at_once,
        ),
        (
            "a_consumer_crash_looping_before_the_change_is_refused_unless_forced",
            a_consumer_crash_looping_before_the_change_is_refused_unless_forced,
        ),
        (
            "an_on_delete_statefulset_consumer_is_left_to_its_owner_and_the_rotation_succeeds",
            an_on_delete_statefulset_consumer_is_left_to_its_owner_and_the_rotation_succeeds,
        ),
        (
            "rotation_keeps_the_newest_backups",
            rotation_keeps_the_newest_backups,
        ),
        (
            "the_automatic_rollback_does_not_overwrite_a_value_someone_else_wrote",
            the_automatic_rollback_does_not_overwrite_a_value_someone_else_wrote,
        ),
        (
            "the_automatic_rollback_restarts_only_what_the_rotation_restarted",
            the_automatic_rollback_restarts_only_what_the_rotation_restarted,
        ),
        (
            "after_an_automatic_rollback_a_plain_rollback_never_restores_the_rejected_value",
            after_an_automatic_rollback_a_plain_rollback_never_restores_the_rejected_value,
        ),
        (
            "a_backup_file_from_another_namespace_is_refused",
            a_backup_file_from_another_namespace_is_refused,
        ),
        (
            "the_lock_of_a_run_that_died_on_another_machine_expires_and_resume_takes_it_over",
            the_lock_of_a_run_that_died_on_another_machine_expires_and_resume_takes_it_over,
        ),
        (
            "sigterm_during_the_watch_stops_the_run_like_ctrl_c",
            sigterm_during_the_watch_stops_the_run_like_ctrl_c,
        ),
        (
            "dry_runs_of_resume_and_rollback_of_a_killed_run_change_nothing",
            dry_runs_of_resume_and_rollback_of_a_killed_run_change_nothing,
        ),
    ]
}

/// Every Secret, Deployment and Lease of the namespace with its resourceVersion: a write to any
/// of them (even one that leaves the data alone) changes its resourceVersion.
fn resource_versions(env: &TestEnv) -> Result<Vec<(String, String)>> {
    let run = env.kubectl(&[
        "get",
        "secrets,deployments,leases",
        "-n",
        &env.namespace,
        "-o",
        "json",
    ])?;
    run.success()?;
    let list: Value = serde_json::from_str(&run.stdout)?;
    let mut versions: Vec<(String, String)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            (
                format!(
                    "{}/{}",
                    item["kind"].as_str().unwrap_or_default(),
                    item["metadata"]["name"].as_str().unwrap_or_default()
                ),
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    versions.sort();
    Ok(versions)
}

/// A dry run writes nothing: `secret --dry-run SECRET KEY` (the value-less flag, as kubectl's,
/// is `client` and does not swallow SECRET), then, on a run killed after its patch,
/// `rollback --run ID --dry-run=client` and `resume --dry-run=server` show the steps they would
/// run and leave every Secret, Deployment and Lease (the dead run's lock) as they were, the run
/// still unfinished; flags an undo would ignore are refused (exit 2).
fn dry_runs_of_resume_and_rollback_of_a_killed_run_change_nothing(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "dryrun")?;
    env.seed_demo_app()?;
    let before = resource_versions(&env)?;
    let dry = env.rotate(&[
        "secret",
        "--dry-run",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
    ])?;
    dry.success()?;
    ensure!(
        dry.stdout.contains("Dry run (client): nothing was sent"),
        "{}\n{}",
        dry.stdout,
        dry.stderr
    );
    ensure!(
        resource_versions(&env)? == before,
        "secret --dry-run changed an object"
    );

    let journal = env.kill_rotate_at(ROTATE_REDIS, "after:patch")?;
    let id = journal["id"].as_str().context("a run id")?.to_string();
    let killed = resource_versions(&env)?;
    ensure!(
        killed.iter().any(|(name, _)| name.starts_with("Lease/")),
        "the dead run's lock is among the objects compared: {killed:?}"
    );
    let undo = env.rotate(&[
        "rollback",
        "app-secrets",
        "--run",
        &id,
        "--dry-run=client",
        "-y",
    ])?;
    undo.success()?;
    let said = format!("{}{}", undo.stdout, undo.stderr);
    for expected in [
        format!("Would undo run {id}"),
        "Dry run (client): nothing was written".to_string(),
    ] {
        ensure!(said.contains(&expected), "{expected}:\n{said}");
    }
    ensure!(
        resource_versions(&env)? == killed,
        "rollback --run --dry-run=client changed an object"
    );
    let resume = env.rotate(&["resume", "app-secrets", "--dry-run=server", "-y"])?;
    resume.success()?;
    let said = format!("{}{}", resume.stdout, resume.stderr);
    for expected in [
        format!("Would finish run {id}"),
        "Dry run (server): the API server accepted".to_string(),
    ] {
        ensure!(said.contains(&expected), "{expected}:\n{said}");
    }
    ensure!(
        resource_versions(&env)? == killed,
        "resume --dry-run=server changed an object"
    );
    for flag in [&["--force"][..], &["--restart", "none"]] {
        let mut args = vec!["rollback", "app-secrets", "--run", &id, "-y"];
        args.extend_from_slice(flag);
        env.rotate(&args)?.failure(2)?;
    }
    let (journal, _) = only_journal(&env)?;
    ensure!(journal["state"] == "running", "{journal}");
    ensure!(
        resource_versions(&env)? == killed,
        "a refused rollback changed an object"
    );
    Ok(())
}

const ROTATE_REDIS: &[&str] = &[
    "secret",
    "app-secrets",
    "redis-password",
    "--generate",
    "password",
    "-y",
];

/// The one run journal of app-secrets, and its id.
fn only_journal(env: &TestEnv) -> Result<(Value, String)> {
    let journals = env.journals_of("app-secrets")?;
    ensure!(
        journals.len() == 1,
        "expected one run journal, have {}",
        journals.len()
    );
    let journal = journals[0].clone();
    let id = journal["id"].as_str().context("a run id")?.to_string();
    Ok((journal, id))
}

/// No lock is left behind.
fn no_lock(env: &TestEnv) -> Result<()> {
    let run = env.kubectl(&["get", "leases", "-n", &env.namespace, "-o", "name"])?;
    run.success()?;
    ensure!(
        !run.stdout.contains("kubectl-rotate.app-secrets"),
        "the lock is still there: {}",
        run.stdout
    );
    Ok(())
}

fn restarted_at(env: &TestEnv, deployment: &str) -> Result<Option<String>> {
    let d = env.get_json("deployment", deployment)?;
    Ok(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .map(str::to_string),
    )
}

fn killed_at(kubeconfig: &Path, at: &str, then: Then) -> Result<()> {
    let label = format!(
        "k{}{}",
        at.replace([':', '-'], ""),
        if then == Then::Resume { "r" } else { "u" }
    );
    let env = TestEnv::new(kubeconfig, &label)?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    let pause = Pause::new()?;
    let run = env.spawn_rotate(ROTATE_REDIS, &pause.env(at))?;
    pause.wait_paused(&run)?;
    run.signal("KILL")?;
    let killed = run.finish()?;
    ensure!(
        killed.code.is_none(),
        "the plugin was not killed: {killed:?}"
    );

    // status shows the unfinished run, where it stopped, and both ways out.
    let (journal, id) = only_journal(&env)?;
    ensure!(journal["state"] == "running", "{journal}");
    let status = env.rotate(&["status", "app-secrets"])?;
    status.success()?;
    let ns = env.namespace.clone();
    for expected in [
        format!("unfinished run {id}"),
        format!("kubectl rotate resume app-secrets -n {ns}"),
        format!("kubectl rotate rollback app-secrets --run {id} -n {ns}"),
    ] {
        ensure!(
            status.stdout.contains(&expected),
            "{expected}:\n{}",
            status.stdout
        );
    }
    let step = at.split(':').nth(1).unwrap_or_default();
    ensure!(
        status.stdout.contains(&format!("({step}: ")),
        "status names the step {step}:\n{}",
        status.stdout
    );
    // kubectl completes the run's id after `rollback SECRET --run`.
    let completed = env.complete(&["rollback", "app-secrets", "-n", &ns, "--run", ""])?;
    ensure!(
        crate::support::candidates(&completed).0 == [id.clone()],
        "{}",
        completed.stdout
    );
    // Nothing else may change the Secret meanwhile.
    let other = env.rotate(&[
        "secret",
        "app-secrets",
        "postgres-password",
        "--generate",
        "password",
        "-y",
    ])?;
    other.failure(1)?;
    ensure!(
        other.stderr.contains(&format!("unfinished run {id}")),
        "{}",
        other.stderr
    );

    let before_api = restarted_at(&env, "api")?;
    match then {
        Then::Resume => {
            let resumed = env.rotate(&["resume", "app-secrets", "-y"])?;
            resumed.success()?;
            let now = env.secret_values("app-secrets")?;
            for (key, value) in &original {
                if key == "redis-password" {
                    ensure!(now[key] != *value, "resume did not write the new value");
                } else {
                    ensure!(now[key] == *value, "{key} changed");
                }
            }
            let backups = env.backups_of("app-secrets")?;
            ensure!(backups.len() == 1, "one backup, have {}", backups.len());
            let saved = base64::engine::general_purpose::STANDARD.decode(
                backups[0]["data"]["redis-password"]
                    .as_str()
                    .unwrap_or_default(),
            )?;
            ensure!(
                saved == original["redis-password"],
                "the backup holds the old value"
            );
            env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
            ensure!(
                restarted_at(&env, "api")?.is_some(),
                "the consumers were restarted"
            );
            let (journal, _) = only_journal(&env)?;
            ensure!(journal["state"] == "succeeded", "{journal}");
            ensure!(
                journal["dataKeys"] == serde_json::json!(["journal.json"]),
                "a finished journal keeps no value: {journal}"
            );
            // Twice is safe.
            let again = env.rotate(&["resume", "app-secrets", "-y"])?;
            again.success()?;
            ensure!(
                again.stderr.contains("no unfinished run"),
                "{}",
                again.stderr
            );
            let mut all = original.clone();
            all.insert("new".into(), now["redis-password"].clone());
            assert_no_values(&resumed, &all)?;
            assert_no_values(&status, &all)?;
        }
        Then::Rollback => {
            let undone = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
            undone.success()?;
            ensure!(
                env.secret_values("app-secrets")? == original,
                "rollback --run restores every value"
            );
            env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
            let (journal, _) = only_journal(&env)?;
            ensure!(journal["state"] == "rolledBack", "{journal}");
            let restarted = journal["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["step"]["type"] == "restart" && s["status"] != "pending");
            let now_api = restarted_at(&env, "api")?;
            if restarted {
                ensure!(
                    now_api != before_api,
                    "the consumers the run restarted are restarted again on the old value"
                );
            } else {
                ensure!(
                    now_api == before_api,
                    "nothing restarted that the run had not"
                );
            }
            let again = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
            again.success()?;
            ensure!(
                again.stderr.contains("already finished"),
                "{}",
                again.stderr
            );
            assert_no_values(&undone, &original)?;
        }
    }
    no_lock(&env)?;
    let status = env.rotate(&["status", "app-secrets"])?;
    ensure!(
        !status.stdout.contains("unfinished run"),
        "{}",
        status.stdout
    );
    Ok(())
}

/// Waits until the run's journal says step `name` started.
fn wait_step_started(env: &TestEnv, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = env.journals_of("app-secrets")?.iter().any(|j| {
            j["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["step"]["type"] == name && s["status"] == "started")
        });
        if started {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "step {name} never started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ctrl_c_during_the_watch_stops_at_the_boundary_and_resume_finishes(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "sigint")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    // New api pods become available only a minute after they are ready: the watch lasts.
    env.kubectl(&[
        "patch",
        "deployment",
        "api",
        "-n",
        &env.namespace,
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":60}}"#,
    ])?
    .success()?;
    // Its pods are no longer "available" under the new rule either: the rotation needs --force.
    let mut forced = ROTATE_REDIS.to_vec();
    forced.push("--force");
    let run = env.spawn_rotate(&forced, &[])?;
    wait_step_started(&env, "watch")?;
    let signalled = Instant::now();
    run.signal("INT")?;
    let stopped = run.finish()?;
    stopped.failure(130)?;
    ensure!(
        signalled.elapsed() < Duration::from_secs(15),
        "Ctrl-C stopped the watch at once, not at its end"
    );
    let (journal, id) = only_journal(&env)?;
    ensure!(journal["state"] == "interrupted", "{journal}");
    for expected in [
        "interrupted by Ctrl-C (SIGINT)".to_string(),
        format!("unfinished run {id}"),
        "done    1. back up".to_string(),
        "done    2. patch".to_string(),
        "done    3. restart".to_string(),
        "started 4. watch".to_string(),
        format!("kubectl rotate resume app-secrets -n {}", env.namespace),
        format!(
            "kubectl rotate rollback app-secrets --run {id} -n {}",
            env.namespace
        ),
    ] {
        ensure!(
            stopped.stderr.contains(&expected),
            "{expected}:\n{}",
            stopped.stderr
        );
    }
    let events = env.kubectl(&[
        "get",
        "events",
        "-n",
        &env.namespace,
        "--field-selector",
        "reason=SecretRotationInterrupted",
        "-o",
        "name",
    ])?;
    ensure!(
        !events.stdout.trim().is_empty(),
        "an Event records the interruption"
    );
    no_lock(&env)?;
    // The consumers are fine once they may become available; resume watches to the end.
    env.kubectl(&[
        "patch",
        "deployment",
        "api",
        "-n",
        &env.namespace,
        "--type=merge",
        "-p",
        r#"{"spec":{"minReadySeconds":0}}"#,
    ])?
    .success()?;
    let resumed = env.rotate(&["resume", "app-secrets", "-y"])?;
    resumed.success()?;
    ensure!(
        only_journal(&env)?.0["state"] == "succeeded",
        "resume finished the run"
    );
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] != original["redis-password"],
        "the new value stays"
    );
    assert_no_values(&stopped, &original)
}

fn a_second_ctrl_c_exits_at_once_and_resume_checks_the_step(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "sigint2")?;
    env.seed_demo_app()?;
    let pause = Pause::new()?;
    // Paused after the restarts were sent, before their journal entry: the first Ctrl-C
    // waits for the step boundary, the second one does not.
    let run = env.spawn_rotate(ROTATE_REDIS, &pause.env("after:restart"))?;
    pause.wait_paused(&run)?;
    run.signal("INT")?;
    std::thread::sleep(Duration::from_millis(300));
    run.signal("INT")?;
    let stopped = run.finish()?;
    stopped.failure(130)?;
    ensure!(
        stopped.stderr.contains("interrupted again"),
        "{}",
        stopped.stderr
    );
    let (journal, _) = only_journal(&env)?;
    let restart = journal["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["step"]["type"] == "restart")
        .cloned()
        .unwrap_or_default();
    ensure!(restart["status"] == "started", "{journal}");
    let resumed = env.rotate(&["resume", "app-secrets", "-y"])?;
    resumed.success()?;
    ensure!(
        resumed.stderr.contains("restart: found done"),
        "resume read back the restart instead of sending it again:\n{}",
        resumed.stderr
    );
    ensure!(only_journal(&env)?.0["state"] == "succeeded");
    Ok(())
}

fn a_second_rotation_of_a_locked_secret_is_refused_at_once(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "lock")?;
    env.seed_demo_app()?;
    let pause = Pause::new()?;
    let first = env.spawn_rotate(ROTATE_REDIS, &pause.env("before:restart"))?;
    pause.wait_paused(&first)?;
    let (_, id) = only_journal(&env)?;
    let second = env.rotate(&[
        "secret",
        "app-secrets",
        "postgres-password",
        "--generate",
        "password",
        "-y",
    ])?;
    second.failure(1)?;
    ensure!(
        second.elapsed < Duration::from_secs(10),
        "refused at once, not after waiting: {:?}",
        second.elapsed
    );
    for expected in [
        format!(
            "Secret {}/app-secrets is locked by admin (run {id}",
            env.namespace
        ),
        format!("pid {}", first.pid()),
        " since ".to_string(),
    ] {
        ensure!(
            second.stderr.contains(&expected),
            "{expected}:\n{}",
            second.stderr
        );
    }
    pause.release()?;
    first.finish()?.success()?;
    env.rotate(&[
        "secret",
        "app-secrets",
        "postgres-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;
    no_lock(&env)
}

fn a_consumer_crash_looping_before_the_change_is_refused_unless_forced(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "unhealthy")?;
    env.seed_demo_app()?;
    let broken = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"broken"},
"spec":{"replicas":1,"selector":{"matchLabels":{"app":"broken"}},"template":{"metadata":{"labels":{"app":"broken"},
"annotations":{"fake-kubelet.kubectl-rotate.io/require":"{\"secret\":\"app-secrets\",\"key\":\"openai-api-key\",\"pattern\":\"^never$\"}"}},
"spec":{"containers":[{"name":"broken","image":"registry.k8s.io/pause:3.9","envFrom":[{"secretRef":{"name":"app-secrets"}}]}]}}}}"#;
    env.apply(broken)?;
    env.wait_until(
        "deployment/broken crash-looping",
        &[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "app=broken",
            "-o",
            "json",
        ],
        |out| out.contains("CrashLoopBackOff"),
    )?;
    let before = env.secret_values("app-secrets")?;
    let run = env.rotate(ROTATE_REDIS)?;
    run.failure(1)?;
    for expected in [
        "consumers are not healthy before the change",
        "deployment/broken:",
        "--force",
        "nothing was changed",
    ] {
        ensure!(run.stderr.contains(expected), "{expected}:\n{}", run.stderr);
    }
    ensure!(
        env.secret_values("app-secrets")? == before,
        "nothing was written"
    );
    ensure!(env.backups_of("app-secrets")?.is_empty(), "no backup");
    ensure!(env.journals_of("app-secrets")?.is_empty(), "no run journal");
    no_lock(&env)
}

fn an_on_delete_statefulset_consumer_is_left_to_its_owner_and_the_rotation_succeeds(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "ondelete")?;
    env.seed_demo_app()?;
    let db = r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"db"},
"spec":{"replicas":1,"serviceName":"db","updateStrategy":{"type":"OnDelete"},"selector":{"matchLabels":{"app":"db"}},
"template":{"metadata":{"labels":{"app":"db"}},"spec":{"containers":[{"name":"db","image":"registry.k8s.io/pause:3.9",
"envFrom":[{"secretRef":{"name":"app-secrets"}}]}]}}}}"#;
    env.apply(db)?;
    env.wait_until(
        "statefulset/db ready",
        &[
            "get",
            "statefulset",
            "db",
            "-n",
            &env.namespace,
            "-o",
            "jsonpath={.status.readyReplicas}",
        ],
        |out| out.trim() == "1",
    )?;
    let run: Run = env.rotate(ROTATE_REDIS)?;
    run.success()?;
    for expected in [
        "statefulset/db",
        "updateStrategy OnDelete",
        &format!("kubectl delete pod db-0 -n {}", env.namespace),
    ] {
        ensure!(run.stdout.contains(expected), "{expected}:\n{}", run.stdout);
    }
    let db = env.get_json("statefulset", "db")?;
    ensure!(
        db["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .is_null(),
        "an OnDelete StatefulSet is not patched"
    );
    ensure!(
        restarted_at(&env, "api")?.is_some(),
        "the other consumers are restarted"
    );
    Ok(())
}

fn rotation_keeps_the_newest_backups(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "keep")?;
    env.seed_demo_app()?;
    let mut names = Vec::new();
    for _ in 0..3 {
        let run = env.rotate(&[
            "secret",
            "app-secrets",
            "redis-password",
            "--generate",
            "password",
            "-y",
            "--restart",
            "none",
            "--keep",
            "2",
        ])?;
        run.success()?;
        let backups = env.backups_of("app-secrets")?;
        names.push(
            backups
                .last()
                .and_then(|b| b["metadata"]["name"].as_str())
                .unwrap_or_default()
                .to_string(),
        );
    }
    let left: Vec<String> = env
        .backups_of("app-secrets")?
        .iter()
        .filter_map(|b| b["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    ensure!(
        left == names[1..],
        "kept the newest two: {left:?} of {names:?}"
    );
    Ok(())
}

/// A rotation to a value the demo app rejects (its rollout crash-loops).
const ROTATE_OPENAI_BAD: &[&str] = &[
    "secret",
    "app-secrets",
    "openai-api-key",
    "--generate",
    "token",
    "-y",
];

fn the_automatic_rollback_does_not_overwrite_a_value_someone_else_wrote(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "guardundo")?;
    env.seed_demo_app()?;
    let pause = Pause::new()?;
    let run = env.spawn_rotate(ROTATE_OPENAI_BAD, &pause.env("before:restore"))?;
    pause.wait_paused(&run)?;
    // Someone fixes the key by hand while the rotation is about to restore the old one.
    let fixed = b"sk-fixed-by-hand-0123456789abcdef";
    let encoded = base64::engine::general_purpose::STANDARD.encode(fixed);
    env.merge_patch_secret(
        "app-secrets",
        &format!(r#"{{"data":{{"openai-api-key":"{encoded}"}}}}"#),
    )?;
    pause.release()?;
    let stopped = run.finish()?;
    stopped.failure(1)?;
    ensure!(
        stopped.stderr.contains(
            "no longer holds this run's value: someone else changed it; not overwriting it"
        ),
        "{}",
        stopped.stderr
    );
    ensure!(
        env.secret_values("app-secrets")?["openai-api-key"] == fixed,
        "the hand-written value stays"
    );
    let (journal, _) = only_journal(&env)?;
    ensure!(
        journal["state"] == "failed",
        "the run is left unfinished: {journal}"
    );
    no_lock(&env)
}

fn the_automatic_rollback_restarts_only_what_the_rotation_restarted(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "undorestart")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    let worker_before = restarted_at(&env, "worker")?;
    let mut args = ROTATE_OPENAI_BAD.to_vec();
    args.extend(["--restart", "deployment/api"]);
    let run = env.rotate(&args)?;
    run.failure(1)?;
    ensure!(run.stderr.contains("rolled back"), "{}", run.stderr);
    ensure!(
        env.secret_values("app-secrets")? == original,
        "the old value is back"
    );
    ensure!(
        restarted_at(&env, "worker")? == worker_before,
        "worker was not restarted by the rotation, so not by its rollback either"
    );
    let (journal, _) = only_journal(&env)?;
    let undo = journal["undo"].to_string();
    ensure!(
        undo.contains("\"api\"") && !undo.contains("\"worker\""),
        "the undo restarts api only: {undo}"
    );
    Ok(())
}

fn after_an_automatic_rollback_a_plain_rollback_never_restores_the_rejected_value(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rejected")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    env.rotate(ROTATE_OPENAI_BAD)?.failure(1)?;
    ensure!(env.secret_values("app-secrets")? == original);
    // Issue 15, finding 4: `status` does not show the failed attempt as the key's last
    // rotation; it shows it as failed, with its run id.
    let (journal, id) = only_journal(&env)?;
    ensure!(journal["state"] == "rolledBack", "{journal}");
    let status = env.rotate(&["status", "app-secrets", "-o", "json"])?;
    status.success()?;
    let report: Value = serde_json::from_str(&status.stdout)?;
    let key = report["secrets"][0]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|k| k["name"] == "openai-api-key")
        .cloned()
        .context("openai-api-key in status")?;
    ensure!(
        key["lastRotation"].is_null(),
        "the failed run is not the key's last rotation: {key}"
    );
    ensure!(
        key["lastFailedAttempt"]["id"] == id.as_str()
            && key["lastFailedAttempt"]["state"] == "rolledBack",
        "the failed attempt is shown: {key}"
    );
    let text = env.rotate(&["status", "app-secrets"])?;
    ensure!(
        text.stdout.contains(&format!(
            "last rotation of openai-api-key in Secret {}/app-secrets FAILED: run {id}",
            env.namespace
        )),
        "{}",
        text.stdout
    );
    // No backup holds the rejected value: whatever `rollback` picks, it is not that.
    for backup in env.backups_of("app-secrets")? {
        let saved = base64::engine::general_purpose::STANDARD.decode(
            backup["data"]["openai-api-key"]
                .as_str()
                .unwrap_or_default(),
        )?;
        ensure!(
            saved.is_empty() || saved == original["openai-api-key"],
            "a backup holds a value other than the original: {}",
            backup["metadata"]["name"]
        );
    }
    let run = env.rotate(&["rollback", "app-secrets", "openai-api-key", "-y"])?;
    ensure!(
        env.secret_values("app-secrets")? == original,
        "rollback kept the good value: {}",
        run.stderr
    );
    Ok(())
}

fn a_backup_file_from_another_namespace_is_refused(kubeconfig: &Path) -> Result<()> {
    let staging = TestEnv::new(kubeconfig, "stagingfile")?;
    staging.seed_demo_app()?;
    let prod = TestEnv::new(kubeconfig, "prodfile")?;
    prod.seed_demo_app()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("staging.json");
    let path = file.to_str().context("utf-8")?;
    staging
        .rotate(&["backup", "app-secrets", "--to-file", path])?
        .success()?;
    let before = prod.secret_values("app-secrets")?;
    let run = prod.rotate(&["rollback", "app-secrets", "--from-file", path, "-y"])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains(&format!("from namespace {}", staging.namespace)),
        "{}",
        run.stderr
    );
    ensure!(
        prod.secret_values("app-secrets")? == before,
        "nothing was restored"
    );
    Ok(())
}

fn the_lock_of_a_run_that_died_on_another_machine_expires_and_resume_takes_it_over(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "expiry")?;
    env.seed_demo_app()?;
    let pause = Pause::new()?;
    let run = env.spawn_rotate(ROTATE_REDIS, &pause.env("before:restart"))?;
    pause.wait_paused(&run)?;
    run.signal("KILL")?;
    run.finish()?;
    let (_, id) = only_journal(&env)?;
    // Make the dead run's lock look like another machine's, freshly renewed: this machine
    // cannot tell that process is gone, so only the lease's expiry can.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let patch = format!(
        r#"{{"metadata":{{"annotations":{{"kubectl-rotate.io/host":"another-machine"}}}},"spec":{{"renewTime":"{now}"}}}}"#
    );
    env.kubectl(&[
        "patch",
        "lease",
        "kubectl-rotate.app-secrets",
        "-n",
        &env.namespace,
        "--type=merge",
        "-p",
        &patch,
    ])?
    .success()?;
    // A new change is refused at once, naming the holder.
    let refused = env.rotate(&[
        "secret",
        "app-secrets",
        "postgres-password",
        "--generate",
        "password",
        "-y",
    ])?;
    refused.failure(1)?;
    ensure!(
        refused
            .stderr
            .contains(&format!("locked by admin (run {id}"))
            && refused.stderr.contains("on another-machine"),
        "{}",
        refused.stderr
    );
    let started = Instant::now();
    let resumed = env.rotate(&["resume", "app-secrets", "-y"])?;
    resumed.success()?;
    ensure!(
        started.elapsed() >= Duration::from_secs(8),
        "resume waited for the lease to expire: {:?}",
        started.elapsed()
    );
    for expected in [
        "waiting up to".to_string(),
        format!("Took over the lock left by run {id} (it was last renewed more than 15s ago)"),
    ] {
        ensure!(
            resumed.stderr.contains(&expected),
            "{expected}:\n{}",
            resumed.stderr
        );
    }
    ensure!(only_journal(&env)?.0["state"] == "succeeded");
    no_lock(&env)
}

fn sigterm_during_the_watch_stops_the_run_like_ctrl_c(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "sigterm")?;
    env.seed_demo_app()?;
    let pause = Pause::new()?;
    let run = env.spawn_rotate(ROTATE_REDIS, &pause.env("before:watch"))?;
    pause.wait_paused(&run)?;
    run.signal("TERM")?;
    pause.release()?;
    let stopped = run.finish()?;
    stopped.failure(130)?;
    ensure!(
        stopped.stderr.contains("interrupted by SIGTERM"),
        "{}",
        stopped.stderr
    );
    let (journal, id) = only_journal(&env)?;
    ensure!(journal["state"] == "interrupted", "{journal}");
    env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?
        .success()?;
    ensure!(only_journal(&env)?.0["state"] == "rolledBack");
    no_lock(&env)
}

fn killed_during_the_automatic_undo_then_resume_finishes_the_undo(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "killundo")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    let pause = Pause::new()?;
    // The app rejects the value, the run undoes itself, and dies after the undo's restore.
    let run = env.spawn_rotate(ROTATE_OPENAI_BAD, &pause.env("after:restore"))?;
    pause.wait_paused(&run)?;
    run.signal("KILL")?;
    run.finish()?;
    let (journal, id) = only_journal(&env)?;
    ensure!(
        journal["undoing"] == true && journal["state"] == "running",
        "{journal}"
    );
    let status = env.rotate(&["status", "app-secrets"])?;
    ensure!(
        status.stdout.contains(&format!("unfinished run {id}"))
            && status.stdout.contains("undo step 1 of 3 (restore: "),
        "{}",
        status.stdout
    );
    let resumed = env.rotate(&["resume", "app-secrets", "-y"])?;
    resumed.success()?;
    ensure!(
        resumed.stderr.contains("restore: found done"),
        "{}",
        resumed.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == original,
        "the undo finished: old values back"
    );
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    ensure!(only_journal(&env)?.0["state"] == "rolledBack");
    no_lock(&env)?;
    assert_no_values(&resumed, &original)
}
