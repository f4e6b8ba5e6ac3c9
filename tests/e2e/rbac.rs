//! Least privilege (issue 14): the Roles shipped in `deploy/rbac/`, applied as a cluster
//! administrator would apply them, each bound alone to a user that the tests impersonate
//! (`--as`, as a user with those rights would run the plugin). Each user can run exactly the
//! verbs of its Role; the others are refused before anything is written, naming the rule to
//! add. And consumers that are only reported (CronJobs) do not block a user who may not list
//! them: a warning names the rule, and `--strict` refuses instead.

use std::path::Path;

use anyhow::{Result, ensure};

use crate::TestFn;
use crate::support::{TestEnv, repo_root};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "rbac_read_only_role_shows_and_verifies_and_every_write_is_refused_with_the_rule_to_add",
            rbac_read_only_role_shows_and_verifies_and_every_write_is_refused_with_the_rule_to_add,
        ),
        (
            "rbac_rotate_role_rotates_backs_up_rolls_back_and_resumes_without_a_warning",
            rbac_rotate_role_rotates_backs_up_rolls_back_and_resumes_without_a_warning,
        ),
        (
            "rbac_database_role_rotates_postgres_redis_and_the_encryption_key_and_the_rotate_role_is_refused_them",
            rbac_database_role_rotates_postgres_redis_and_the_encryption_key_and_the_rotate_role_is_refused_them,
        ),
        (
            "rbac_role_without_cronjobs_rotates_with_a_warning_naming_them_and_strict_refuses",
            rbac_role_without_cronjobs_rotates_with_a_warning_naming_them_and_strict_refuses,
        ),
    ]
}

/// A shipped Role: its file under `deploy/rbac/` and the Role's name in it.
pub(crate) struct Shipped {
    pub(crate) file: &'static str,
    pub(crate) role: &'static str,
}

const READ_ONLY: Shipped = Shipped {
    file: "read-only.yaml",
    role: "kubectl-rotate-read-only",
};
const ROTATE: Shipped = Shipped {
    file: "rotate.yaml",
    role: "kubectl-rotate",
};
pub(crate) const DATABASE: Shipped = Shipped {
    file: "database-presets.yaml",
    role: "kubectl-rotate-database",
};

pub(crate) fn manifest(shipped: &Shipped) -> Result<String> {
    Ok(std::fs::read_to_string(
        repo_root().join("deploy/rbac").join(shipped.file),
    )?)
}

/// Applies `manifest` (a Role without a namespace, as shipped) in the test's namespace, binds
/// `role` to `user` there, and waits until the API server's authorizer sees the binding.
pub(crate) fn bind(env: &TestEnv, manifest: &str, role: &str, user: &str) -> Result<()> {
    env.kubectl_with(
        &["apply", "-n", &env.namespace, "-f", "-"],
        &[],
        Some(manifest.as_bytes()),
    )?
    .success()?;
    let role_arg = format!("--role={role}");
    let user_arg = format!("--user={user}");
    env.kubectl(&[
        "create",
        "rolebinding",
        &format!("{role}-{user}"),
        "-n",
        &env.namespace,
        &role_arg,
        &user_arg,
    ])?
    .success()?;
    env.wait_until(
        &format!("{user} may list Secrets"),
        &[
            "auth",
            "can-i",
            "list",
            "secrets",
            "-n",
            &env.namespace,
            "--as",
            user,
        ],
        |out| out.trim() == "yes",
    )
}

/// `kubectl rotate ARGS -n NAMESPACE --as USER`.
pub(crate) fn rotate_as(env: &TestEnv, user: &str, args: &[&str]) -> Result<crate::support::Run> {
    let mut all = args.to_vec();
    all.extend(["--as", user]);
    env.rotate(&all)
}

pub(crate) fn contains_all(text: &str, wanted: &[&str]) -> Result<()> {
    for line in wanted {
        ensure!(text.contains(line), "{line:?} is not in:\n{text}");
    }
    Ok(())
}

