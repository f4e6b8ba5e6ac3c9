//! `kubectl rotate postgres` end to end (issue 11): the role's password changes in the demo's
//! real PostgreSQL 15 and in the Secret as one journaled run, against the real app (`api` and
//! `worker` of demo/app.yaml, which log in with the Secret's user and password). Nothing is
//! mocked: the server checks every password, its log is read with `log_statement = all`, and
//! the kill points are real SIGKILLs of the plugin at the engine's step boundaries.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use kubectl_rotate::systems::postgres::{self, Credentials, Login, Server};
use kubectl_rotate::values::SecretValue;

use crate::TestFn;
use crate::support::TestEnv;

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "postgres_preset_changes_the_password_in_the_database_and_the_secret_as_one_run",
            postgres_preset_changes_the_password_in_the_database_and_the_secret_as_one_run,
        ),
        (
            "postgres_alternating_users_switch_roles_and_disable_the_old_login",
            postgres_alternating_users_switch_roles_and_disable_the_old_login,
        ),
        (
            "postgres_rotation_killed_between_alter_role_and_the_patch_is_resumed",
            postgres_rotation_killed_between_alter_role_and_the_patch_is_resumed,
        ),
        (
            "postgres_rotation_killed_between_alter_role_and_the_patch_is_undone",
            postgres_rotation_killed_between_alter_role_and_the_patch_is_undone,
        ),
        (
            "postgres_alternating_run_killed_as_it_disabled_the_old_login_is_undone_in_reverse",
            postgres_alternating_run_killed_as_it_disabled_the_old_login_is_undone_in_reverse,
        ),
        (
            "postgres_alternating_run_killed_as_it_created_the_clone_is_resumed",
            postgres_alternating_run_killed_as_it_created_the_clone_is_resumed,
        ),
        (
            "postgres_rotation_killed_before_alter_role_was_journaled_is_found_done_by_logging_in",
            postgres_rotation_killed_before_alter_role_was_journaled_is_found_done_by_logging_in,
        ),
        (
            "postgres_rotation_whose_new_pods_fail_restores_the_database_password_too",
            postgres_rotation_whose_new_pods_fail_restores_the_database_password_too,
        ),
        (
            "postgres_reached_directly_with_tls_verify_full_rotates_and_a_wrong_ca_is_refused",
            postgres_reached_directly_with_tls_verify_full_rotates_and_a_wrong_ca_is_refused,
        ),
        (
            "postgres_rotation_refuses_wrong_admin_credentials_and_an_unreachable_database_before_any_write",
            postgres_rotation_refuses_wrong_admin_credentials_and_an_unreachable_database_before_any_write,
        ),
    ]
}

/// The demo stack in a fresh namespace: PostgreSQL (logging every statement), Redis, the
/// seeded tenants, and the app (`api`, `worker`).
fn start(kubeconfig: &Path, label: &str) -> Result<TestEnv> {
    let env = TestEnv::new(kubeconfig, label)?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    for sql in [
        "ALTER SYSTEM SET log_statement = 'all'",
        "SELECT pg_reload_conf()",
    ] {
        env.psql(sql)?.success()?;
    }
    env.apply_demo_stack(&["api", "worker"])?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    Ok(env)
}

/// Whether PostgreSQL accepts `role` with `password`, through the API server.
fn login(env: &TestEnv, role: &str, password: &[u8]) -> Result<Login> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = crate::support::kube_client(&env.kubeconfig).await?;
        let password = SecretValue::new(password.to_vec());
        let credentials = Credentials {
            user: role,
            database: "ai_agents",
            password: &password,
        };
        let server = Server::Service {
            name: "postgres".into(),
            port: 5432,
        };
        postgres::check_login(&client, &env.namespace, &server, &credentials).await
    })
}

fn accepts(env: &TestEnv, role: &str, password: &[u8]) -> Result<bool> {
    Ok(login(env, role, password)? == Login::Accepted)
}

