//! `kubectl rotate verify` end to end: it passes after a good rotation, and exits 1 when a
//! consumer was not restarted, a key is malformed, logs lack the pattern, or health fails;
//! 2 when it cannot check at all. Logs and health go through the real API server to the fake
//! kubelet's endpoints.

use std::path::Path;

use anyhow::{Result, ensure};
use base64::Engine;
use serde_json::Value;

use crate::TestFn;
use crate::support::{TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "verify_passes_after_a_good_rotation_with_logs_and_health",
            verify_passes_after_a_good_rotation_with_logs_and_health,
        ),
        (
            "verify_fails_when_a_consumer_was_not_restarted",
            verify_fails_when_a_consumer_was_not_restarted,
        ),
        (
            "verify_fails_on_a_malformed_key_or_a_trailing_newline",
            verify_fails_on_a_malformed_key_or_a_trailing_newline,
        ),
        (
            "verify_fails_when_logs_lack_the_pattern",
            verify_fails_when_logs_lack_the_pattern,
        ),
        (
            "verify_fails_when_health_fails",
            verify_fails_when_health_fails,
        ),
        (
            "verify_exits_2_when_it_cannot_check",
            verify_exits_2_when_it_cannot_check,
        ),
    ]
}

/// The rows of verify's table as (result, check, target).
fn rows(stdout: &str) -> Vec<(String, String, String)> {
    stdout
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cells = l.split_whitespace();
            Some((
                cells.next()?.to_string(),
                cells.next()?.to_string(),
                cells.next()?.to_string(),
            ))
        })
        .filter(|(result, ..)| ["PASS", "FAIL", "SKIP"].contains(&result.as_str()))
        .collect()
}

fn verify_passes_after_a_good_rotation_with_logs_and_health(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "vgood")?;
    env.seed_demo_app()?;
    let key = b"sk-proj-verifyme0123456789abcdefghijklmnopq\n";
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
    let values = env.secret_values("app-secrets")?;
    let run = env.rotate(&[
        "verify",
        "app-secrets",
        "--logs",
        "Secrets loaded successfully",
    ])?;
    run.success()?;
    assert_no_values(&run, &values)?;
    let rows = rows(&run.stdout);
    // The simulated app has no database and no Redis: the presets' login and rows checks do
    // not apply.
    ensure!(
        rows.iter().all(|(r, c, t)| r == "PASS"
            || (r == "SKIP"
                && ((c == "login" && (t == "postgres-password" || t == "redis-password"))
                    || (c == "rows" && t == "encryption-key")))),
        "{}",
        run.stdout
    );
    for expected in [
        ("secret", "secret/app-secrets"),
        ("key", "encryption-key"),
        ("rollout", "deployment/api"),
        ("rollout", "deployment/worker"),
        ("logs", "deployment/api"),
        ("logs", "deployment/worker"),
    ] {
        ensure!(
            rows.iter()
                .any(|(_, c, t)| c == expected.0 && t == expected.1),
            "missing {expected:?}:\n{}",
            run.stdout
        );
    }
    ensure!(
        !rows.iter().any(|(_, _, t)| t.contains("frontend")),
        "frontend is no consumer: {}",
        run.stdout
    );
    // Health through the API server's pod proxy, on the consumer that serves it.
    let run = env.rotate(&[
        "verify",
        "app-secrets",
        "openai-api-key",
        "--health",
        "8000/health",
        "-o",
        "json",
    ])?;
    let report: Value = serde_json::from_str(&run.stdout)?;
    let health: Vec<&Value> = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["check"] == "health")
        .collect();
    let api = health
        .iter()
        .find(|c| c["target"] == "deployment/api")
        .expect("api health check");
    ensure!(api["passed"] == true && api["skipped"] == false, "{report}");
    // worker declares no port 8000: not applicable, shown as skipped, not as passed.
    let worker = health
        .iter()
        .find(|c| c["target"] == "deployment/worker")
        .expect("worker health check");
    ensure!(
        worker["skipped"] == true && worker["passed"] == true,
        "{report}"
    );
    let run = env.rotate(&[
        "verify",
        "app-secrets",
        "openai-api-key",
        "--health",
        "8000/health",
    ])?;
    run.success()?;
    let table = self::rows(&run.stdout);
    ensure!(
        table
            .iter()
            .any(|(r, c, t)| r == "SKIP" && c == "health" && t == "deployment/worker"),
        "{}",
        run.stdout
    );
    ensure!(run.stdout.contains("skipped)."), "{}", run.stdout);
    Ok(())
}

