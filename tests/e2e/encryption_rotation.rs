//! `kubectl rotate encryption-key` end to end (issue 13): the runbook's encryption-key
//! procedure against the demo's real PostgreSQL 15 and the real app (`api` and `worker` of
//! demo/app.yaml, which decrypt every tenant config at start and crash-loop on a token their
//! key cannot read). Nothing is mocked: the rows are real Fernet tokens, the migration is the
//! server's transaction, the dump is the server's `pg_dump` run in its pod through the API
//! server, and the kill points are real SIGKILLs of the plugin at the engine's step boundaries.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result, ensure};
use fernet::Fernet;

use crate::TestFn;
use crate::support::{Pause, TestEnv};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "encryption_key_preset_migrates_every_row_backs_up_key_and_database_and_the_app_serves",
            encryption_key_preset_migrates_every_row_backs_up_key_and_database_and_the_app_serves,
        ),
        (
            "encryption_key_keyring_mode_moves_every_row_while_the_consumers_keep_serving",
            encryption_key_keyring_mode_moves_every_row_while_the_consumers_keep_serving,
        ),
        (
            "encryption_key_keyring_run_killed_in_its_first_phase_is_resumed",
            encryption_key_keyring_run_killed_in_its_first_phase_is_resumed,
        ),
        (
            "encryption_key_keyring_run_killed_after_the_online_migration_is_undone_in_phases",
            encryption_key_keyring_run_killed_after_the_online_migration_is_undone_in_phases,
        ),
        (
            "encryption_key_with_the_apps_own_migration_job_hands_it_the_keys_and_checks_its_work",
            encryption_key_with_the_apps_own_migration_job_hands_it_the_keys_and_checks_its_work,
        ),
        (
            "encryption_key_run_killed_while_its_migration_job_runs_is_undone_and_leaves_no_keys_secret",
            encryption_key_run_killed_while_its_migration_job_runs_is_undone_and_leaves_no_keys_secret,
        ),
        (
            "encryption_key_run_killed_after_the_scale_up_is_resumed",
            encryption_key_run_killed_after_the_scale_up_is_resumed,
        ),
        (
            "encryption_key_rotation_stops_on_a_row_that_does_not_decrypt_with_nothing_changed",
            encryption_key_rotation_stops_on_a_row_that_does_not_decrypt_with_nothing_changed,
        ),
        (
            "encryption_key_run_killed_after_the_scale_down_is_resumed",
            encryption_key_run_killed_after_the_scale_down_is_resumed,
        ),
        (
            "encryption_key_run_killed_after_the_scale_down_is_undone",
            encryption_key_run_killed_after_the_scale_down_is_undone,
        ),
        (
            "encryption_key_run_killed_after_the_migration_is_resumed",
            encryption_key_run_killed_after_the_migration_is_resumed,
        ),
        (
            "encryption_key_run_killed_after_the_migration_is_undone_by_reencrypting_back",
            encryption_key_run_killed_after_the_migration_is_undone_by_reencrypting_back,
        ),
    ]
}

/// Tenants added to the seed's 3, so that the migration reads and writes several batches.
const EXTRA: usize = 1200;
pub(crate) const ROWS: usize = EXTRA + 3;

/// The demo stack in a fresh namespace, with `EXTRA` more tenants encrypted with the Secret's
/// key, and `api` (2 replicas) and `worker` (2) serving.
pub(crate) fn start(kubeconfig: &Path, label: &str) -> Result<TestEnv> {
    let env = TestEnv::new(kubeconfig, label)?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    let key = fernet_of(&env.secret_values("app-secrets")?["encryption-key"])?;
    let values: Vec<String> = (0..EXTRA)
        .map(|i| {
            format!(
                "('bulk-{i:05}', '{}')",
                key.encrypt(format!("{{\"model\": \"gpt-4\", \"n\": {i}}}").as_bytes())
            )
        })
        .collect();
    // Through stdin: the statement is longer than one argument may be.
    psql_in(
        &env,
        "ai_agents",
        format!(
            "INSERT INTO tenant_configs (tenant_id, config) VALUES {};",
            values.join(",")
        )
        .as_bytes(),
    )?;
    env.apply_demo_stack(&["api", "worker"])?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    Ok(env)
}

