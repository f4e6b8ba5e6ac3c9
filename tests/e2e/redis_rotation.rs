//! `kubectl rotate redis` end to end (issue 12): the password changes on the demo's real
//! Redis 7 and in the Secret as one journaled run, against the real app (`api` and `worker` of
//! demo/app.yaml, which log in to Redis with the Secret's password and use it on every request
//! as a cache). Nothing is mocked: the server checks every password, `MONITOR` shows what
//! reached it, the load goes through the API server's proxy to the app's Service, and the kill
//! points are real SIGKILLs of the plugin at the engine's step boundaries.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use kubectl_rotate::plan::server::Server;
use kubectl_rotate::systems::redis::{self, Auth, Credentials};
use kubectl_rotate::values::SecretValue;

use crate::TestFn;
use crate::support::{Background, TestEnv};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "redis_preset_overlaps_passwords_under_load_and_a_redis_restart_keeps_the_new_one",
            redis_preset_overlaps_passwords_under_load_and_a_redis_restart_keeps_the_new_one,
        ),
        (
            "redis_replica_gets_the_new_password_and_keeps_replicating",
            redis_replica_gets_the_new_password_and_keeps_replicating,
        ),
        (
            "redis_rotation_killed_after_the_password_was_added_is_resumed",
            redis_rotation_killed_after_the_password_was_added_is_resumed,
        ),
        (
            "redis_rotation_killed_after_the_password_was_added_is_undone",
            redis_rotation_killed_after_the_password_was_added_is_undone,
        ),
        (
            "redis_rotation_killed_as_it_removed_the_old_password_is_resumed",
            redis_rotation_killed_as_it_removed_the_old_password_is_resumed,
        ),
        (
            "redis_requirepass_run_killed_after_it_set_requirepass_is_undone",
            redis_requirepass_run_killed_after_it_set_requirepass_is_undone,
        ),
        (
            "redis_rotation_whose_new_pods_fail_removes_the_new_password_again",
            redis_rotation_whose_new_pods_fail_removes_the_new_password_again,
        ),
        (
            "redis_preflight_warns_about_a_password_from_elsewhere_and_refuses_a_sentinel_setup",
            redis_preflight_warns_about_a_password_from_elsewhere_and_refuses_a_sentinel_setup,
        ),
        (
            "redis_without_acls_is_rotated_with_requirepass_and_the_preview_says_the_window",
            redis_without_acls_is_rotated_with_requirepass_and_the_preview_says_the_window,
        ),
        (
            "redis_users_in_an_acl_file_are_persisted_with_acl_save",
            redis_users_in_an_acl_file_are_persisted_with_acl_save,
        ),
        (
            "redis_rotation_sends_a_password_as_text_only_to_log_in",
            redis_rotation_sends_a_password_as_text_only_to_log_in,
        ),
        (
            "redis_requirepass_strategy_replaces_the_password_and_a_wrong_secret_is_refused",
            redis_requirepass_strategy_replaces_the_password_and_a_wrong_secret_is_refused,
        ),
    ]
}

/// The demo stack in a fresh namespace: PostgreSQL, Redis, the seeded tenants, and the app.
fn start(kubeconfig: &Path, label: &str) -> Result<TestEnv> {
    let env = TestEnv::new(kubeconfig, label)?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.wait_job_complete("seed-tenants")?;
    env.apply_demo_stack(&["api", "worker"])?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    Ok(env)
}

/// Whether `server` (in the test's namespace) accepts `user` with `password`, through the
/// API server, as the plugin reaches it.
fn login_as(env: &TestEnv, server: Server, user: Option<&str>, password: &[u8]) -> Result<Auth> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = crate::support::kube_client(&env.kubeconfig).await?;
        let password = SecretValue::new(password.to_vec());
        let credentials = Credentials {
            user,
            password: &password,
        };
        redis::check_login(&client, &env.namespace, &server, &credentials).await
    })
}

fn service() -> Server {
    Server::Service {
        name: "redis".into(),
        port: 6379,
    }
}

fn accepts(env: &TestEnv, password: &[u8]) -> Result<bool> {
    Ok(login_as(env, service(), None, password)? == Auth::Accepted)
}

/// The Secret holds `password`, Redis accepts it, and refuses `old`.
fn secret_and_redis_hold(env: &TestEnv, password: &[u8], old: &[u8]) -> Result<()> {
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] == password,
        "the Secret holds the expected password"
    );
    ensure!(
        accepts(env, password)?,
        "Redis accepts the password the Secret holds"
    );
    ensure!(!accepts(env, old)?, "Redis refuses the other password");
    Ok(())
}

