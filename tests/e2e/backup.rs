//! `kubectl rotate backup`, `rollback`, and the automatic rollback of a failed rotation, end to
//! end.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::TestFn;
use crate::support::{TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "backups_taken_within_one_second_are_listed_in_the_order_they_were_taken",
            backups_taken_within_one_second_are_listed_in_the_order_they_were_taken,
        ),
        (
            "backups_are_created_listed_and_pruned_to_keep",
            backups_are_created_listed_and_pruned_to_keep,
        ),
        (
            "a_backup_file_is_private_never_overwritten_and_refused_inside_git",
            a_backup_file_is_private_never_overwritten_and_refused_inside_git,
        ),
        (
            "rollback_restores_byte_identical_values_and_restarts_the_consumers",
            rollback_restores_byte_identical_values_and_restarts_the_consumers,
        ),
        (
            "a_rollback_can_itself_be_rolled_back",
            a_rollback_can_itself_be_rolled_back,
        ),
        ("rollback_from_a_backup_file", rollback_from_a_backup_file),
        (
            "rollback_from_a_backup_without_the_key_is_a_clear_error",
            rollback_from_a_backup_without_the_key_is_a_clear_error,
        ),
        (
            "rollback_of_a_key_uses_the_newest_backup_that_holds_it",
            rollback_of_a_key_uses_the_newest_backup_that_holds_it,
        ),
        (
            "a_crash_looping_rotation_is_rolled_back_automatically",
            a_crash_looping_rotation_is_rolled_back_automatically,
        ),
        (
            "no_rollback_keeps_the_new_value_and_prints_the_command",
            no_rollback_keeps_the_new_value_and_prints_the_command,
        ),
    ]
}

fn backup_names(env: &TestEnv) -> Result<Vec<String>> {
    Ok(env
        .backups_of("app-secrets")?
        .iter()
        .filter_map(|b| b["metadata"]["name"].as_str().map(str::to_string))
        .collect())
}