fn rbac_read_only_role_shows_and_verifies_and_every_write_is_refused_with_the_rule_to_add(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbac-read")?;
    env.seed_demo_app()?;
    bind(&env, &manifest(&READ_ONLY)?, READ_ONLY.role, "reader")?;
    let ns = env.namespace.clone();
    // A rotation by the administrator, so that there is a backup to roll back to.
    env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;

    let status = rotate_as(&env, "reader", &["status"])?;
    status.success()?;
    contains_all(&status.stdout, &["deployment/api", "deployment/worker"])?;
    ensure!(
        !status.stderr.contains("warning"),
        "the read-only Role checks every consumer: {}",
        status.stderr
    );
    let verify = rotate_as(
        &env,
        "reader",
        &[
            "verify",
            "app-secrets",
            "--logs",
            "Secrets loaded successfully",
            "--health",
            "8000/health",
        ],
    )?;
    verify.success()?;
    rotate_as(&env, "reader", &["backup", "app-secrets", "--list"])?.success()?;

    let before = env.secret_values("app-secrets")?;
    let refused = rotate_as(
        &env,
        "reader",
        &[
            "secret",
            "app-secrets",
            "redis-password",
            "--generate",
            "password",
            "-y",
        ],
    )?;
    refused.failure(1)?;
    contains_all(
        &refused.stderr,
        &[
            "nothing was changed. Missing permissions:",
            &format!("patch secrets/app-secrets in namespace {ns} (to write the new value)"),
            &format!("add these rules to a Role in namespace {ns} that is bound to you"),
            "  - apiGroups: [\"\"]\n    resources: [\"secrets\"]\n    verbs: [\"create\", \"patch\", \"update\"]",
            "  - apiGroups: [\"coordination.k8s.io\"]\n    resources: [\"leases\"]\n    verbs: [\"create\", \"delete\", \"get\", \"update\"]",
            "  - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"patch\", \"watch\"]",
            "  - apiGroups: [\"\"]\n    resources: [\"pods\"]\n    verbs: [\"watch\"]",
            &format!("kubectl auth can-i patch secrets/app-secrets -n {ns}"),
        ],
    )?;
    let refused = rotate_as(&env, "reader", &["rollback", "app-secrets", "-y"])?;
    refused.failure(1)?;
    contains_all(
        &refused.stderr,
        &[
            "not allowed to rotate",
            "resources: [\"secrets\"]\n    verbs: [\"create\", \"patch\", \"update\"]",
        ],
    )?;
    let refused = rotate_as(&env, "reader", &["backup", "app-secrets", "-y"])?;
    refused.failure(1)?;
    contains_all(
        &refused.stderr,
        &[
            "cannot create the backup Secret",
            &format!(
                "(to allow it, add to a Role in namespace {ns} that is bound to you: \
                 {{apiGroups: [\"\"], resources: [\"secrets\"], verbs: [\"create\"]}})"
            ),
        ],
    )?;
    // A database preset: reaching the server is refused before any login.
    let refused = rotate_as(&env, "reader", &["postgres", "-y"])?;
    refused.failure(1)?;
    let (lookup, _) = env.service_lookup_need("postgres")?;
    contains_all(
        &refused.stderr,
        &[
            &lookup,
            "resources: [\"pods/portforward\"]\n    verbs: [\"create\", \"get\"]",
        ],
    )?;
    ensure!(
        env.secret_values("app-secrets")? == before,
        "nothing was changed"
    );
    ensure!(
        env.backups_of("app-secrets")?.len() == 1,
        "no backup was made"
    );
    Ok(())
}