/// `redis-cli` in a pod of `workload` (its own address), logged in with `password` and fed
/// `commands` on stdin (so neither the password nor a command is in any process's arguments).
fn redis_cli(env: &TestEnv, workload: &str, password: &[u8], commands: &str) -> Result<String> {
    let mut input = password.to_vec();
    input.push(b'\n');
    input.extend_from_slice(commands.as_bytes());
    let run = env.kubectl_with(
        &[
            "exec",
            "-i",
            workload,
            "-n",
            &env.namespace,
            "--",
            "sh",
            "-c",
            r#"read -r p; REDISCLI_AUTH="$p" exec redis-cli -h "$LISTEN_ADDRESS""#,
        ],
        &[],
        Some(&input),
    )?;
    run.success()?;
    Ok(run.stdout)
}

/// Every current pod of `app` logged `redis connection healthy`.
fn app_pods_healthy(env: &TestEnv, app: &str) -> Result<()> {
    env.pods_logged(app, "redis connection healthy")
}

/// Requests for a tenant's config (which reads the Redis cache on every request) through the
/// API server's proxy to the Service `api`, one every 50 ms, at most 2400 or 180 s.
struct Load {
    stop: Arc<AtomicBool>,
    worker: std::thread::JoinHandle<Result<(usize, Vec<String>)>>,
}

impl Load {
    fn start(env: &TestEnv) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let kubeconfig = env.kubeconfig.clone();
        let path = format!(
            "/api/v1/namespaces/{}/services/api:8000/proxy/api/v1/tenants/tenant-1/config",
            env.namespace
        );
        let worker = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = crate::support::kube_client(&kubeconfig).await?;
                let deadline = Instant::now() + Duration::from_secs(180);
                let (mut ok, mut failed) = (0usize, Vec::new());
                for _ in 0..2400 {
                    if flag.load(Ordering::SeqCst) || Instant::now() > deadline {
                        break;
                    }
                    let request = http::Request::get(&path).body(Vec::new())?;
                    match tokio::time::timeout(
                        Duration::from_secs(10),
                        client.request_text(request),
                    )
                    .await
                    {
                        Ok(Ok(body)) if body.contains("tenant-1") => ok += 1,
                        Ok(Ok(body)) => failed.push(format!("unexpected answer {body}")),
                        Ok(Err(err)) => failed.push(err.to_string()),
                        Err(_) => failed.push("timed out".into()),
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                anyhow::Ok((ok, failed))
            })
        });
        Load { stop, worker }
    }

    fn finish(self) -> Result<(usize, Vec<String>)> {
        self.stop.store(true, Ordering::SeqCst);
        self.worker
            .join()
            .map_err(|_| anyhow::anyhow!("the load thread panicked"))?
    }
}

fn hash(password: &[u8]) -> String {
    redis::password_hash(&SecretValue::new(password.to_vec()))
}

fn redis_preset_overlaps_passwords_under_load_and_a_redis_restart_keeps_the_new_one(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "redis-overlap")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["redis-password"].clone();
    let redis_restarted = env.restarted_at("deployment", "redis")?;

    // MONITOR on the server for the whole rotation (its password on stdin).
    let mut input = old.clone();
    input.push(b'\n');
    let monitor = env.spawn_kubectl(
        &[
            "exec",
            "-i",
            "deployment/redis",
            "-n",
            &env.namespace,
            "--",
            "sh",
            "-c",
            r#"read -r p; REDISCLI_AUTH="$p" exec redis-cli -h "$LISTEN_ADDRESS" MONITOR"#,
        ],
        &input,
    )?;
    let load = Load::start(&env);
    std::thread::sleep(Duration::from_secs(2));

    let run = env.rotate(&["redis", "-y"])?;
    std::thread::sleep(Duration::from_secs(2));
    let (ok, failed) = load.finish()?;
    monitor.signal("TERM")?;
    let monitored = monitor.finish()?;
    run.success()?;
    crate::support::assert_no_values(&run, &before)?;
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    ensure!(new != old, "the Secret holds a new password");
    ensure!(
        new.len() == 32
            && new
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'),
        "32 URL-safe characters, as the runbook asks"
    );
    secret_and_redis_hold(&env, &new, &old)?;
    let output = format!("{}{}", run.stdout, run.stderr);
    for step in [
        "add-password:",
        "check-logs:",
        "check-auth:",
        "remove-password:",
    ] {
        ensure!(output.contains(step), "the run reports {step}:\n{output}");
    }
    ensure!(
        output.contains("deployment/redis") && output.contains("it is a Redis server"),
        "Redis itself is listed as not restarted:\n{output}"
    );
    ensure!(
        env.restarted_at("deployment", "redis")? == redis_restarted,
        "and it was not restarted"
    );
    ensure!(
        failed.is_empty() && ok >= 20,
        "no request failed during the rotation: {ok} ok, {} failed: {:?}",
        failed.len(),
        failed.iter().take(5).collect::<Vec<_>>()
    );
    app_pods_healthy(&env, "api")?;
    app_pods_healthy(&env, "worker")?;

    // What MONITOR showed during the rotation: logins, redacted, and no password. (Redis 7
    // leaves admin commands such as ACL and CONFIG out of MONITOR altogether, so the bytes the
    // plugin sends are checked on the wire in
    // `redis_rotation_sends_a_password_as_text_only_to_log_in`.)
    let seen = &monitored.stdout;
    ensure!(
        seen.contains("\"AUTH\" \"(redacted)\""),
        "MONITOR captured the rotation's logins ({} bytes captured)",
        seen.len()
    );
    for value in [&old, &new] {
        ensure!(
            !seen.contains(String::from_utf8_lossy(value).as_ref()),
            "a password in plain text reached the server"
        );
    }

    // The Redis process restarts in place (same config file): the persisted users win.
    let _ = redis_cli(&env, "deployment/redis", &new, "SHUTDOWN NOSAVE\n");
    wait_for(&env, "Redis to come back with the new password", || {
        accepts(&env, &new)
    })?;
    ensure!(
        !accepts(&env, &old)?,
        "a restarted Redis keeps refusing the old password"
    );
    // A new pod (fresh config file from the Secret) has the new password too.
    env.kubectl(&[
        "rollout",
        "restart",
        "deployment/redis",
        "-n",
        &env.namespace,
    ])?
    .success()?;
    env.wait_rolled_out(&["deployment/redis"])?;
    wait_for(&env, "the new Redis pod to take the new password", || {
        accepts(&env, &new)
    })?;
    ensure!(!accepts(&env, &old)?, "the new pod refuses the old one");

    // The app's pools log in again (its readiness pings Redis); then verify. Ready must hold
    // for longer than the pools' recycle time (5 s in demo/app.yaml): a pod can still turn
    // unready when its pool, opened before the Redis restart, logs in again.
    let mut ready_since: Option<Instant> = None;
    wait_for(&env, "the api pods to be Ready for 6 s", || {
        let api = env.get_json("deployment", "api")?;
        if api["status"]["readyReplicas"].as_i64() != Some(2) {
            ready_since = None;
            return Ok(false);
        }
        let since = *ready_since.get_or_insert_with(Instant::now);
        Ok(since.elapsed() >= Duration::from_secs(6))
    })?;
    let verify = env.rotate(&["verify", "app-secrets", "redis-password"])?;
    verify.success()?;
    ensure!(
        verify
            .stdout
            .contains("accepts default's login with redis-password"),
        "verify logs in to Redis:\n{}",
        verify.stdout
    );
    Ok(())
}