/// `psql -d DATABASE` in the database's pod with `sql` on its stdin, stopping on an error.
fn psql_in(env: &TestEnv, database: &str, sql: &[u8]) -> Result<()> {
    env.kubectl_with(
        &[
            "exec",
            "-i",
            "postgres-0",
            "-n",
            &env.namespace,
            "--",
            "psql",
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
        ],
        &[],
        Some(sql),
    )?
    .success()?;
    Ok(())
}

fn fernet_of(key: &[u8]) -> Result<Fernet> {
    Fernet::new(std::str::from_utf8(key)?).context("a Fernet key")
}

/// Every token in `tenant_configs`, read with psql in the database's pod.
fn tokens(env: &TestEnv) -> Result<Vec<String>> {
    let run = env.psql("SELECT config FROM tenant_configs ORDER BY tenant_id")?;
    run.success()?;
    Ok(run.stdout.lines().map(str::to_string).collect())
}

/// Every row decrypts with `key` alone (and none with `other`).
pub(crate) fn rows_readable_with(env: &TestEnv, key: &[u8], other: &[u8]) -> Result<()> {
    let (key, other) = (fernet_of(key)?, fernet_of(other)?);
    let tokens = tokens(env)?;
    ensure!(tokens.len() == ROWS, "{} rows, not {ROWS}", tokens.len());
    let readable = tokens.iter().filter(|t| key.decrypt(t).is_ok()).count();
    let by_other = tokens.iter().filter(|t| other.decrypt(t).is_ok()).count();
    ensure!(
        readable == ROWS && by_other == 0,
        "{readable} of {ROWS} rows decrypt with the expected key, {by_other} with the other one"
    );
    Ok(())
}

pub(crate) fn replicas(env: &TestEnv, deployment: &str) -> Result<i64> {
    Ok(env.get_json("deployment", deployment)?["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1))
}

/// The recorded replica counts are back, every pod serves, and a request that decrypts a
/// tenant's config through the app succeeds.
pub(crate) fn app_back_and_serving(env: &TestEnv) -> Result<()> {
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    for name in ["api", "worker"] {
        ensure!(replicas(env, name)? == 2, "{name} is back at 2 replicas");
    }
    env.pods_logged("api", "Tenant configs decrypted")?;
    env.pods_logged("worker", "Tenant configs decrypted")?;
    let path = format!(
        "/api/v1/namespaces/{}/services/api:8000/proxy/api/v1/tenants/bulk-00042/config",
        env.namespace
    );
    let run = env.kubectl(&["get", "--raw", &path])?;
    run.success()?;
    ensure!(
        run.stdout.contains("\"n\": 42") || run.stdout.contains("\"n\":42"),
        "the app served tenant bulk-00042: {}",
        run.stdout
    );
    Ok(())
}

fn mode(path: &Path) -> Result<u32> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .permissions()
        .mode()
        & 0o777)
}