fn restarted_at(env: &TestEnv, deployment: &str) -> Result<String> {
    let d = env.get_json("deployment", deployment)?;
    Ok(
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn backups_are_created_listed_and_pruned_to_keep(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "bkprune")?;
    env.seed_demo_app()?;
    let values = env.secret_values("app-secrets")?;
    let mut created = Vec::new();
    for _ in 0..3 {
        let run = env.rotate(&["backup", "app-secrets", "-y", "--keep", "2"])?;
        run.success()?;
        assert_no_values(&run, &values)?;
        created.push(backup_names(&env)?);
        std::thread::sleep(std::time::Duration::from_millis(1100)); // backups are named by the second
    }
    let names = backup_names(&env)?;
    ensure!(names.len() == 2, "--keep 2 keeps two: {names:?}");
    ensure!(
        !names.contains(&created[0][0]),
        "the oldest was pruned: {names:?}"
    );
    let run = env.rotate(&["backup", "app-secrets", "--list"])?;
    run.success()?;
    assert_no_values(&run, &values)?;
    ensure!(run.stdout.starts_with("BACKUP"), "{}", run.stdout);
    ensure!(
        run.stdout.lines().count() == 3,
        "header and two backups: {}",
        run.stdout
    );
    ensure!(
        run.stdout.contains("openai-api-key (sha256:"),
        "{}",
        run.stdout
    );
    let run = env.rotate(&["backup", "app-secrets", "--list", "-o", "json"])?;
    let list: Value = serde_json::from_str(&run.stdout)?;
    ensure!(
        list["kind"] == "BackupList" && list["backups"].as_array().is_some_and(|b| b.len() == 2),
        "{list}"
    );
    ensure!(
        list["backups"][0]["keys"]
            .as_object()
            .is_some_and(|k| k.len() == 4),
        "{list}"
    );
    // Backups never count as the Secret's consumers' Secrets, nor appear in status.
    let status = env.rotate(&["status", "-o", "json"])?;
    let status: Value = serde_json::from_str(&status.stdout)?;
    ensure!(
        status["secrets"].as_array().is_some_and(|s| s.len() == 1),
        "{status}"
    );

    // Without --keep, taking a backup deletes none.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let run = env.rotate(&["backup", "app-secrets", "-y"])?;
    run.success()?;
    let after = backup_names(&env)?;
    ensure!(
        after.len() == 3 && names.iter().all(|n| after.contains(n)),
        "no backup deleted without --keep: {after:?}\n{}{}",
        run.stdout,
        run.stderr
    );
    Ok(())
}

fn a_backup_file_is_private_never_overwritten_and_refused_inside_git(
    kubeconfig: &Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new(kubeconfig, "bkfile")?;
    env.seed_demo_app()?;
    let values = env.secret_values("app-secrets")?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("prod-app-secrets.json");
    let path_text = path.to_str().unwrap_or_default();
    let run = env.rotate(&["backup", "app-secrets", "--to-file", path_text])?;
    run.success()?;
    assert_no_values(&run, &values)?;
    ensure!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777 == 0o600,
        "mode 0600"
    );
    let file: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    ensure!(
        file["kind"] == "SecretBackup"
            && file["secret"] == "app-secrets"
            && file["data"].as_object().is_some_and(|d| d.len() == 4),
        "{file}"
    );

    let before = std::fs::read(&path)?;
    let run = env.rotate(&["backup", "app-secrets", "--to-file", path_text])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains("already exists; backups never overwrite a file"),
        "{}",
        run.stderr
    );
    ensure!(std::fs::read(&path)? == before, "the file was overwritten");

    std::fs::create_dir(dir.path().join(".git"))?;
    let inside = dir.path().join("in-repo.json");
    let run = env.rotate(&[
        "backup",
        "app-secrets",
        "--to-file",
        inside.to_str().unwrap_or_default(),
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr
            .contains("refusing to write a backup into the git work tree"),
        "{}",
        run.stderr
    );
    ensure!(!inside.exists(), "nothing was written inside git");

    // `-` is the one place values are printed: the user asked to pipe them somewhere.
    let run = env.rotate(&["backup", "app-secrets", "openai-api-key", "--to-file", "-"])?;
    run.success()?;
    let piped: Value = serde_json::from_str(&run.stdout)?;
    ensure!(
        piped["data"].as_object().is_some_and(|d| d.len() == 1),
        "{piped}"
    );
    Ok(())
}

fn rollback_restores_byte_identical_values_and_restarts_the_consumers(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rollback")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;
    let rotated = env.secret_values("app-secrets")?;
    let restarted = (restarted_at(&env, "api")?, restarted_at(&env, "worker")?);
    let run = env.rotate(&["rollback", "app-secrets", "redis-password", "-y"])?;
    run.success()?;
    let mut all = original.clone();
    all.insert("rotated".into(), rotated["redis-password"].clone());
    assert_no_values(&run, &all)?;
    ensure!(
        env.secret_values("app-secrets")? == original,
        "every key is byte-identical to the original"
    );
    ensure!(
        restarted_at(&env, "api")? != restarted.0 && restarted_at(&env, "worker")? != restarted.1,
        "the consumers were restarted"
    );
    env.kubectl(&[
        "rollout",
        "status",
        "deployment/api",
        "-n",
        &env.namespace,
        "--timeout=1s",
    ])?
    .success()?;
    let events = env.kubectl(&[
        "get",
        "events",
        "-n",
        &env.namespace,
        "--field-selector",
        "reason=SecretRolledBack",
        "-o",
        "name",
    ])?;
    ensure!(
        events.stdout.lines().count() == 1,
        "one SecretRolledBack event: {}",
        events.stdout
    );
    Ok(())
}