/// Polls `check` every 250 ms for at most 60 s.
fn wait_for(_env: &TestEnv, what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if check().unwrap_or(false) {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "waited 60 s for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A variant of the demo's Redis Deployment (demo/app.yaml): named `name`, listening on
/// `port`, with `env` (YAML list items) added to its container's environment.
fn redis_variant(name: &str, port: u16, env: &str) -> Result<String> {
    let redis = crate::support::demo_object("Deployment", "redis")?;
    let variant = redis
        .replace("  name: redis\n", &format!("  name: {name}\n"))
        .replace("{app: redis}", &format!("{{app: {name}}}"))
        .replace("containerPort: 6379", &format!("containerPort: {port}"))
        .replace("          env:\n", &format!("          env:\n{env}"));
    ensure!(
        variant.contains(&format!("app: {name}")) && variant.contains(env),
        "the demo's Redis Deployment changed shape:\n{redis}"
    );
    Ok(variant)
}

/// A replica of the demo's Redis: the same image, its password and `masterauth` from the
/// Secret at each start (as the Bitnami chart does).
fn replica() -> Result<String> {
    redis_variant(
        "redis-replica",
        6379,
        "            - {name: REDIS_REPLICA_OF, value: \"$(REDIS_SERVICE_HOST) $(REDIS_SERVICE_PORT)\"}\n\
         \x20           - name: REDIS_MASTER_PASSWORD\n\
         \x20             valueFrom:\n\
         \x20               secretKeyRef: {name: app-secrets, key: redis-password}\n",
    )
}

fn replication(env: &TestEnv, workload: &str, password: &[u8]) -> Result<String> {
    redis_cli(env, workload, password, "INFO replication\n")
}

fn redis_replica_gets_the_new_password_and_keeps_replicating(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "redis-replica")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["redis"])?;
    env.wait_rolled_out(&["deployment/redis"])?;
    env.apply(&replica()?)?;
    env.wait_rolled_out(&["deployment/redis-replica"])?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    wait_for(&env, "the replica to connect", || {
        Ok(replication(&env, "deployment/redis-replica", &old)?.contains("master_link_status:up"))
    })?;

    let preview = env.rotate(&["redis", "--dry-run=client"])?;
    preview.success()?;
    ensure!(
        preview.stdout.contains("replica pod/redis-replica-"),
        "the preflight found the replica through INFO replication:\n{}",
        preview.stdout
    );
    let run = env.rotate(&["redis", "-y"])?;
    run.success()?;
    let output = format!("{}{}", run.stdout, run.stderr);
    ensure!(
        output.contains("deployment/redis-replica") && output.contains("it is a Redis server"),
        "the replica is a server, not restarted:\n{output}"
    );
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    secret_and_redis_hold(&env, &new, &old)?;
    let pod = env
        .kubectl(&[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "app=redis-replica",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])?
        .stdout;
    let replica = Server::Pod {
        name: pod.trim().to_string(),
        port: 6379,
    };
    ensure!(
        login_as(&env, replica.clone(), None, &new)? == Auth::Accepted,
        "the replica accepts the new password (ACL SETUSER is not replicated: the run set it there)"
    );
    ensure!(
        matches!(
            login_as(&env, replica.clone(), None, &old)?,
            Auth::Rejected(_)
        ),
        "and refuses the old one"
    );
    // Replication goes on; and a new link (the primary drops it) logs in with the new
    // masterauth.
    redis_cli(&env, "deployment/redis", &new, "SET rotated before-kill\n")?;
    redis_cli(&env, "deployment/redis", &new, "CLIENT KILL TYPE replica\n")?;
    wait_for(&env, "the replica to reconnect", || {
        Ok(replication(&env, "deployment/redis-replica", &new)?.contains("master_link_status:up"))
    })?;
    redis_cli(&env, "deployment/redis", &new, "SET rotated after-kill\n")?;
    wait_for(&env, "the write to reach the replica", || {
        Ok(
            redis_cli(&env, "deployment/redis-replica", &new, "GET rotated\n")?
                .contains("after-kill"),
        )
    })?;
    ensure!(
        replication(&env, "deployment/redis", &new)?.contains("connected_slaves:1"),
        "the primary has its replica"
    );

    // Rolling the key back is an overlap back to the backed-up value, replica included.
    let rollback = env.rotate(&["rollback", "app-secrets", "redis-password", "-y"])?;
    rollback.success()?;
    secret_and_redis_hold(&env, &old, &new)?;
    ensure!(
        login_as(&env, replica.clone(), None, &old)? == Auth::Accepted
            && matches!(login_as(&env, replica, None, &new)?, Auth::Rejected(_)),
        "the replica is back to the old password too"
    );
    redis_cli(&env, "deployment/redis", &old, "CLIENT KILL TYPE replica\n")?;
    wait_for(
        &env,
        "the replica to reconnect with the old masterauth",
        || {
            Ok(replication(&env, "deployment/redis-replica", &old)?
                .contains("master_link_status:up"))
        },
    )?;
    Ok(())
}