fn encryption_key_preset_migrates_every_row_backs_up_key_and_database_and_the_app_serves(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-run")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let dir = files.path().join("run");
    let dir_arg = dir.to_str().unwrap_or_default();

    // `secret` refuses the key: the rows would become unreadable.
    let refused = env.rotate(&[
        "secret",
        "app-secrets",
        "encryption-key",
        "--generate",
        "fernet",
        "-y",
    ])?;
    refused.failure(1)?;
    ensure!(
        refused.stderr.contains(
            "is the data encryption key of preset encryption-key (tenant_configs.config)"
        ) && refused.stderr.contains("kubectl rotate encryption-key -n"),
        "{}",
        refused.stderr
    );
    // Backups inside a git work tree are refused.
    let in_repo = crate::support::repo_root().join("target/ek-backups");
    let refused = env.rotate(&[
        "encryption-key",
        "-y",
        "--backup-dir",
        in_repo.to_str().unwrap_or_default(),
    ])?;
    refused.failure(1)?;
    ensure!(
        refused.stderr.contains("is inside the git work tree"),
        "{}",
        refused.stderr
    );
    ensure!(!in_repo.exists(), "nothing was written in the work tree");

    // The dry run decrypts every row with the current key and writes nothing.
    let dry = env.rotate(&["encryption-key", "--dry-run", "--backup-dir", dir_arg])?;
    dry.success()?;
    ensure!(
        dry.stdout.contains(&format!(
            "tenant_configs.config: {ROWS} rows, {ROWS} tokens of the current key"
        )) && dry.stdout.contains("scaled to 0")
            && dry.stdout.contains("Dry run (client): nothing was written"),
        "{}",
        dry.stdout
    );
    ensure!(!dir.exists(), "the dry run wrote no file");
    ensure!(
        env.secret_values("app-secrets")? == before,
        "the dry run left the Secret"
    );

    let run = env.rotate(&["encryption-key", "-y", "--backup-dir", dir_arg])?;
    run.success()?;
    let after = env.secret_values("app-secrets")?;
    let new = after["encryption-key"].clone();
    ensure!(new != old, "the Secret holds a new key");
    fernet_of(&new)?;
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)?;
    let text = format!("{}{}", run.stdout, run.stderr);
    for line in [
        "scale-down: scaled deployment/api, deployment/worker to 0; no pod left",
        &format!("reencrypt: {ROWS} rows: {ROWS} re-encrypted to the new key"),
        "scale-up: scaled deployment/api to 2, deployment/worker to 2",
        &format!("check-rows: {ROWS} rows: every token decrypts with the Secret's encryption-key"),
        "check-logs: 4 pod(s) logged a line matching \"Tenant configs decrypted\"",
    ] {
        ensure!(
            text.contains(line),
            "{line:?} is not in the output:\n{text}"
        );
    }
    crate::support::assert_no_values(&run, &before)?;
    crate::support::assert_no_values(&run, &after)?;
    ensure!(
        text.contains("and none a decryption error"),
        "the new pods' logs were checked for decryption errors:\n{text}"
    );
    // Restoring the old key alone from its backup is refused: the rows are the new key's.
    let refused = env.rotate(&["rollback", "app-secrets", "encryption-key", "-y"])?;
    refused.failure(1)?;
    ensure!(
        refused.stderr.contains("undo the run itself")
            && refused.stderr.contains("nothing was changed"),
        "{}",
        refused.stderr
    );

    // The key file: the old key's bytes, 0600, in a 0700 directory.
    let key_file = dir.join("encryption-key-backup.txt");
    ensure!(
        std::fs::read(&key_file)? == old,
        "the key file holds the old key"
    );
    ensure!(mode(&key_file)? == 0o600, "the key file is 0600");
    ensure!(mode(&dir)? == 0o700, "the directory is 0700");
    // The dump: complete, 0600, and it restores into an empty database, where every row is
    // the old key's.
    let dump = dir.join("ai_agents.sql");
    ensure!(mode(&dump)? == 0o600, "the dump is 0600");
    let sql = std::fs::read(&dump)?;
    ensure!(
        String::from_utf8_lossy(&sql).contains("-- PostgreSQL database dump complete"),
        "the dump is complete"
    );
    env.psql("CREATE DATABASE restored")?.success()?;
    psql_in(&env, "restored", &sql)?;
    let restored = env.kubectl(&[
        "exec",
        "postgres-0",
        "-n",
        &env.namespace,
        "--",
        "psql",
        "-U",
        "postgres",
        "-d",
        "restored",
        "-tAc",
        "SELECT config FROM tenant_configs",
    ])?;
    restored.success()?;
    let old_key = fernet_of(&old)?;
    let tokens: Vec<&str> = restored.stdout.lines().collect();
    ensure!(
        tokens.len() == ROWS && tokens.iter().all(|t| old_key.decrypt(t).is_ok()),
        "the restored database holds the {ROWS} rows as they were ({} rows)",
        tokens.len()
    );

    // `verify` reads every row with the Secret's key.
    let verify = env.rotate(&["verify", "app-secrets", "encryption-key"])?;
    verify.success()?;
    ensure!(
        verify.stdout.contains(&format!(
            "every token of tenant_configs.config ({ROWS} rows, 0 NULL) decrypts with encryption-key"
        )),
        "{}",
        verify.stdout
    );

    // The journal records the replica counts it scaled back to.
    let journals = env.journals_of("app-secrets")?;
    let scaled = &journals[0]["steps"]
        .as_array()
        .context("steps")?
        .iter()
        .find(|s| s["step"]["type"] == "scaleDown")
        .context("a scale-down step")?["step"]["workloads"];
    ensure!(
        scaled
            .as_array()
            .is_some_and(|w| w.len() == 2 && w.iter().all(|w| w["replicas"] == 2)),
        "the journal records 2 replicas each: {scaled}"
    );

    // The Secret changed alone (--force, no restart): `verify` finds the rows unreadable.
    env.rotate(&[
        "secret",
        "app-secrets",
        "encryption-key",
        "--generate",
        "fernet",
        "--force",
        "--restart",
        "none",
        "-y",
    ])?
    .success()?;
    let verify = env.rotate(&["verify", "app-secrets", "encryption-key"])?;
    verify.failure(1)?;
    ensure!(
        verify.stdout.contains("decrypts with neither")
            && verify
                .stdout
                .contains("with encryption-key, the key the Secret holds"),
        "{}",
        verify.stdout
    );
    Ok(())
}