/// The Secret holds `password` and `ai_agents` logs in with it: the two systems agree.
fn secret_and_database_hold(env: &TestEnv, password: &[u8]) -> Result<()> {
    ensure!(
        env.secret_values("app-secrets")?["postgres-password"] == password,
        "the Secret holds the expected password"
    );
    ensure!(
        accepts(env, "ai_agents", password)?,
        "the database accepts the password the Secret holds"
    );
    Ok(())
}

/// The server's log holds none of `values` (a password in plain text).
fn log_has_none_of(env: &TestEnv, values: &[&[u8]]) -> Result<String> {
    let log = env.kubectl(&["logs", "postgres-0", "-n", &env.namespace])?;
    log.success()?;
    for value in values {
        let text = String::from_utf8_lossy(value);
        ensure!(
            !log.stdout.contains(text.as_ref()),
            "a password is in PostgreSQL's log"
        );
    }
    Ok(log.stdout)
}

/// Every pod of `app` that is Ready logged in to the database (its log says so).
fn app_pods_healthy(env: &TestEnv, app: &str) -> Result<()> {
    env.pods_logged(app, "database connection healthy")
}

/// The app answers a request that reads the database (a tenant's config, decrypted), through
/// the API server's proxy to the Service `api`.
fn app_serves_a_tenant(env: &TestEnv) -> Result<()> {
    let path = format!(
        "/api/v1/namespaces/{}/services/api:8000/proxy/api/v1/tenants/tenant-1/config",
        env.namespace
    );
    let run = env.kubectl(&["get", "--raw", &path])?;
    run.success()?;
    ensure!(
        run.stdout.contains("tenant-1"),
        "the app served tenant-1: {}",
        run.stdout
    );
    Ok(())
}

fn postgres_preset_changes_the_password_in_the_database_and_the_secret_as_one_run(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-single")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["postgres-password"].clone();
    let sts_before = env.restarted_at("statefulset", "postgres")?;

    let run = env.rotate(&["postgres", "-y"])?;
    run.success()?;
    let after = env.secret_values("app-secrets")?;
    let new = after["postgres-password"].clone();
    ensure!(new != old, "the Secret holds a new password");
    ensure!(
        new.len() == 32
            && new
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'),
        "the new password is 32 URL-safe characters"
    );
    // The database and the Secret agree; the old password is gone.
    ensure!(
        accepts(&env, "ai_agents", &new)?,
        "the new password logs in"
    );
    ensure!(
        !accepts(&env, "ai_agents", &old)?,
        "the old password no longer logs in"
    );
    // The preview named every step, and the server's own workload was left running.
    let text = format!("{}{}", run.stdout, run.stderr);
    for line in [
        "ALTER ROLE ai_agents PASSWORD <SCRAM-SHA-256 verifier of the new postgres-password>",
        "it is the PostgreSQL server",
        "check-logs: 4 pod(s) logged a line matching \"database.*healthy\"",
        "check-login: ai_agents logs in",
    ] {
        ensure!(
            text.contains(line),
            "{line:?} is not in the output:\n{text}"
        );
    }
    ensure!(
        env.restarted_at("statefulset", "postgres")? == sts_before,
        "statefulset/postgres was not restarted"
    );
    ensure!(
        env.restarted_at("deployment", "api")?.is_some()
            && env.restarted_at("deployment", "worker")?.is_some(),
        "api and worker were restarted"
    );
    app_pods_healthy(&env, "api")?;
    app_pods_healthy(&env, "worker")?;
    app_serves_a_tenant(&env)?;
    // The plaintext never reached the server, even with log_statement = all.
    let log = log_has_none_of(&env, &[&new, &old])?;
    ensure!(
        log.contains("ALTER ROLE \"ai_agents\" PASSWORD 'SCRAM-SHA-256$4096:"),
        "the statement the server ran is a verifier:\n{log}"
    );
    // Nor did any value reach the plugin's output.
    crate::support::assert_no_values(&run, &after)?;
    crate::support::assert_no_values(&run, &before)?;

    // `verify` logs in with the Secret's value.
    let verify = env.rotate(&["verify", "app-secrets", "postgres-password"])?;
    verify.success()?;
    ensure!(
        verify
            .stdout
            .contains("accepts ai_agents's login with postgres-password"),
        "verify:\n{}",
        verify.stdout
    );

    // `rollback` restores the password in the database too, before the Secret.
    let rollback = env.rotate(&["rollback", "app-secrets", "postgres-password", "-y"])?;
    rollback.success()?;
    ensure!(
        format!("{}{}", rollback.stdout, rollback.stderr)
            .contains("set-password: ALTER ROLE ai_agents"),
        "the rollback changed the database:\n{}",
        rollback.stderr
    );
    secret_and_database_hold(&env, &old)?;
    ensure!(
        !accepts(&env, "ai_agents", &new)?,
        "the rotated password no longer logs in"
    );
    app_pods_healthy(&env, "api")?;
    Ok(())
}