/// Starts `kubectl rotate redis -y`, SIGKILLs it right after `add-password`'s write and before
/// its journal entry (the step stays `started`: resume and undo must read Redis to find out
/// whether it happened), before the patch; returns the old password.
fn kill_after_add_password(env: &TestEnv) -> Result<Vec<u8>> {
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    kill_after(env, &["redis", "-y"], "add-password")?;
    // The moment between the writes: Redis has both passwords, the Secret the old one.
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] == old,
        "the Secret was not patched yet"
    );
    ensure!(accepts(env, &old)?, "the old password still works");
    Ok(old)
}

fn redis_rotation_killed_after_the_password_was_added_is_resumed(kubeconfig: &Path) -> Result<()> {
    let env = start(kubeconfig, "redis-kill-resume")?;
    let old = kill_after_add_password(&env)?;
    let resume = env.rotate(&["resume", "app-secrets", "-y"])?;
    resume.success()?;
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    ensure!(new != old, "the Secret holds the new password");
    secret_and_redis_hold(&env, &new, &old)?;
    app_pods_healthy(&env, "api")?;
    Ok(())
}

fn redis_rotation_killed_after_the_password_was_added_is_undone(kubeconfig: &Path) -> Result<()> {
    let env = start(kubeconfig, "redis-kill-undo")?;
    let old = kill_after_add_password(&env)?;
    let journal = env.journals_of("app-secrets")?;
    let id = journal[0]["id"].as_str().context("run id")?.to_string();
    let undo = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
    undo.success()?;
    let output = format!("{}{}", undo.stdout, undo.stderr);
    ensure!(
        output.contains("remove-password"),
        "the undo removed the new password:\n{output}"
    );
    // Only the old password is left, and the Secret never changed.
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] == old,
        "the Secret holds the old password"
    );
    ensure!(accepts(&env, &old)?, "Redis accepts the old password");
    ensure!(
        password_count(&env, &old)? == 1
            && redis_cli(&env, "deployment/redis", &old, "ACL GETUSER default\n")?
                .contains(&hash(&old)),
        "the default user has exactly one password again, the old one"
    );
    app_pods_healthy(&env, "api")?;
    Ok(())
}

/// Starts `kubectl rotate ARGS` and SIGKILLs it right after the write of step `step` and
/// before its journal entry (the step stays `started`); returns the run's id.
fn kill_after(env: &TestEnv, args: &[&str], step: &str) -> Result<String> {
    let journal = env.kill_rotate_at(args, &format!("after:{step}"))?;
    Ok(journal["id"].as_str().context("run id")?.to_string())
}