fn encryption_key_rotation_stops_on_a_row_that_does_not_decrypt_with_nothing_changed(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-bad")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["encryption-key"].clone();
    let stranger = Fernet::new(&Fernet::generate_key()).context("a key")?;
    let files = tempfile::tempdir()?;

    // Present before the run: the preflight names it and nothing happens at all.
    env.psql(&format!(
        "INSERT INTO tenant_configs VALUES ('stranger', '{}')",
        stranger.encrypt(b"{}")
    ))?
    .success()?;
    let dir = files.path().join("first");
    let run = env.rotate(&[
        "encryption-key",
        "-y",
        "--backup-dir",
        dir.to_str().unwrap_or_default(),
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(
            "the row of tenant_configs.config with tenant_id = \"stranger\" decrypts with neither"
        ) && run.stderr.contains("nothing was changed"),
        "{}",
        run.stderr
    );
    ensure!(!dir.exists(), "no file was written");
    ensure!(env.journals_of("app-secrets")?.is_empty(), "no run started");
    env.psql("DELETE FROM tenant_configs WHERE tenant_id = 'stranger'")?
        .success()?;

    // Written after the preflight, while the consumers are down: the migration itself stops
    // on it and its transaction changes nothing. (The app cannot start with that row either,
    // so the run is kept for a person to look at: --no-rollback; once the row is removed, the
    // undo brings the consumers back with the old key.)
    let pause = Pause::new()?;
    let dir = files.path().join("second");
    let background = env.spawn_rotate(
        &[
            "encryption-key",
            "-y",
            "--no-rollback",
            "--backup-dir",
            dir.to_str().unwrap_or_default(),
        ],
        &pause.env("before:reencrypt"),
    )?;
    pause.wait_paused(&background)?;
    ensure!(
        replicas(&env, "api")? == 0,
        "api is scaled down at the pause"
    );
    env.psql(&format!(
        "INSERT INTO tenant_configs VALUES ('stranger', '{}')",
        stranger.encrypt(b"{}")
    ))?
    .success()?;
    pause.release()?;
    let run = background.finish()?;
    run.failure(1)?;
    let text = format!("{}{}", run.stdout, run.stderr);
    ensure!(
        text.contains(
            "the row of tenant_configs.config with tenant_id = \"stranger\" decrypts with neither"
        ) && text.contains("the transaction was rolled back: nothing was changed"),
        "the failure names the row:\n{text}"
    );
    ensure!(
        env.secret_values("app-secrets")?["encryption-key"] == old,
        "the Secret keeps the old key"
    );
    env.psql("DELETE FROM tenant_configs WHERE tenant_id = 'stranger'")?
        .success()?;
    let other = Fernet::generate_key();
    rows_readable_with(&env, &old, other.as_bytes())?;
    let journal = &env.journals_of("app-secrets")?[0];
    ensure!(journal["state"] == "failed", "kept as failed: {journal}");
    let id = journal["id"].as_str().context("a run id")?;
    env.rotate(&["rollback", "app-secrets", "--run", id, "-y"])?
        .success()?;
    rows_readable_with(&env, &old, other.as_bytes())?;
    app_back_and_serving(&env)
}

/// Starts a rotation that pauses at `at`, SIGKILLs it there, and returns the run id; the
/// backups go to `dir`.
fn kill_at(env: &TestEnv, dir: &Path, at: &str) -> Result<String> {
    let journal = env.kill_rotate_at(
        &[
            "encryption-key",
            "-y",
            "--backup-dir",
            dir.to_str().unwrap_or_default(),
        ],
        at,
    )?;
    ensure!(
        replicas(env, "api")? == 0 && replicas(env, "worker")? == 0,
        "scaled down"
    );
    journal["id"]
        .as_str()
        .map(str::to_string)
        .context("a run id")
}

fn encryption_key_run_killed_after_the_scale_down_is_resumed(kubeconfig: &Path) -> Result<()> {
    let env = start(kubeconfig, "ek-kill-down-resume")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    kill_at(&env, files.path(), "before:reencrypt")?;
    rows_readable_with(&env, &old, Fernet::generate_key().as_bytes())?;
    let resume = env.rotate(&["resume", "app-secrets", "-y"])?;
    resume.success()?;
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(new != old, "the resumed run patched the new key");
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)
}