fn a_rollback_can_itself_be_rolled_back(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rollrollback")?;
    env.seed_demo_app()?;
    env.rotate(&[
        "secret",
        "app-secrets",
        "postgres-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;
    let rotated = env.secret_values("app-secrets")?;
    env.rotate(&["rollback", "app-secrets", "postgres-password", "-y"])?
        .success()?;
    ensure!(
        env.secret_values("app-secrets")? != rotated,
        "the first rollback restored the old value"
    );
    // The first rollback backed up the rotated value; the newest backup now holds it.
    env.rotate(&["rollback", "app-secrets", "postgres-password", "-y"])?
        .success()?;
    ensure!(
        env.secret_values("app-secrets")? == rotated,
        "rolling back the rollback brings the rotated value back"
    );
    Ok(())
}

fn rollback_from_a_backup_file(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbfile")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("backup.json");
    env.rotate(&[
        "backup",
        "app-secrets",
        "--to-file",
        path.to_str().unwrap_or_default(),
    ])?
    .success()?;
    env.rotate(&[
        "secret",
        "app-secrets",
        "encryption-key",
        "--force",
        "--generate",
        "fernet",
        "-y",
    ])?
    .success()?;
    // The file holds the data encryption key: restoring it alone is refused without --force.
    let refused = env.rotate(&[
        "rollback",
        "app-secrets",
        "--from-file",
        path.to_str().unwrap_or_default(),
        "-y",
    ])?;
    refused.failure(1)?;
    ensure!(
        refused
            .stderr
            .contains("is the data encryption key of preset encryption-key"),
        "{}",
        refused.stderr
    );
    let run = env.rotate(&[
        "rollback",
        "app-secrets",
        "--from-file",
        path.to_str().unwrap_or_default(),
        "--force",
        "-y",
    ])?;
    run.success()?;
    ensure!(
        run.stdout.contains("already as in the backup, left alone"),
        "{}",
        run.stdout
    );
    ensure!(
        env.secret_values("app-secrets")? == original,
        "restored from the file"
    );
    Ok(())
}

fn rollback_from_a_backup_without_the_key_is_a_clear_error(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbnokey")?;
    env.seed_demo_app()?;
    env.rotate(&["backup", "app-secrets", "openai-api-key", "-y"])?
        .success()?;
    let backup = backup_names(&env)?.pop().context("a backup")?;
    let run = env.rotate(&[
        "rollback",
        "app-secrets",
        "redis-password",
        "--to",
        &backup,
        "-y",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(&format!(
            "the backup {backup} does not hold key \"redis-password\" (it holds: openai-api-key)"
        )),
        "{}",
        run.stderr
    );
    let run = env.rotate(&["rollback", "app-secrets", "--to", "app-secrets", "-y"])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("is not a kubectl-rotate backup of"),
        "{}",
        run.stderr
    );
    Ok(())
}

fn a_crash_looping_rotation_is_rolled_back_automatically(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "autorb")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "openai-api-key",
        "--generate",
        "token",
        "-y",
        "-o",
        "json",
    ])?;
    run.failure(1)?;
    ensure!(run.stderr.contains("CrashLoopBackOff"), "{}", run.stderr);
    ensure!(
        run.stderr.contains("rolled back: Secret")
            && run.stderr.contains("holds the old value again")
            && run
                .stderr
                .contains("every restarted consumer is rolled out and ready"),
        "{}",
        run.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == original,
        "the Secret is as it was before the rotation"
    );
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    let pods = env.kubectl(&["get", "pods", "-n", &env.namespace, "-o", "json"])?;
    let pods: Value = serde_json::from_str(&pods.stdout)?;
    for pod in pods["items"].as_array().into_iter().flatten() {
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ensure!(
            ready || pod["metadata"]["deletionTimestamp"].is_string(),
            "pod {} is not ready",
            pod["metadata"]["name"]
        );
    }
    let report: Value = serde_json::from_str(&run.stdout)?;
    ensure!(
        report["succeeded"] == false
            && report["rollback"]["action"] == "roll back"
            && report["rollback"]["succeeded"] == true,
        "{report}"
    );
    assert_no_values(&run, &original)
}

