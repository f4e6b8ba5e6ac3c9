//! The api role against real PostgreSQL and Redis servers: start-up log, health, tenant configs
//! with the Redis cache, secrets from a Secret-volume-like directory, and what a running pod
//! does when a password changes under it (pooled connections are recycled after 1 s here).

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{AppProcess, Stack, header, http_get};

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// GETs `path` until the status is `want`, at most 40 times, 250 ms apart (10 s).
fn poll_status(port: u16, path: &str, want: u16) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..40 {
        let (status, _, body) = http_get(port, path);
        if status == want {
            return (status, body);
        }
        last = (status, body);
        thread::sleep(Duration::from_millis(250));
    }
    panic!("{path} never answered {want}; last: {} {}", last.0, last.1);
}

#[test]
fn api_starts_serves_health_and_cached_tenant_configs() {
    let stack = Stack::start();
    let mut app = AppProcess::start("api", &stack.env(&stack.secrets));
    let port = app.wait_listening();

    let lines = app.lines();
    assert_eq!(
        lines[..6],
        [
            "Starting AI Agents API".to_string(),
            "Secrets loaded successfully".into(),
            "database connection healthy".into(),
            "redis connection healthy".into(),
            "Tenant configs decrypted: 3".into(),
            format!("Listening on 127.0.0.1:{port}"),
        ],
        "start-up lines; log:\n{}",
        app.output()
    );

    for path in ["/health", "/api/v1/health"] {
        let (status, _, body) = http_get(port, path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            json_body(&body),
            json!({"status": "healthy", "database": "healthy", "redis": "healthy"})
        );
    }

    let expected = json!({"tenant": "tenant-1", "model": "gpt-4o", "max_tokens": 1000});
    let (status, headers, body) = http_get(port, "/api/v1/tenants/tenant-1/config");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_body(&body), expected);
    assert_eq!(header(&headers, "x-cache"), Some("miss"));

    // The decrypted config is now in Redis with a 30 s lifetime, and the next read uses it.
    let mut redis = stack.redis.connect();
    let ttl: i64 = redis::cmd("TTL")
        .arg("tenant:tenant-1:config")
        .query(&mut redis)
        .expect("TTL");
    assert!((1..=30).contains(&ttl), "cache TTL {ttl}");
    let cached: String = redis::cmd("GET")
        .arg("tenant:tenant-1:config")
        .query(&mut redis)
        .expect("GET");
    assert_eq!(json_body(&cached), expected);
    let (status, headers, body) = http_get(port, "/api/v1/tenants/tenant-1/config");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_body(&body), expected);
    assert_eq!(header(&headers, "x-cache"), Some("hit"));

    let (status, _, _) = http_get(port, "/api/v1/tenants/nobody/config");
    assert_eq!(status, 404);
    let (status, _, _) = http_get(port, "/nothing-here");
    assert_eq!(status, 404);

    // Seeding again changes nothing.
    assert_eq!(stack.seed().trim(), "Seeded tenants: 3 (0 new)");

    if let Some(kib) = app.rss_kib() {
        eprintln!("api resident memory after a few requests: {kib} KiB");
    }

    app.signal("TERM");
    let status = app.wait_exit(Duration::from_secs(5));
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM; log:\n{}",
        app.output()
    );

    let log = app.output();
    let secrets = &stack.secrets;
    for value in [
        &secrets.postgres_password,
        &secrets.redis_password,
        &secrets.openai_api_key,
        &secrets.encryption_key,
    ] {
        assert!(
            !log.contains(value.as_str()),
            "a secret value is in the log"
        );
    }
}

#[test]
fn secrets_are_read_from_files_like_a_secret_volume() {
    let stack = Stack::start();
    let dir = tempfile::tempdir().expect("temp dir");
    stack.secrets.write_files(dir.path());
    // A value written with a trailing newline (as `echo` does) still works.
    std::fs::write(
        dir.path().join("postgres-password"),
        format!("{}\n", stack.secrets.postgres_password),
    )
    .expect("write");
    let mut env = stack.env_without_secrets();
    env.retain(|(k, _)| k != "AI_AGENTS_SECRETS_DIR");
    env.push((
        "AI_AGENTS_SECRETS_DIR".into(),
        dir.path().display().to_string(),
    ));

    let app = AppProcess::start("api", &env);
    let port = app.wait_listening();
    assert!(app.output().contains("Secrets loaded successfully"));
    let (status, _, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = http_get(port, "/api/v1/tenants/tenant-2/config");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_body(&body)["tenant"], "tenant-2");
}

#[test]
fn a_running_api_fails_once_the_database_password_changes() {
    let stack = Stack::start();
    let app = AppProcess::start("api", &stack.env(&stack.secrets));
    let port = app.wait_listening();
    let (status, _, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");

    // The password changes in PostgreSQL but not in the pod: its open session still works,
    // and the next login after the pool recycles the connection (1 s) fails.
    let changed = Instant::now();
    stack.postgres.psql(
        "postgres",
        "ALTER ROLE ai_agents PASSWORD 'changed-behind-the-apps-back';\n",
    );
    let (_, body) = poll_status(port, "/health", 503);
    eprintln!("health went 503 after {:?}", changed.elapsed());
    let body = json_body(&body);
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"], "unhealthy");
    assert_eq!(body["redis"], "healthy");
    let reason = body["errors"]["database"].as_str().unwrap_or_default();
    assert!(reason.contains("password authentication failed"), "{body}");

    let (status, _, body) = http_get(port, "/api/v1/tenants/tenant-3/config");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("password authentication failed"), "{body}");

    // The app logs before it answers, but our reader thread may not have read it yet.
    for line in [
        "health check failed: database: password authentication failed for user \"ai_agents\"",
        "request failed: database: password authentication failed for user \"ai_agents\"",
    ] {
        app.expect_line(line);
    }

    // With the password back, the next login succeeds: no restart needed.
    let password = stack.secrets.postgres_password.replace('\'', "''");
    stack.postgres.psql(
        "postgres",
        &format!("ALTER ROLE ai_agents PASSWORD '{password}';\n"),
    );
    poll_status(port, "/health", 200);
    eprintln!("api log:\n{}", app.output());
}

#[test]
fn a_running_api_fails_once_the_redis_password_changes() {
    let stack = Stack::start();
    let app = AppProcess::start("api", &stack.env(&stack.secrets));
    let port = app.wait_listening();
    let (status, _, body) = http_get(port, "/health");
    assert_eq!(status, 200, "{body}");

    // Like `CONFIG SET requirepass`: authenticated clients stay connected, new logins fail.
    let mut redis = stack.redis.connect();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(support::random_text(24))
        .query(&mut redis)
        .expect("CONFIG SET requirepass");
    let (_, body) = poll_status(port, "/health", 503);
    let body = json_body(&body);
    assert_eq!(body["database"], "healthy", "{body}");
    assert_eq!(body["redis"], "unhealthy", "{body}");
    let reason = body["errors"]["redis"].as_str().unwrap_or_default();
    assert!(reason.starts_with("WRONGPASS "), "{body}");

    let (status, _, body) = http_get(port, "/api/v1/tenants/tenant-1/config");
    assert_eq!(status, 503, "{body}");
    app.expect_line("health check failed: redis: WRONGPASS");
    app.expect_line("request failed: redis: WRONGPASS");
    eprintln!("api log:\n{}", app.output());
}