fn encryption_key_run_killed_after_the_scale_down_is_undone(kubeconfig: &Path) -> Result<()> {
    let env = start(kubeconfig, "ek-kill-down-undo")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let id = kill_at(&env, files.path(), "before:reencrypt")?;
    env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?
        .success()?;
    ensure!(
        env.secret_values("app-secrets")?["encryption-key"] == old,
        "the old key is kept"
    );
    rows_readable_with(&env, &old, Fernet::generate_key().as_bytes())?;
    app_back_and_serving(&env)
}

fn encryption_key_run_killed_after_the_migration_is_resumed(kubeconfig: &Path) -> Result<()> {
    let env = start(kubeconfig, "ek-kill-mig-resume")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    kill_at(&env, files.path(), "before:patch")?;
    // The dangerous moment: the rows are the new key's, the Secret holds the old one.
    ensure!(
        env.secret_values("app-secrets")?["encryption-key"] == old,
        "not patched yet"
    );
    let old_key = fernet_of(&old)?;
    ensure!(
        tokens(&env)?.iter().all(|t| old_key.decrypt(t).is_err()),
        "the rows moved before the kill"
    );
    env.rotate(&["resume", "app-secrets", "-y"])?.success()?;
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(new != old, "the resumed run patched the new key");
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)
}

fn encryption_key_run_killed_after_the_migration_is_undone_by_reencrypting_back(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-kill-mig-undo")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let id = kill_at(&env, files.path(), "before:patch")?;
    let undo = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
    undo.success()?;
    let text = format!("{}{}", undo.stdout, undo.stderr);
    ensure!(
        text.contains(&format!("{ROWS} re-encrypted to the old key")),
        "the undo re-encrypted the rows back:\n{text}"
    );
    ensure!(
        env.secret_values("app-secrets")?["encryption-key"] == old,
        "the old key is kept"
    );
    rows_readable_with(&env, &old, Fernet::generate_key().as_bytes())?;
    app_back_and_serving(&env)
}