fn postgres_alternating_users_switch_roles_and_disable_the_old_login(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-alt")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["postgres-password"].clone();

    let run = env.rotate(&["postgres", "--strategy", "alternating-users", "-y"])?;
    run.success()?;
    let text = format!("{}{}", run.stdout, run.stderr);
    ensure!(
        text.contains("CREATE ROLE ai_agents_clone NOLOGIN IN ROLE ai_agents"),
        "the preview shows the clone's creation:\n{text}"
    );
    let after = env.secret_values("app-secrets")?;
    ensure!(
        after["postgres-user"] == b"ai_agents_clone",
        "the Secret names the clone"
    );
    let new = after["postgres-password"].clone();
    ensure!(accepts(&env, "ai_agents_clone", &new)?, "the clone logs in");
    ensure!(
        !accepts(&env, "ai_agents", &old)?,
        "the old role's login is disabled"
    );
    ensure!(
        env.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'ai_agents'")?
            .stdout
            .trim()
            == "f",
        "ai_agents is NOLOGIN"
    );
    // The clone acts as the app's role: the app reads the tenants owned by ai_agents.
    app_pods_healthy(&env, "api")?;
    app_pods_healthy(&env, "worker")?;
    app_serves_a_tenant(&env)?;
    log_has_none_of(&env, &[&new, &old])?;

    // The next rotation switches back.
    env.rotate(&["postgres", "--strategy", "alternating-users", "-y"])?
        .success()?;
    let again = env.secret_values("app-secrets")?;
    ensure!(again["postgres-user"] == b"ai_agents", "back to ai_agents");
    ensure!(
        accepts(&env, "ai_agents", &again["postgres-password"])?,
        "ai_agents logs in with the newest password"
    );
    ensure!(
        !accepts(&env, "ai_agents_clone", &new)?,
        "the clone's login is disabled"
    );
    app_pods_healthy(&env, "api")?;
    Ok(())
}

/// Starts a rotation that pauses at `at` and SIGKILLs it there; the journal then says the
/// password step is `status`.
fn kill_at(env: &TestEnv, at: &str, status: &str) -> Result<()> {
    let journal = env.kill_rotate_at(&["postgres", "-y"], at)?;
    let steps = &journal["steps"];
    ensure!(
        steps[1]["step"]["type"] == "setPassword" && steps[1]["status"] == status,
        "the journal says the password step is {status}: {steps}"
    );
    ensure!(steps[2]["status"] == "pending", "the patch is pending");
    Ok(())
}

/// Killed after `ALTER ROLE` was journaled as done, before the patch started.
fn kill_between_alter_role_and_patch(env: &TestEnv) -> Result<()> {
    kill_at(env, "before:patch", "done")
}