/// The default user's password hashes, as `ACL GETUSER` lists them.
fn password_count(env: &TestEnv, password: &[u8]) -> Result<usize> {
    let hashes = redis_cli(env, "deployment/redis", password, "ACL GETUSER default\n")?;
    Ok(hashes
        .lines()
        .filter(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .count())
}

/// SIGKILL after the old password was removed (the last write) but before the journal said
/// so: `resume` reads the user's password hashes, finds the step done, and finishes.
fn redis_rotation_killed_as_it_removed_the_old_password_is_resumed(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "redis-kill-remove")?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    kill_after(&env, &["redis", "-y"], "remove-password")?;
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    ensure!(new != old, "the Secret was patched before the kill");
    let resume = env.rotate(&["resume", "app-secrets", "-y"])?;
    resume.success()?;
    let output = format!("{}{}", resume.stdout, resume.stderr);
    ensure!(
        output.contains("the old password is gone"),
        "resume read back that the old password was already removed:\n{output}"
    );
    secret_and_redis_hold(&env, &new, &old)?;
    ensure!(
        password_count(&env, &new)? == 1,
        "the default user has exactly one password, the new one"
    );
    let journals = env.journals_of("app-secrets")?;
    ensure!(
        journals.len() == 1 && journals[0]["state"] == "succeeded",
        "the run is finished: {:?}",
        journals.iter().map(|j| &j["state"]).collect::<Vec<_>>()
    );
    app_pods_healthy(&env, "api")?;
    Ok(())
}

/// requirepass strategy, SIGKILL right after `CONFIG SET requirepass` (before the patch): the
/// old pods are locked out of new logins until the undo, which puts the old password back.
fn redis_requirepass_run_killed_after_it_set_requirepass_is_undone(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "redis-kill-reqpass")?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    let id = kill_after(
        &env,
        &["redis", "--strategy", "requirepass", "-y"],
        "set-requirepass",
    )?;
    ensure!(!accepts(&env, &old)?, "requirepass changed before the kill");
    let undo = env.rotate(&["rollback", "app-secrets", "--run", &id, "-y"])?;
    undo.success()?;
    let output = format!("{}{}", undo.stdout, undo.stderr);
    ensure!(
        output.contains("set-requirepass"),
        "the undo set requirepass back:\n{output}"
    );
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] == old,
        "the Secret still holds the old password"
    );
    ensure!(accepts(&env, &old)?, "Redis accepts it again");
    wait_for(&env, "the api pods to be Ready again", || {
        let api = env.get_json("deployment", "api")?;
        Ok(api["status"]["readyReplicas"].as_i64() == Some(2))
    })?;
    app_pods_healthy(&env, "api")?;
    Ok(())
}

/// Another ACL user shares the password (the rotation changes only the preset's user): the
/// new pods of a workload that logs in as it fail, the run rolls back, and the undo takes the
/// new password away again once the old pods are back.
fn redis_rotation_whose_new_pods_fail_removes_the_new_password_again(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "redis-undo")?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    redis_cli(
        &env,
        "deployment/redis",
        &old,
        &format!("ACL SETUSER reporting on #{} ~* &* +@all\n", hash(&old)),
    )?;
    let api = crate::support::demo_object("Deployment", "api")?;
    let reporting = api
        .replace("name: api", "name: reporting")
        .replace("app: api", "app: reporting")
        .replace("replicas: 2", "replicas: 1")
        .replace(
            "            - {name: REDIS_PORT, value: $(REDIS_SERVICE_PORT)}\n",
            "            - {name: REDIS_PORT, value: $(REDIS_SERVICE_PORT)}\n            - {name: REDIS_USER, value: reporting}\n",
        );
    ensure!(
        reporting.contains("value: reporting"),
        "reporting logs in to Redis as itself"
    );
    env.apply(&reporting)?;
    env.wait_rolled_out(&["deployment/reporting"])?;

    let run = env.rotate(&["redis", "-y", "--timeout", "90s"])?;
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
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] == old,
        "the Secret holds the old password again"
    );
    ensure!(accepts(&env, &old)?, "Redis accepts it");
    let count = password_count(&env, &old)?;
    ensure!(
        count == 1,
        "the new password was removed again (the default user has {count} passwords)"
    );
    ensure!(
        login_as(&env, service(), Some("reporting"), &old)? == Auth::Accepted,
        "the other user was never touched"
    );
    env.wait_rolled_out(&["deployment/api", "deployment/reporting"])?;
    app_pods_healthy(&env, "api")?;
    Ok(())
}