fn no_rollback_keeps_the_new_value_and_prints_the_command(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "norb")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    let run = env.rotate(&[
        "secret",
        "app-secrets",
        "openai-api-key",
        "--generate",
        "token",
        "-y",
        "--no-rollback",
    ])?;
    run.failure(1)?;
    let now = env.secret_values("app-secrets")?;
    ensure!(
        now["openai-api-key"] != original["openai-api-key"],
        "--no-rollback keeps the new value"
    );
    // The run is unfinished: its journal names it, and the printed command undoes it.
    let id = run
        .stderr
        .split("kubectl rotate rollback app-secrets --run ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .context("the rollback command of the unfinished run")?
        .to_string();
    ensure!(
        run.stderr.contains(&format!(
            "kubectl rotate rollback app-secrets --run {id} -n {}",
            env.namespace
        )) && run.stderr.contains(&format!(
            "kubectl rotate resume app-secrets -n {}",
            env.namespace
        )),
        "{}",
        run.stderr
    );
    let status = env.rotate(&["status", "app-secrets"])?;
    status.success()?;
    ensure!(
        status.stdout.contains(&format!("unfinished run {id}")),
        "{}",
        status.stdout
    );
    // The printed command works.
    env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?
        .success()?;
    ensure!(
        env.secret_values("app-secrets")? == original,
        "the printed rollback restores the old value"
    );
    Ok(())
}

/// The demo's own next steps: rotate redis-password, then openai-api-key, then roll back
/// redis-password. The newest backup holds only openai-api-key; the one before holds
/// redis-password, and that is the one used.
fn rollback_of_a_key_uses_the_newest_backup_that_holds_it(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbkey")?;
    env.seed_demo_app()?;
    let original = env.secret_values("app-secrets")?;
    env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;
    std::thread::sleep(std::time::Duration::from_millis(1100)); // backups named by the second
    let key = b"sk-proj-rollbackkey0123456789abcdefghijklmn\n";
    env.rotate_with_stdin(
        &[
            "secret",
            "app-secrets",
            "openai-api-key",
            "--from-stdin",
            "-y",
        ],
        key,
    )?
    .success()?;
    let run = env.rotate(&["rollback", "app-secrets", "redis-password", "-y"])?;
    run.success()?;
    let after = env.secret_values("app-secrets")?;
    ensure!(
        after["redis-password"] == original["redis-password"],
        "redis-password is back to its value before the rotation\n{}{}",
        run.stdout,
        run.stderr
    );
    ensure!(
        after["openai-api-key"] == key[..key.len() - 1],
        "openai-api-key is left alone"
    );
    // A key no backup holds: the error names the newest backup's keys and --to.
    let run = env.rotate(&["rollback", "app-secrets", "encryption-key", "-y"])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("no backup of Secret")
            && run.stderr.contains("holds encryption-key")
            && run.stderr.contains("--to"),
        "{}",
        run.stderr
    );
    Ok(())
}

/// Issue 15, finding 1: the `backup` verb recorded its time to the second, so backups taken
/// within one second were ordered by their run id's random suffix.
fn backups_taken_within_one_second_are_listed_in_the_order_they_were_taken(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "bkorder")?;
    env.seed_demo_app()?;
    let mut taken = Vec::new();
    for _ in 0..3 {
        let run = env.rotate(&["backup", "app-secrets", "-y"])?;
        run.success()?;
        // "Backed up ... to app-secrets-backup-<run id> (read back, verified)."
        let line = run
            .stdout
            .lines()
            .find(|l| l.starts_with("Backed up"))
            .context("the backup's report line")?;
        let name = line
            .split_whitespace()
            .find(|w| w.starts_with("app-secrets-backup-"))
            .context("the backup's name")?
            .to_string();
        taken.push(name);
    }
    let list = env.rotate(&["backup", "app-secrets", "--list", "-o", "json"])?;
    list.success()?;
    let list: Value = serde_json::from_str(&list.stdout)?;
    let listed: Vec<String> = list["backups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["name"].as_str().map(str::to_string))
        .collect();
    let mut newest_first = taken.clone();
    newest_first.reverse();
    ensure!(
        listed == newest_first,
        "listed {listed:?}, taken (oldest first) {taken:?}"
    );
    for backup in list["backups"].as_array().into_iter().flatten() {
        let at = backup["createdAt"].as_str().unwrap_or_default();
        ensure!(at.contains('.'), "createdAt {at} is to the millisecond");
    }
    Ok(())
}