fn postgres_rotation_killed_between_alter_role_and_the_patch_is_resumed(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-kill-resume")?;
    let old = env.secret_values("app-secrets")?["postgres-password"].clone();
    kill_between_alter_role_and_patch(&env)?;
    // The dangerous moment: the database has the new password, the Secret the old one.
    ensure!(
        !accepts(&env, "ai_agents", &old)?,
        "the database changed first"
    );
    let status = env.rotate(&["status", "app-secrets"])?;
    ensure!(
        status.stdout.contains("unfinished run") || status.stderr.contains("unfinished run"),
        "status shows the unfinished run:\n{}{}",
        status.stdout,
        status.stderr
    );
    env.rotate(&["resume", "app-secrets", "-y"])?.success()?;
    let new = env.secret_values("app-secrets")?["postgres-password"].clone();
    ensure!(new != old, "the Secret holds the new password");
    ensure!(accepts(&env, "ai_agents", &new)?, "and the database agrees");
    app_pods_healthy(&env, "api")?;
    Ok(())
}

fn postgres_rotation_killed_between_alter_role_and_the_patch_is_undone(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-kill-undo")?;
    let old = env.secret_values("app-secrets")?["postgres-password"].clone();
    kill_between_alter_role_and_patch(&env)?;
    let id = env.journals_of("app-secrets")?[0]["id"]
        .as_str()
        .context("run id")?
        .to_string();
    let undo = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
    undo.success()?;
    ensure!(
        format!("{}{}", undo.stdout, undo.stderr).contains("revert-password"),
        "the undo reverted the database password:\n{}{}",
        undo.stdout,
        undo.stderr
    );
    secret_and_database_hold(&env, &old)?;
    app_pods_healthy(&env, "api")?;
    Ok(())
}

/// Alternating users, first run: SIGKILL right after `CREATE ROLE ai_agents_clone` ran but
/// before the journal said so (the step is `started`): `resume` finds the role there and goes
/// on; the Secret ends on the clone, which logs in, and `ai_agents` is `NOLOGIN`.
fn postgres_alternating_run_killed_as_it_created_the_clone_is_resumed(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-alt-create")?;
    let before = env.secret_values("app-secrets")?;
    let journal = env.kill_rotate_at(
        &["postgres", "--strategy", "alternating-users", "-y"],
        "after:create-role",
    )?;
    let steps = journal["steps"].as_array().cloned().unwrap_or_default();
    ensure!(
        steps
            .iter()
            .any(|s| s["step"]["type"] == "createRole" && s["status"] == "started"),
        "the journal says the clone's creation started: {steps:?}"
    );
    ensure!(
        env.secret_values("app-secrets")? == before,
        "nothing was patched yet"
    );
    let resume = env.rotate(&["resume", "app-secrets", "-y"])?;
    resume.success()?;
    let after = env.secret_values("app-secrets")?;
    ensure!(
        after["postgres-user"] == b"ai_agents_clone",
        "the Secret switched to the clone"
    );
    ensure!(
        accepts(&env, "ai_agents_clone", &after["postgres-password"])?,
        "the clone logs in with the Secret's password"
    );
    ensure!(
        !accepts(&env, "ai_agents", &before["postgres-password"])?,
        "the old role's login is disabled"
    );
    app_pods_healthy(&env, "api")?;
    Ok(())
}

