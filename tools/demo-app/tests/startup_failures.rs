//! Start-up with wrong secrets: the app must log why and exit non-zero before serving, the way
//! a pod crash-loops after a bad rotation. Secrets are checked against real servers.

mod support;

use std::time::Duration;

use support::{AppProcess, Secrets, Stack};

/// Runs `demo-app <role>` to its exit; returns the exit code and the log.
fn run_to_exit(role: &str, env: &[(String, String)]) -> (Option<i32>, String) {
    let mut app = AppProcess::start(role, env);
    let status = app.wait_exit(Duration::from_secs(30));
    (status.code(), app.output())
}

fn assert_fails(role: &str, env: &[(String, String)], expected: &str) -> String {
    let (code, log) = run_to_exit(role, env);
    assert_eq!(code, Some(1), "exit code; log:\n{log}");
    let line = log.lines().find(|l| l.contains(expected));
    let line = line.unwrap_or_else(|| panic!("expected {expected:?} in the log:\n{log}"));
    eprintln!("{role} exited 1: {line}");
    assert!(
        !log.contains("Listening on") && !log.contains("Waiting for jobs"),
        "{log}"
    );
    log
}

#[test]
fn wrong_secrets_stop_start_up_with_the_servers_reason() {
    let stack = Stack::start();

    let wrong_postgres = Secrets {
        postgres_password: support::random_text(24),
        ..stack.secrets.clone()
    };
    let log = assert_fails(
        "api",
        &stack.env(&wrong_postgres),
        "database connection failed: password authentication failed for user \"ai_agents\"",
    );
    assert!(log.contains("Secrets loaded successfully"), "{log}");

    let wrong_redis = Secrets {
        redis_password: support::random_text(24),
        ..stack.secrets.clone()
    };
    let log = assert_fails(
        "api",
        &stack.env(&wrong_redis),
        "redis connection failed: WRONGPASS invalid username-password pair",
    );
    assert!(log.contains("database connection healthy"), "{log}");
    // The worker starts the same way.
    assert_fails(
        "worker",
        &stack.env(&wrong_redis),
        "redis connection failed: ",
    );

    // Another valid Fernet key: validation passes, the data does not decrypt.
    let wrong_key = Secrets {
        encryption_key: fernet::Fernet::generate_key(),
        ..stack.secrets.clone()
    };
    let log = assert_fails(
        "api",
        &stack.env(&wrong_key),
        "tenant config tenant-1 cannot be decrypted: ",
    );
    assert!(log.contains("redis connection healthy"), "{log}");
}

#[test]
fn malformed_or_missing_secrets_fail_validation() {
    // Validation comes before any connection, so no servers are needed: nothing listens on
    // these ports, and reaching them would fail differently.
    let empty = tempfile::tempdir().expect("temp dir");
    let base = |secrets: &Secrets| {
        let mut env = secrets.env();
        env.extend([
            ("DATABASE_PORT".to_string(), "1".to_string()),
            ("REDIS_PORT".to_string(), "1".to_string()),
            (
                "AI_AGENTS_SECRETS_DIR".to_string(),
                empty.path().display().to_string(),
            ),
        ]);
        env
    };
    let good = Secrets::random();

    let bad_openai = Secrets {
        openai_api_key: "sk-too-short".into(),
        ..good.clone()
    };
    assert_fails(
        "api",
        &base(&bad_openai),
        "Secret validation failed: openai-api-key does not look like an OpenAI key",
    );

    let bad_key = Secrets {
        encryption_key: "not-a-fernet-key".into(),
        ..good.clone()
    };
    assert_fails(
        "api",
        &base(&bad_key),
        "Secret validation failed: encryption-key is not a Fernet key",
    );

    let mut missing = base(&good);
    missing.retain(|(k, _)| k != "AI_AGENTS_REDIS_PASSWORD");
    assert_fails(
        "worker",
        &missing,
        "Secret validation failed: redis-password is missing",
    );

    let mut empty_value = base(&good);
    for (k, v) in &mut empty_value {
        if k == "AI_AGENTS_POSTGRES_PASSWORD" {
            v.clear();
        }
    }
    assert_fails(
        "api",
        &empty_value,
        "Secret validation failed: postgres-password is missing",
    );
}