fn rbac_rotate_role_rotates_backs_up_rolls_back_and_resumes_without_a_warning(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbac-rotate")?;
    env.seed_demo_app()?;
    bind(&env, &manifest(&ROTATE)?, ROTATE.role, "operator")?;
    let before = env.secret_values("app-secrets")?;

    let rotated = rotate_as(
        &env,
        "operator",
        &[
            "secret",
            "app-secrets",
            "redis-password",
            "--generate",
            "password",
            "-y",
            "--keep",
            "1",
        ],
    )?;
    rotated.success()?;
    let backup = rotate_as(
        &env,
        "operator",
        &["backup", "app-secrets", "-y", "--keep", "1"],
    )?;
    backup.success()?;
    let openai = {
        let mut args = vec!["openai", "--from-stdin", "-y", "--keep", "1"];
        args.extend(["--as", "operator"]);
        env.rotate_with_stdin(&args, b"sk-rbac-test-0123456789abcdefghijklmnop\n")?
    };
    openai.success()?;
    let rollback = rotate_as(
        &env,
        "operator",
        &["rollback", "app-secrets", "openai-api-key", "-y"],
    )?;
    rollback.success()?;
    let resume = rotate_as(&env, "operator", &["resume", "app-secrets", "-y"])?;
    resume.success()?;
    for run in [&rotated, &openai, &backup, &rollback, &resume] {
        // Every part of a run is allowed: the Event, the pruning of backups and journals.
        ensure!(
            !run.stderr.contains("warning") && !run.stderr.contains("could not"),
            "{}",
            run.stderr
        );
    }
    let after = env.secret_values("app-secrets")?;
    ensure!(
        after["redis-password"] != before["redis-password"],
        "redis-password was rotated"
    );
    ensure!(
        after["openai-api-key"] == before["openai-api-key"],
        "openai-api-key was rotated, then rolled back"
    );
    // --keep 1 pruned the older backups: the openai run's, and the rollback's own.
    ensure!(
        env.backups_of("app-secrets")?.len() == 2,
        "{} backups",
        env.backups_of("app-secrets")?.len()
    );
    let events = env.kubectl(&["get", "events", "-n", &env.namespace])?;
    contains_all(&events.stdout, &["SecretRotated", "SecretRolledBack"])?;
    rotate_as(&env, "operator", &["status"])?.success()?;
    rotate_as(
        &env,
        "operator",
        &[
            "verify",
            "app-secrets",
            "--logs",
            "Secrets loaded successfully",
        ],
    )?
    .success()?;
    Ok(())
}

fn rbac_database_role_rotates_postgres_redis_and_the_encryption_key_and_the_rotate_role_is_refused_them(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbac-db")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    env.apply_demo_stack(&["api", "worker"])?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    bind(&env, &manifest(&ROTATE)?, ROTATE.role, "operator")?;
    bind(&env, &manifest(&DATABASE)?, DATABASE.role, "dba")?;

    // The rotate Role may not reach the database: refused before any login, every rule named.
    let before = env.secret_values("app-secrets")?;
    let (_, lookup_rule) = env.service_lookup_need("postgres")?;
    for preset in ["postgres", "redis", "encryption-key"] {
        let refused = rotate_as(&env, "operator", &[preset, "-y"])?;
        refused.failure(1)?;
        contains_all(
            &refused.stderr,
            &[
                "nothing was changed. Missing permissions:",
                &lookup_rule,
                "  - apiGroups: [\"\"]\n    resources: [\"pods/portforward\"]\n    verbs: [\"create\", \"get\"]",
            ],
        )?;
        if preset == "encryption-key" {
            contains_all(
                &refused.stderr,
                &["resources: [\"pods/exec\"]\n    verbs: [\"create\", \"get\"]"],
            )?;
        }
    }
    ensure!(
        env.secret_values("app-secrets")? == before,
        "nothing was changed"
    );

    // The database Role runs each of them, and verify's logins; it may read enough to know the
    // servers' own workloads, which are never restarted.
    let servers_before = (
        env.restarted_at("statefulset", "postgres")?,
        env.restarted_at("deployment", "redis")?,
    );
    let dir = tempfile::tempdir()?;
    let dir_arg = dir.path().join("run");
    let dir_arg = dir_arg.to_str().unwrap_or_default();
    for args in [
        vec!["postgres", "-y"],
        vec!["redis", "-y"],
        vec!["encryption-key", "-y", "--backup-dir", dir_arg],
    ] {
        let run = rotate_as(&env, "dba", &args)?;
        run.success()?;
        ensure!(
            !run.stderr.contains("could not"),
            "{:?}: {}",
            args,
            run.stderr
        );
    }
    let after = env.secret_values("app-secrets")?;
    for key in ["postgres-password", "redis-password", "encryption-key"] {
        ensure!(after[key] != before[key], "{key} was rotated");
    }
    ensure!(
        (
            env.restarted_at("statefulset", "postgres")?,
            env.restarted_at("deployment", "redis")?,
        ) == servers_before,
        "the servers' own workloads were not restarted"
    );
    ensure!(
        dir.path().join("run/ai_agents.sql").exists(),
        "pg_dump ran in the database's pod"
    );
    let verify = rotate_as(&env, "dba", &["verify", "app-secrets"])?;
    verify.success()?;
    contains_all(
        &verify.stdout,
        &["accepts ai_agents's login with postgres-password"],
    )?;
    Ok(())
}