fn redis_requirepass_strategy_replaces_the_password_and_a_wrong_secret_is_refused(
    kubeconfig: &Path,
) -> Result<()> {
    let env = start(kubeconfig, "redis-requirepass")?;
    let before = env.secret_values("app-secrets")?;
    let old = before["redis-password"].clone();
    let preview = env.rotate(&["redis", "--strategy", "requirepass", "--dry-run=client"])?;
    preview.success()?;
    ensure!(
        preview
            .stdout
            .contains("Downtime: a short window (requirepass)")
            && preview
                .stdout
                .contains("CONFIG SET requirepass <the new redis-password>"),
        "the preview says the window and the step:\n{}",
        preview.stdout
    );
    let run = env.rotate(&["redis", "--strategy", "requirepass", "-y"])?;
    run.success()?;
    crate::support::assert_no_values(&run, &before)?;
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    secret_and_redis_hold(&env, &new, &old)?;
    app_pods_healthy(&env, "api")?;

    // `secret` on the preset's key would change only the Secret: refused, naming the preset.
    let alone = env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?;
    alone.failure(1)?;
    ensure!(
        alone
            .stderr
            .contains("is the Redis password of preset redis")
            && alone.stderr.contains("`kubectl rotate redis -n ")
            && alone.stderr.contains("nothing was changed"),
        "{}",
        alone.stderr
    );
    ensure!(
        env.secret_values("app-secrets")?["redis-password"] == new,
        "the Secret was not changed"
    );

    // A strategy for another preset is a usage error.
    let wrong = env.rotate(&["redis", "--strategy", "single-user", "-y"])?;
    wrong.failure(2)?;
    ensure!(
        wrong.stderr.contains("overlap or requirepass"),
        "{}",
        wrong.stderr
    );

    // The Secret and the server disagree: refused before anything is written.
    let other = crate::support::random_password();
    let patch = serde_json::json!({"stringData": {
        "redis-password": String::from_utf8_lossy(other.expose())
    }});
    env.kubectl_with(
        &[
            "patch",
            "secret",
            "app-secrets",
            "-n",
            &env.namespace,
            "--type",
            "merge",
            "--patch-file",
            "/dev/stdin",
        ],
        &[],
        Some(patch.to_string().as_bytes()),
    )?
    .success()?;
    let journals = env.journals_of("app-secrets")?.len();
    let refused = env.rotate(&["redis", "-y"])?;
    refused.failure(1)?;
    ensure!(
        refused
            .stderr
            .contains("refuses default's login with the password the Secret holds now")
            && refused.stderr.contains("nothing was changed"),
        "{}",
        refused.stderr
    );
    ensure!(
        env.journals_of("app-secrets")?.len() == journals,
        "the refusal left no run journal"
    );
    ensure!(accepts(&env, &new)?, "Redis was not touched");
    if env.secret_values("app-secrets")?["redis-password"] != other.expose() {
        bail!("the Secret was not touched");
    }
    Ok(())
}

/// A TCP relay on loopback to `target` that records every byte clients send (at most 200
/// connections, 120 s): the wire between the plugin and Redis, as a capture would show it.
struct Relay {
    port: u16,
    sent: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(target: std::net::SocketAddr) -> Result<Relay> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let sent = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, flag) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut accepted = 0;
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline && accepted < 200 {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                accepted += 1;
                let Ok(server) =
                    std::net::TcpStream::connect_timeout(&target, Duration::from_secs(5))
                else {
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                let record = record.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 8192];
                    while let Ok(n) = c_read.read(&mut buffer) {
                        if n == 0 || s_write.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buffer[..n]);
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Ok(Relay { port, sent, stop })
    }

    fn sent(&self) -> Vec<u8> {
        self.stop.store(true, Ordering::SeqCst);
        self.sent.lock().unwrap().clone()
    }
}

/// Every RESP command (`*N` then `$len` bulk strings) in `bytes`, as its arguments.
fn resp_commands(bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut commands = Vec::new();
    let mut at = 0;
    let line = |from: usize| -> Option<(usize, usize)> {
        let end = bytes[from..].windows(2).position(|w| w == b"\r\n")? + from;
        Some((end, end + 2))
    };
    while at < bytes.len() {
        if bytes[at] != b'*' {
            break;
        }
        let Some((end, next)) = line(at) else { break };
        let count: usize = std::str::from_utf8(&bytes[at + 1..end])
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        at = next;
        let mut args = Vec::new();
        for _ in 0..count {
            let Some((end, next)) = line(at) else { break };
            let len: usize = std::str::from_utf8(&bytes[at + 1..end])
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            args.push(bytes[next..(next + len).min(bytes.len())].to_vec());
            at = next + len + 2;
        }
        commands.push(args);
    }
    commands
}