/// Alternating users, SIGKILL after `ALTER ROLE ai_agents NOLOGIN` ran but before the journal
/// said so (the step is `started`): the undo gives `ai_agents` its login back first, restores
/// the Secret (user and password), restarts the app, and only then takes the clone's login
/// away, once no pod uses it.
fn postgres_alternating_run_killed_as_it_disabled_the_old_login_is_undone_in_reverse(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-alt-undo")?;
    let before = env.secret_values("app-secrets")?;
    let journal = env.kill_rotate_at(
        &["postgres", "--strategy", "alternating-users", "-y"],
        "after:disable-login",
    )?;
    let steps = journal["steps"].as_array().cloned().unwrap_or_default();
    let last = steps.last().context("steps")?;
    ensure!(
        last["step"]["type"] == "disableLogin" && last["status"] == "started",
        "the journal says the old login's step started: {last}"
    );
    ensure!(
        !accepts(&env, "ai_agents", &before["postgres-password"])?,
        "ai_agents' login is disabled"
    );
    let new = env.secret_values("app-secrets")?;
    ensure!(
        new["postgres-user"] == b"ai_agents_clone",
        "the Secret names the clone"
    );
    let id = journal["id"].as_str().context("run id")?.to_string();

    let undo = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
    undo.success()?;
    let text = format!("{}{}", undo.stdout, undo.stderr);
    let order: Vec<usize> = [
        "undo enable-login",
        "undo restore",
        "undo restart",
        "undo watch",
        "undo disable-login",
    ]
    .iter()
    .map(|step| text.find(step).unwrap_or(usize::MAX))
    .collect();
    ensure!(
        order.windows(2).all(|w| w[0] < w[1]) && order[4] != usize::MAX,
        "the undo ran in reverse order, the clone's login last:\n{text}"
    );
    ensure!(
        env.secret_values("app-secrets")? == before,
        "the Secret holds the old user and password"
    );
    ensure!(
        accepts(&env, "ai_agents", &before["postgres-password"])?,
        "ai_agents logs in again"
    );
    ensure!(
        !accepts(&env, "ai_agents_clone", &new["postgres-password"])?,
        "the clone's login is disabled again"
    );
    app_pods_healthy(&env, "api")?;
    app_serves_a_tenant(&env)?;
    Ok(())
}

/// The journal says `started` (the process died between `ALTER ROLE` and its journal entry):
/// resume logs in with the pending, current and previous passwords to find where the role is.
fn postgres_rotation_killed_before_alter_role_was_journaled_is_found_done_by_logging_in(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-kill-probe")?;
    let old = env.secret_values("app-secrets")?["postgres-password"].clone();
    kill_at(&env, "after:set-password", "started")?;
    ensure!(
        !accepts(&env, "ai_agents", &old)?,
        "the database has the new password"
    );
    let resume = env.rotate(&["resume", "app-secrets", "-y"])?;
    resume.success()?;
    let text = format!("{}{}", resume.stdout, resume.stderr);
    ensure!(
        text.contains("set-password: found done (ai_agents logs in with it)"),
        "resume found the step done by logging in:\n{text}"
    );
    let new = env.secret_values("app-secrets")?["postgres-password"].clone();
    ensure!(accepts(&env, "ai_agents", &new)?, "the run finished");
    // The verifier was set once: the log holds one ALTER ROLE of ai_agents.
    let log = log_has_none_of(&env, &[&new, &old])?;
    ensure!(
        log.matches("ALTER ROLE \"ai_agents\" PASSWORD").count() == 1,
        "ALTER ROLE ran once:\n{log}"
    );
    Ok(())
}

/// A second app shares the Secret's password but logs in as its own role, whose password the
/// rotation does not change: its new pods fail, and the run is undone in both places.
fn postgres_rotation_whose_new_pods_fail_restores_the_database_password_too(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-undo")?;
    let old = env.secret_values("app-secrets")?["postgres-password"].clone();
    // The role `reporting` gets the same password, as its verifier (no plaintext in argv).
    let verifier = postgres_protocol::password::scram_sha_256(&old);
    let sql = format!("CREATE ROLE reporting LOGIN IN ROLE ai_agents PASSWORD '{verifier}';\n");
    // The statement on psql's stdin: not even the verifier in a process's arguments.
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
            "ai_agents",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
        ],
        &[],
        Some(sql.as_bytes()),
    )?
    .success()?;
    // A copy of `api` (its readiness probe logs in to the database).
    let api = crate::support::demo_object("Deployment", "api")?;
    let reporting = api
        .replace("name: api", "name: reporting")
        .replace("app: api", "app: reporting")
        .replace(
            "replicas: 2",
            "replicas: 1\n  progressDeadlineSeconds: 600",
        )
        .replace(
            "            - name: DATABASE_USER\n              valueFrom:\n                secretKeyRef: {name: app-secrets, key: postgres-user}\n",
            "            - {name: DATABASE_USER, value: reporting}\n",
        );
    ensure!(
        reporting.contains("value: reporting"),
        "reporting logs in as itself"
    );
    env.apply(&reporting)?;
    env.wait_rolled_out(&["deployment/reporting"])?;

    let run = env.rotate(&["postgres", "-y", "--timeout", "90s"])?;
    ensure!(
        run.code == Some(1),
        "the rotation fails: {:?}\n{}",
        run.code,
        run.stderr
    );
    ensure!(
        run.stderr.contains("rolled back"),
        "and says it rolled back:\n{}",
        run.stderr
    );
    secret_and_database_hold(&env, &old)?;
    ensure!(
        accepts(&env, "reporting", &old)?,
        "and the other role was never touched"
    );
    env.wait_rolled_out(&["deployment/api", "deployment/reporting"])?;
    app_pods_healthy(&env, "api")?;
    Ok(())
}