/// Regression: a user whose Role covers Secrets, Deployments, pods and events but not
/// `cronjobs` could not rotate at all ("cannot list CronJobs ... to find the Secret's consumers:
/// permission denied"), although CronJobs are only reported, never restarted.
fn rbac_role_without_cronjobs_rotates_with_a_warning_naming_them_and_strict_refuses(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "rbac-cron")?;
    env.seed_demo_app()?;
    let ns = env.namespace.clone();
    let shipped = manifest(&ROTATE)?;
    let without = shipped
        .replace(
            "resources: [\"cronjobs\", \"jobs\"]",
            "resources: [\"jobs\"]",
        )
        .replace("name: kubectl-rotate\n", "name: no-cronjobs\n");
    ensure!(
        without != shipped && !without.contains("cronjobs\"]"),
        "rotate.yaml lists cronjobs as expected"
    );
    bind(&env, &without, "no-cronjobs", "cronless")?;
    let rule = r#"{apiGroups: ["batch"], resources: ["cronjobs"], verbs: ["list"]}"#;
    let warning = format!("consumers not checked: you may not list CronJobs in namespace {ns}");
    let rule_lines =
        "  - apiGroups: [\"batch\"]\n    resources: [\"cronjobs\"]\n    verbs: [\"list\"]";

    let status = rotate_as(&env, "cronless", &["status"])?;
    status.success()?;
    contains_all(&status.stdout, &["deployment/api"])?;
    contains_all(&status.stderr, &[&warning, rule])?;
    let json = rotate_as(&env, "cronless", &["status", "-o", "json"])?;
    json.success()?;
    let report: serde_json::Value = serde_json::from_str(&json.stdout)?;
    ensure!(
        report["notChecked"][0]["kind"] == "CronJob"
            && report["notChecked"][0]["namespace"] == ns.as_str()
            && report["notChecked"][0]["rule"]["resources"][0] == "cronjobs",
        "{report}"
    );
    let strict = rotate_as(&env, "cronless", &["status", "--strict"])?;
    strict.failure(1)?;
    contains_all(
        &strict.stderr,
        &[
            &format!("refusing to show the consumers of Secrets in namespace {ns} (--strict)"),
            rule_lines,
        ],
    )?;

    let before = env.secret_values("app-secrets")?;
    let rotate = [
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ];
    let mut strict_args = rotate.to_vec();
    strict_args.push("--strict");
    let strict = rotate_as(&env, "cronless", &strict_args)?;
    strict.failure(1)?;
    contains_all(
        &strict.stderr,
        &[
            &format!("refusing to rotate Secret {ns}/app-secrets (--strict)"),
            "nothing was changed",
            rule_lines,
        ],
    )?;
    ensure!(
        env.secret_values("app-secrets")? == before,
        "--strict changed nothing"
    );
    let run = rotate_as(&env, "cronless", &rotate)?;
    run.success()?;
    contains_all(&run.stdout, &[&format!("warning: {warning}"), rule])?;
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] != before["redis-password"],
        "the rotation went on"
    );
    let verify = rotate_as(&env, "cronless", &["verify", "app-secrets"])?;
    verify.success()?;
    contains_all(&verify.stderr, &[&warning])?;
    rotate_as(&env, "cronless", &["verify", "app-secrets", "--strict"])?.failure(2)?;

    // A kind that a run restarts stays an error, naming the rule to add.
    let secrets_only = r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"Role","metadata":{"name":"secrets-only"},
      "rules":[{"apiGroups":[""],"resources":["secrets"],"verbs":["get","list"]}]}"#;
    bind(&env, secrets_only, "secrets-only", "secretive")?;
    let refused = rotate_as(&env, "secretive", &["status"])?;
    refused.failure(1)?;
    contains_all(
        &refused.stderr,
        &[
            &format!(
                "cannot list Deployments in namespace \"{ns}\" to find the Secret's consumers: permission denied"
            ),
            &format!("add this rule to a Role in namespace {ns} that is bound to you ("),
            "  - apiGroups: [\"apps\"]\n    resources: [\"deployments\"]\n    verbs: [\"list\"]",
            &format!("kubectl auth can-i list deployments.apps -n {ns}"),
        ],
    )?;
    Ok(())
}