/// The plugin reaches Redis at `HOST:PORT` through a relay that records the wire: the new
/// password reaches the server as text only as an `AUTH` argument (logging in is what a
/// password is for); `ACL SETUSER` carries its SHA-256, and the old one is removed by hash.
fn redis_rotation_sends_a_password_as_text_only_to_log_in(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "redis-wire")?;
    env.create_demo_secrets()?;
    env.apply_demo_stack(&["redis"])?;
    env.wait_rolled_out(&["deployment/redis"])?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    let ip = env
        .kubectl(&[
            "get",
            "pods",
            "-n",
            &env.namespace,
            "-l",
            "app=redis",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ])?
        .stdout;
    let relay = Relay::start(format!("{}:6379", ip.trim()).parse()?)?;
    let config = tempfile::tempdir()?;
    let path = config.path().join("config.yaml");
    std::fs::write(
        &path,
        format!(
            "presets:\n  redis:\n    redis:\n      server: 127.0.0.1:{}\n",
            relay.port
        ),
    )?;
    let run = env.rotate(&["redis", "-y", "--config", path.to_str().context("utf-8")?])?;
    run.success()?;
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    secret_and_redis_hold(&env, &new, &old)?;
    let commands = resp_commands(&relay.sent());
    // A command's name (and subcommand), never its other arguments: a failure message must
    // not print a password.
    let name = |c: &Vec<Vec<u8>>| {
        let first = c
            .first()
            .map(|a| String::from_utf8_lossy(a).to_uppercase())
            .unwrap_or_default();
        match (first.as_str(), c.get(1)) {
            ("ACL" | "CONFIG" | "CLIENT" | "INFO", Some(sub)) => {
                format!("{first} {}", String::from_utf8_lossy(sub).to_uppercase())
            }
            _ => first,
        }
    };
    ensure!(
        commands.iter().any(|c| name(c) == "ACL SETUSER"
            && c.get(3) == Some(&format!("#{}", hash(&new)).into_bytes())),
        "the wire holds ACL SETUSER default #<sha256 of the new password> ({} commands seen: {:?})",
        commands.len(),
        commands.iter().map(name).collect::<Vec<_>>()
    );
    ensure!(
        commands.iter().any(|c| name(c) == "ACL SETUSER"
            && c.get(3) == Some(&format!("!{}", hash(&old)).into_bytes())),
        "and the removal of the old one by its hash"
    );
    for command in &commands {
        let holds = command.iter().any(|a| a == &new || a == &old);
        ensure!(
            !holds || name(command) == "AUTH" || name(command) == "HELLO",
            "a password as text outside a login: {}",
            name(command)
        );
    }
    Ok(())
}

/// A Redis Sentinel watching the demo's Redis (its `auth-pass` from the Secret).
fn sentinel() -> Result<String> {
    redis_variant(
        "redis-sentinel",
        26379,
        "            - {name: REDIS_SENTINEL_MONITOR, value: \"$(REDIS_SERVICE_HOST) $(REDIS_SERVICE_PORT)\"}\n",
    )
}

/// The Redis server reads its password from another Secret: the preview warns that a restart
/// may bring the old password back. Then a Sentinel watches it: the rotation is refused before
/// anything is written (a Sentinel's `auth-pass` would be left behind).
fn redis_preflight_warns_about_a_password_from_elsewhere_and_refuses_a_sentinel_setup(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "redis-sentinel")?;
    env.create_demo_secrets()?;
    let before = env.secret_values("app-secrets")?;
    let old = before["redis-password"].clone();
    // The same password in a Secret of the server's own (on stdin, never argv).
    let own = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "redis-own"},
        "stringData": {"password": String::from_utf8_lossy(&old)},
    });
    env.apply(&own.to_string())?;
    let redis = crate::support::demo_object("Deployment", "redis")?.replace(
        "secretKeyRef: {name: app-secrets, key: redis-password}",
        "secretKeyRef: {name: redis-own, key: password}",
    );
    ensure!(redis.contains("redis-own"), "the server reads redis-own");
    env.apply(&crate::support::demo_object("Service", "redis")?)?;
    env.apply(&redis)?;
    env.wait_rolled_out(&["deployment/redis"])?;
    let preview = env.rotate(&["redis", "--dry-run=client"])?;
    preview.success()?;
    ensure!(
        preview.stdout.contains(
            "Warning: deployment/redis runs Redis but does not read its password from Secret app-secrets key redis-password"
        ) && preview.stdout.contains("a restart brings the old password back"),
        "the preview warns:\n{}",
        preview.stdout
    );

    env.apply(&sentinel()?)?;
    env.wait_rolled_out(&["deployment/redis-sentinel"])?;
    wait_for(&env, "the Sentinel to connect to the primary", || {
        Ok(redis_cli(&env, "deployment/redis", &old, "CLIENT LIST\n")?.contains("name=sentinel-"))
    })?;
    let journals = env.journals_of("app-secrets")?.len();
    let refused = env.rotate(&["redis", "-y"])?;
    refused.failure(1)?;
    ensure!(
        refused.stderr.contains("is watched by Redis Sentinel")
            && refused.stderr.contains("nothing was changed"),
        "refused, saying why:\n{}",
        refused.stderr
    );
    ensure!(
        env.secret_values("app-secrets")? == before,
        "the Secret was not touched"
    );
    ensure!(accepts(&env, &old)?, "nor Redis");
    ensure!(
        env.journals_of("app-secrets")?.len() == journals,
        "and no run was started"
    );
    Ok(())
}