fn encryption_key_keyring_mode_moves_every_row_while_the_consumers_keep_serving(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-ring")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let dir = files.path().join("run");
    let run = env.rotate(&[
        "encryption-key",
        "--strategy",
        "keyring",
        "-y",
        "--backup-dir",
        dir.to_str().unwrap_or_default(),
    ])?;
    run.success()?;
    let after = env.secret_values("app-secrets")?;
    let new = after["encryption-key"].clone();
    ensure!(new != old, "the Secret holds the new key alone");
    fernet_of(&new)?;
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)?;
    let text = format!("{}{}", run.stdout, run.stderr);
    for line in [
        "Downtime: none expected (key ring",
        "write-key: encryption-key holds the key ring new,old (the new encrypts, both decrypt)",
        &format!("reencrypt: {ROWS} rows: {ROWS} re-encrypted to the new key in batches of 1000"),
        "write-key: encryption-key holds the new encryption-key",
        "Rolled out: deployment/api, deployment/worker.",
    ] {
        ensure!(
            text.contains(line),
            "{line:?} is not in the output:\n{text}"
        );
    }
    ensure!(
        !text.contains("scale-down"),
        "nothing was scaled down:\n{text}"
    );
    crate::support::assert_no_values(&run, &before)?;
    crate::support::assert_no_values(&run, &after)?;
    ensure!(
        std::fs::read(dir.join("encryption-key-backup.txt"))? == old,
        "the key file holds the old key"
    );
    // A strategy of another kind is a usage error.
    let wrong = env.rotate(&["encryption-key", "--strategy", "overlap", "-y"])?;
    wrong.failure(2)?;
    ensure!(
        wrong.stderr.contains("scale-down or keyring"),
        "{}",
        wrong.stderr
    );
    Ok(())
}

fn encryption_key_keyring_run_killed_after_the_online_migration_is_undone_in_phases(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-ring-undo")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let journal = env.kill_rotate_at(
        &[
            "encryption-key",
            "--strategy",
            "keyring",
            "-y",
            "--backup-dir",
            files.path().to_str().unwrap_or_default(),
        ],
        "after:reencrypt",
    )?;
    let id = journal["id"].as_str().context("a run id")?;
    // The pods hold the ring, the rows are the new key's: the app serves.
    let ring = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(
        ring.ends_with(&[b",".as_slice(), &old].concat()),
        "the Secret holds new,old"
    );
    app_back_and_serving(&env)?;
    let undo = env.rotate(&["rollback", "app-secrets", "--run", id, "-y"])?;
    undo.success()?;
    let text = format!("{}{}", undo.stdout, undo.stderr);
    ensure!(
        text.contains("the key ring old,new (the old encrypts, both decrypt)")
            && text.contains(&format!("{ROWS} re-encrypted to the old key in batches")),
        "the undo went through old,new and moved the rows back:\n{text}"
    );
    ensure!(
        env.secret_values("app-secrets")?["encryption-key"] == old,
        "the old key alone is back"
    );
    rows_readable_with(&env, &old, Fernet::generate_key().as_bytes())?;
    app_back_and_serving(&env)
}

/// The app team's own migration (demo-app's `reencrypt`, row by row as such scripts are), as
/// the preset's `encryption.job`.
pub(crate) const JOB_CONFIG: &str = r#"
presets:
  encryption-key:
    encryption:
      job:
        image: kubectl-rotate.io/demo-app:dev
        args: [reencrypt]
        env:
          - {name: DATABASE_HOST, value: $(POSTGRES_SERVICE_HOST)}
          - {name: DATABASE_PORT, value: $(POSTGRES_SERVICE_PORT)}
          - name: DATABASE_USER
            valueFrom: {secretKeyRef: {name: app-secrets, key: postgres-user}}
          - name: DATABASE_PASSWORD
            valueFrom: {secretKeyRef: {name: app-secrets, key: postgres-password}}
"#;

fn encryption_key_with_the_apps_own_migration_job_hands_it_the_keys_and_checks_its_work(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-job")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["encryption-key"].clone();
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
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(new != old, "the Secret holds the new key");
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)?;
    let text = format!("{}{}", run.stdout, run.stderr);
    let id = env.journals_of("app-secrets")?[0]["id"]
        .as_str()
        .context("a run id")?
        .to_string();
    let job = format!("app-secrets-migrate-{id}");
    ensure!(
        text.contains(&format!(
            "migration-job: Job {job} completed; {ROWS} rows: {ROWS} on the new key, 0 still on the old one; \
             the temporary Secret {job}-keys is deleted"
        )),
        "{text}"
    );
    // The keys existed only for the Job's run: its temporary Secret is gone; the Job and its
    // log stay (they hold no key).
    let gone = env.kubectl(&[
        "get",
        "secret",
        &format!("{job}-keys"),
        "-n",
        &env.namespace,
    ])?;
    gone.failure(1)?;
    let log = env.kubectl(&["logs", &format!("job/{job}"), "-n", &env.namespace])?;
    log.success()?;
    ensure!(
        log.stdout
            .contains(&format!("Re-encrypted tenant configs: {ROWS}")),
        "{}",
        log.stdout
    );
    let spec = env.get_json("job", &job)?;
    let spec = spec.to_string();
    for value in [&old, &new] {
        ensure!(
            !spec.contains(String::from_utf8_lossy(value).as_ref()),
            "a key is in the Job's spec"
        );
    }
    crate::support::assert_no_values(&run, &before)?;
    Ok(())
}