fn verify_fails_when_a_consumer_was_not_restarted(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "vnorestart")?;
    env.seed_demo_app()?;
    std::thread::sleep(std::time::Duration::from_millis(1100)); // pods start in an earlier second
    env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
        "--restart",
        "none",
    ])?
    .success()?;
    let run = env.rotate(&["verify", "app-secrets", "redis-password"])?;
    run.failure(1)?;
    let failed: Vec<(String, String, String)> = rows(&run.stdout)
        .into_iter()
        .filter(|(r, ..)| r == "FAIL")
        .collect();
    ensure!(
        failed.len() == 2 && failed.iter().all(|(_, c, _)| c == "rollout"),
        "{}",
        run.stdout
    );
    ensure!(
        run.stdout.contains("before the rotation")
            && run.stdout.contains("still holds the old value"),
        "{}",
        run.stdout
    );
    // After a restart of both, it passes.
    env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;
    env.rotate(&["verify", "app-secrets", "redis-password"])?
        .success()?;
    Ok(())
}

fn verify_fails_on_a_malformed_key_or_a_trailing_newline(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "vmalformed")?;
    env.seed_demo_app()?;
    // A Fernet key in standard base64 of 16 bytes, and a password with the echo newline.
    let bad_fernet = base64::engine::general_purpose::STANDARD
        .encode(base64::engine::general_purpose::STANDARD.encode([1u8; 16]));
    let with_newline = base64::engine::general_purpose::STANDARD.encode(b"password-with-newline\n");
    let patch = format!(
        r#"{{"data":{{"encryption-key":"{bad_fernet}","postgres-password":"{with_newline}"}}}}"#
    );
    env.merge_patch_secret("app-secrets", &patch)?;
    let run = env.rotate(&[
        "verify",
        "app-secrets",
        "encryption-key",
        "postgres-password",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stdout
            .contains("is not a Fernet key: it decodes to 16 bytes"),
        "{}",
        run.stdout
    );
    ensure!(run.stdout.contains("ends with a newline"), "{}", run.stdout);
    ensure!(
        !run.stdout.contains("password-with-newline"),
        "the value is never quoted"
    );
    Ok(())
}

fn verify_fails_when_logs_lack_the_pattern(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "vlogs")?;
    env.seed_demo_app()?;
    let run = env.rotate(&[
        "verify",
        "app-secrets",
        "openai-api-key",
        "--logs",
        "database.*healthy and never seen",
    ])?;
    run.failure(1)?;
    let failed: Vec<(String, String, String)> = rows(&run.stdout)
        .into_iter()
        .filter(|(r, ..)| r == "FAIL")
        .collect();
    ensure!(
        !failed.is_empty() && failed.iter().all(|(_, c, _)| c == "logs"),
        "{}",
        run.stdout
    );
    ensure!(run.stdout.contains("no log line matches"), "{}", run.stdout);
    Ok(())
}

fn verify_fails_when_health_fails(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "vhealth")?;
    env.seed_demo_app()?;
    // api serves /health but not /ready: a 404 through the pod proxy.
    let run = env.rotate(&[
        "verify",
        "app-secrets",
        "openai-api-key",
        "--health",
        "8000/ready",
        "-o",
        "json",
    ])?;
    run.failure(1)?;
    let report: Value = serde_json::from_str(&run.stdout)?;
    let api = report["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["check"] == "health" && c["target"] == "deployment/api")
        .cloned();
    let api = api.unwrap_or_default();
    ensure!(
        api["passed"] == false && api["message"].as_str().is_some_and(|m| m.contains("404")),
        "{report}"
    );
    ensure!(report["passed"] == false, "{report}");
    Ok(())
}

fn verify_exits_2_when_it_cannot_check(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "vcannot")?;
    env.seed_demo_app()?;
    let run = env.rotate(&["verify", "app-secrets", "--context", "nobody"])?;
    run.failure(2)?;
    ensure!(run.stderr.contains("permission denied"), "{}", run.stderr);
    let run = env.rotate(&["verify", "no-such-secret"])?;
    run.failure(1)?;
    ensure!(run.stdout.contains("does not exist"), "{}", run.stdout);
    Ok(())
}