/// A Redis whose `ACL` command is disabled (`REDIS_DISABLE_COMMANDS=ACL`, as the Bitnami image
/// offers): to the plugin it is a server without ACLs, as before Redis 6. The rotation falls
/// back to requirepass by itself and says so; asking for the overlap is refused.
fn redis_without_acls_is_rotated_with_requirepass_and_the_preview_says_the_window(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "redis-noacl")?;
    env.create_demo_secrets()?;
    let redis = crate::support::demo_object("Deployment", "redis")?.replace(
        "          env:\n",
        "          env:\n            - {name: REDIS_DISABLE_COMMANDS, value: ACL}\n",
    );
    ensure!(redis.contains("REDIS_DISABLE_COMMANDS"), "ACL disabled");
    env.apply_demo_stack(&["postgres", "redis", "seed-tenants"])?;
    env.apply(&redis)?;
    env.wait_rolled_out(&["deployment/redis"])?;
    env.wait_job_complete("seed-tenants")?;
    env.apply_demo_stack(&["api", "worker"])?;
    env.wait_rolled_out(&["deployment/api", "deployment/worker"])?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    ensure!(
        redis_cli(&env, "deployment/redis", &old, "ACL WHOAMI\n")?.contains("unknown command"),
        "the server answers ACL as an unknown command"
    );

    let preview = env.rotate(&["redis", "--dry-run=client"])?;
    preview.success()?;
    for line in [
        "no ACLs",
        "Strategy: requirepass",
        "Downtime: a short window (requirepass)",
        "CONFIG SET requirepass <the new redis-password>",
    ] {
        ensure!(
            preview.stdout.contains(line),
            "the preview says {line:?}:\n{}",
            preview.stdout
        );
    }
    let overlap = env.rotate(&["redis", "--strategy", "overlap", "-y"])?;
    overlap.failure(1)?;
    ensure!(
        overlap.stderr.contains("has no ACLs")
            && overlap
                .stderr
                .contains("--strategy overlap is not possible"),
        "{}",
        overlap.stderr
    );
    let run = env.rotate(&["redis", "-y"])?;
    run.success()?;
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    secret_and_redis_hold(&env, &new, &old)?;
    app_pods_healthy(&env, "api")?;
    // Persisted with CONFIG REWRITE: a restart of the process in place keeps it.
    let _ = redis_cli(&env, "deployment/redis", &new, "SHUTDOWN NOSAVE\n");
    wait_for(&env, "Redis to come back with the new password", || {
        accepts(&env, &new)
    })?;
    ensure!(!accepts(&env, &old)?, "and refuses the old one");
    Ok(())
}

/// A Redis whose users live in an ACL file (`REDIS_ACLFILE=yes`: written once, at the first
/// start, with the Secret's password; no `requirepass`): the rotation persists with `ACL SAVE`,
/// so a restart of the process in place, which reads only that file, keeps the new password
/// (without the save it would bring the old one back).
fn redis_users_in_an_acl_file_are_persisted_with_acl_save(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "redis-aclfile")?;
    env.create_demo_secrets()?;
    let redis = crate::support::demo_object("Deployment", "redis")?.replace(
        "          env:\n",
        "          env:\n            - {name: REDIS_ACLFILE, value: \"yes\"}\n",
    );
    ensure!(redis.contains("REDIS_ACLFILE"), "users in an ACL file");
    env.apply_demo_stack(&["redis"])?;
    env.apply(&redis)?;
    env.wait_rolled_out(&["deployment/redis"])?;
    let old = env.secret_values("app-secrets")?["redis-password"].clone();
    wait_for(
        &env,
        "the ACL-file Redis to take the Secret's password",
        || accepts(&env, &old),
    )?;
    let preview = env.rotate(&["redis", "--dry-run=client"])?;
    preview.success()?;
    ensure!(
        preview.stdout.contains("persists by ACL SAVE to ") && preview.stdout.contains("users.acl"),
        "the preview says how it persists:\n{}",
        preview.stdout
    );
    let run = env.rotate(&["redis", "-y"])?;
    run.success()?;
    ensure!(
        format!("{}{}", run.stdout, run.stderr).contains("ACL SAVE to "),
        "the run saved the ACL file:\n{}",
        run.stdout
    );
    let new = env.secret_values("app-secrets")?["redis-password"].clone();
    secret_and_redis_hold(&env, &new, &old)?;
    let _ = redis_cli(&env, "deployment/redis", &new, "SHUTDOWN NOSAVE\n");
    std::thread::sleep(Duration::from_secs(1));
    wait_for(&env, "Redis to come back with the new password", || {
        accepts(&env, &new)
    })?;
    ensure!(
        !accepts(&env, &old)?,
        "the restarted Redis read the saved ACL file: the old password stays gone"
    );
    Ok(())
}

impl TestEnv {
    /// Starts kubectl with `args` in the background, `input` on its stdin.
    fn spawn_kubectl(&self, args: &[&str], input: &[u8]) -> Result<Background> {
        crate::support::spawn_kubectl(self, args, input)
    }
}