fn postgres_rotation_refuses_wrong_admin_credentials_and_an_unreachable_database_before_any_write(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-refuse")?;
    let before = env.secret_values("app-secrets")?;
    let admin = env.secret_values("postgres-admin")?;
    let wrong = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        "not-the-admin-password",
    );
    env.merge_patch_secret(
        "postgres-admin",
        &serde_json::json!({"data": {"postgres-password": wrong}}).to_string(),
    )?;
    let run = env.rotate(&["postgres", "-y"])?;
    ensure!(
        run.code == Some(1),
        "refused: {:?}\n{}",
        run.code,
        run.stderr
    );
    ensure!(
        run.stderr.contains("refuses the admin login postgres")
            && run.stderr.contains("nothing was changed"),
        "the error names the admin login:\n{}",
        run.stderr
    );
    let nothing_written = |env: &TestEnv| -> Result<()> {
        ensure!(
            env.secret_values("app-secrets")? == before,
            "the Secret is unchanged"
        );
        ensure!(env.journals_of("app-secrets")?.is_empty(), "no run started");
        ensure!(env.backups_of("app-secrets")?.is_empty(), "no backup taken");
        ensure!(
            accepts(env, "ai_agents", &before["postgres-password"])?,
            "the database is unchanged"
        );
        Ok(())
    };
    nothing_written(&env)?;
    let restore = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &admin["postgres-password"],
    );
    env.merge_patch_secret(
        "postgres-admin",
        &serde_json::json!({"data": {"postgres-password": restore}}).to_string(),
    )?;

    // No server behind the Service.
    env.kubectl(&[
        "scale",
        "statefulset/postgres",
        "-n",
        &env.namespace,
        "--replicas=0",
    ])?
    .success()?;
    env.wait_until(
        "postgres-0 to be gone",
        &[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "app=postgres",
            "-o",
            "name",
        ],
        |out| out.trim().is_empty(),
    )?;
    let run = env.rotate(&["postgres", "-y"])?;
    ensure!(
        run.code == Some(1),
        "refused: {:?}\n{}",
        run.code,
        run.stderr
    );
    ensure!(
        run.stderr.contains("has no Ready pod"),
        "the error says the database is not there:\n{}",
        run.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == before && env.journals_of("app-secrets")?.is_empty(),
        "nothing was written"
    );
    if run.stderr.contains("password") && !run.stderr.contains("has no Ready pod") {
        bail!("unexpected error: {}", run.stderr);
    }
    Ok(())
}