fn encryption_key_keyring_run_killed_in_its_first_phase_is_resumed(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-ring-resume")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    // Killed once the Secret holds new,old and the pods rolled out, before any row moved.
    env.kill_rotate_at(
        &[
            "encryption-key",
            "--strategy",
            "keyring",
            "-y",
            "--backup-dir",
            files.path().to_str().unwrap_or_default(),
        ],
        "before:reencrypt",
    )?;
    rows_readable_with(&env, &old, Fernet::generate_key().as_bytes())?;
    app_back_and_serving(&env)?;
    env.rotate(&["resume", "app-secrets", "-y"])?.success()?;
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(new != old && fernet_of(&new).is_ok(), "the new key alone");
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)?;
    // --restart does not apply: every consumer must stop or roll out.
    let wrong = env.rotate(&["encryption-key", "--restart", "none", "-y"])?;
    wrong.failure(2)?;
    ensure!(
        wrong.stderr.contains("--restart does not apply"),
        "{}",
        wrong.stderr
    );
    Ok(())
}

fn encryption_key_run_killed_while_its_migration_job_runs_is_undone_and_leaves_no_keys_secret(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "ek-job-kill")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    let config = files.path().join("config.yaml");
    std::fs::write(&config, JOB_CONFIG)?;
    let dir = files.path().join("run");
    let pause = Pause::new()?;
    let background = env.spawn_rotate(
        &[
            "--config",
            config.to_str().unwrap_or_default(),
            "encryption-key",
            "-y",
            "--backup-dir",
            dir.to_str().unwrap_or_default(),
        ],
        &pause.env("before:migration-job"),
    )?;
    pause.wait_paused(&background)?;
    let id = env.journals_of("app-secrets")?[0]["id"]
        .as_str()
        .context("a run id")?
        .to_string();
    let keys_secret = format!("app-secrets-migrate-{id}-keys");
    pause.release()?;
    // Killed once the Job's temporary Secret with both keys exists.
    env.wait_until(
        "the migration Job's keys Secret",
        &["get", "secrets", "-n", &env.namespace, "-o", "name"],
        |out| out.contains(&keys_secret),
    )?;
    background.signal("KILL")?;
    let _ = background.finish()?;
    env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?
        .success()?;
    let left = env.kubectl(&["get", "secrets", "-n", &env.namespace, "-o", "name"])?;
    left.success()?;
    ensure!(
        !left.stdout.contains("-keys"),
        "no Secret holding both keys is left:\n{}",
        left.stdout
    );
    ensure!(
        env.secret_values("app-secrets")?["encryption-key"] == old,
        "the old key is kept"
    );
    rows_readable_with(&env, &old, Fernet::generate_key().as_bytes())?;
    app_back_and_serving(&env)
}

fn encryption_key_run_killed_after_the_scale_up_is_resumed(kubeconfig: &Path) -> Result<()> {
    let env = start(kubeconfig, "ek-kill-up")?;
    let old = env.secret_values("app-secrets")?["encryption-key"].clone();
    let files = tempfile::tempdir()?;
    env.kill_rotate_at(
        &[
            "encryption-key",
            "-y",
            "--backup-dir",
            files.path().to_str().unwrap_or_default(),
        ],
        "before:watch",
    )?;
    env.rotate(&["resume", "app-secrets", "-y"])?.success()?;
    let new = env.secret_values("app-secrets")?["encryption-key"].clone();
    ensure!(new != old, "the new key");
    rows_readable_with(&env, &new, &old)?;
    app_back_and_serving(&env)
}