/// A database outside the cluster, as RDS is: the preset names `HOST:PORT` (here postgres-0's
/// address, reached from this machine through the cluster's network) and `tls: verify-full`
/// with the CA that signed the server's certificate (the demo image makes both with
/// `POSTGRES_SSL=on` and logs the CA). A CA that did not sign it is refused before any write.
fn postgres_reached_directly_with_tls_verify_full_rotates_and_a_wrong_ca_is_refused(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "pg-tls")?;
    let ns = env.namespace.clone();
    env.psql("ALTER SYSTEM SET log_connections = on")?
        .success()?;
    env.kubectl(&[
        "set",
        "env",
        "statefulset/postgres",
        "-n",
        &ns,
        "POSTGRES_SSL=on",
    ])?
    .success()?;
    env.wait_rolled_out(&["statefulset/postgres"])?;
    // The app's pods went unready while their database restarted; wait for them to recover.
    for app in ["api", "worker"] {
        env.wait_until(
            &format!("deployment {app} to be available again"),
            &[
                "get",
                "deployment",
                app,
                "-n",
                &ns,
                "-o",
                "jsonpath={.status.availableReplicas}",
            ],
            |out| out.trim() == "2",
        )?;
    }
    let ip = env.kubectl(&[
        "get",
        "pod",
        "postgres-0",
        "-n",
        &ns,
        "-o",
        "jsonpath={.status.podIP}",
    ])?;
    ip.success()?;
    let ip = ip.stdout.trim().to_string();
    ensure!(!ip.is_empty(), "postgres-0 has an address");
    // The CA the server logged at start (public).
    let mut ca = String::new();
    env.wait_until(
        "postgres-0 to log its TLS CA",
        &["logs", "postgres-0", "-n", &ns],
        |log| log.contains("END CERTIFICATE"),
    )?;
    let log = env.kubectl(&["logs", "postgres-0", "-n", &ns])?.stdout;
    let mut inside = false;
    for line in log.lines().skip_while(|l| !l.contains("signed by this CA")) {
        if line.contains("BEGIN CERTIFICATE") {
            inside = true;
        }
        if inside {
            match line.find("-----") {
                Some(at) => ca.push_str(&line[at..]),
                None => ca.push_str(line.trim()),
            }
            ca.push('\n');
        }
        if line.contains("END CERTIFICATE") {
            break;
        }
    }
    ensure!(
        ca.contains("BEGIN CERTIFICATE"),
        "the CA in the log:\n{log}"
    );
    let dir = tempfile::tempdir()?;
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca)?;
    // Another CA: the control plane's own.
    let kubeconfig_text = std::fs::read_to_string(kubeconfig)?;
    let other = kubeconfig_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("certificate-authority-data: "))
        .context("the kubeconfig's CA")?;
    let other_file = dir.path().join("other-ca.pem");
    std::fs::write(
        &other_file,
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, other.trim())?,
    )?;
    let config = |ca: &Path| {
        format!(
            "presets:\n  postgres:\n    postgres:\n      server: \"{ip}:5432\"\n      tls: verify-full\n      caFile: {}\n",
            ca.display()
        )
    };
    let wrong = dir.path().join("wrong.yaml");
    std::fs::write(&wrong, config(&other_file))?;
    let before = env.secret_values("app-secrets")?;
    let run = env.rotate(&[
        "postgres",
        "-y",
        "--config",
        wrong.to_str().context("utf-8")?,
    ])?;
    ensure!(
        run.code == Some(1),
        "a wrong CA is refused: {:?}\n{}",
        run.code,
        run.stderr
    );
    ensure!(
        run.stderr.contains("certificate") && run.stderr.contains(&format!("{ip}:5432")),
        "the error names the certificate problem and the server:\n{}",
        run.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == before && env.journals_of("app-secrets")?.is_empty(),
        "nothing was written"
    );

    let right = dir.path().join("right.yaml");
    std::fs::write(&right, config(&ca_file))?;
    let run = env.rotate(&[
        "postgres",
        "-y",
        "--config",
        right.to_str().context("utf-8")?,
    ])?;
    run.success()?;
    ensure!(
        format!("{}{}", run.stdout, run.stderr)
            .contains("TLS verify-full (certificate and host name checked"),
        "the preview says how the connection is secured:\n{}",
        run.stdout
    );
    let new = env.secret_values("app-secrets")?["postgres-password"].clone();
    ensure!(
        accepts(&env, "ai_agents", &new)?,
        "the new password logs in"
    );
    // The plugin's connections were encrypted (log_connections).
    let log = log_has_none_of(&env, &[&new, &before["postgres-password"]])?;
    ensure!(
        log.lines()
            .any(|l| l.contains("user=postgres database=ai_agents") && l.contains("SSL enabled")),
        "the admin's login used TLS:\n{log}"
    );
    Ok(())
}
