//! Presets end to end: `kubectl rotate openai` through kubectl, the OpenAI key check against a
//! local HTTP server, a preset from a config file, config errors, and the stakeholder notice.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Result, ensure};

use crate::TestFn;
use crate::support::{TestEnv, assert_no_values};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "openai_preset_rotates_the_key_from_stdin_through_kubectl",
            openai_preset_rotates_the_key_from_stdin_through_kubectl,
        ),
        (
            "a_malformed_openai_key_is_refused_and_nothing_is_written",
            a_malformed_openai_key_is_refused_and_nothing_is_written,
        ),
        (
            "check_key_classifies_the_openai_answers",
            check_key_classifies_the_openai_answers,
        ),
        (
            "a_preset_from_the_config_file_rotates_its_own_secret",
            a_preset_from_the_config_file_rotates_its_own_secret,
        ),
        (
            "config_errors_point_at_the_file_and_line",
            config_errors_point_at_the_file_and_line,
        ),
        (
            "the_notice_carries_date_contact_duration_and_impact",
            the_notice_carries_date_contact_duration_and_impact,
        ),
    ]
}

const NEW_KEY: &str = "sk-proj-presetrotation0123456789abcdefghijklmnopqrstuv";

fn openai_preset_rotates_the_key_from_stdin_through_kubectl(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "openai")?;
    env.seed_demo_app()?;
    let before = env.secret_values("app-secrets")?;
    let input = format!("{NEW_KEY}\n");
    let run = env.kubectl_with(
        &[
            "rotate",
            "openai",
            "--from-stdin",
            "-y",
            "-n",
            &env.namespace,
        ],
        &[],
        Some(input.as_bytes()),
    )?;
    run.success()?;
    let after = env.secret_values("app-secrets")?;
    ensure!(
        after["openai-api-key"] == NEW_KEY.as_bytes(),
        "the new key is stored"
    );
    for (key, value) in &before {
        if key != "openai-api-key" {
            ensure!(&after[key] == value, "{key} changed");
        }
    }
    ensure!(
        run.stdout
            .contains("Downtime: Minimal (rolling restart, requests queued)"),
        "{}",
        run.stdout
    );
    ensure!(
        run.stdout
            .contains("Impact: None - API calls can be queued during restart"),
        "{}",
        run.stdout
    );
    ensure!(run.stderr.contains("Revoke the old key"), "{}", run.stderr);
    ensure!(
        run.stderr
            .contains("Verify: kubectl rotate verify app-secrets openai-api-key"),
        "{}",
        run.stderr
    );
    let mut all = before.clone();
    all.insert("new".into(), NEW_KEY.as_bytes().to_vec());
    assert_no_values(&run, &all)
}

fn a_malformed_openai_key_is_refused_and_nothing_is_written(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "badkey")?;
    env.seed_demo_app()?;
    let before = env.secret_values("app-secrets")?;
    for (input, reason) in [
        (
            "pk-live-0123456789abcdefghijklmnop\n",
            "does not start with sk-",
        ),
        (
            "sk-proj-has a space 0123456789abcdef\n",
            "contains whitespace",
        ),
        ("sk-short\n", "not a plausible OpenAI key length"),
    ] {
        let run = env.kubectl_with(
            &[
                "rotate",
                "openai",
                "--from-stdin",
                "-y",
                "-n",
                &env.namespace,
            ],
            &[],
            Some(input.as_bytes()),
        )?;
        run.failure(1)?;
        ensure!(
            run.stderr.contains(reason) && run.stderr.contains("nothing was written"),
            "{input:?}: {}",
            run.stderr
        );
        ensure!(
            !run.stderr.contains(input.trim()),
            "the refused value is not echoed"
        );
    }
    ensure!(
        env.secret_values("app-secrets")? == before,
        "nothing was written"
    );
    ensure!(
        env.backups_of("app-secrets")?.is_empty(),
        "no backup was made"
    );
    Ok(())
}

/// A local stand-in for the OpenAI API answering every request with `status` and `body`, and
/// recording the Authorization headers it saw. (The real API is not reachable from the test
/// machine; this is the only part of these tests that is not the real thing.)
fn fake_openai(
    status: &'static str,
    body: &'static str,
) -> Result<(String, Arc<Mutex<Vec<String>>>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if line.to_ascii_lowercase().starts_with("authorization:")
                    || line.starts_with("GET ")
                {
                    record.lock().expect("lock").push(line.trim().to_string());
                }
                line.clear();
            }
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = (&stream).write_all(response.as_bytes());
        }
    });
    Ok((url, seen))
}

fn check_key_classifies_the_openai_answers(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "checkkey")?;
    env.seed_demo_app()?;
    let before = env.secret_values("app-secrets")?;
    let input = format!("{NEW_KEY}\n");
    let cases = [
        (
            "401 Unauthorized",
            r#"{"error":{"message":"Incorrect API key provided: sk-proj-****uv"}}"#,
            "the new key is invalid",
        ),
        (
            "401 Unauthorized",
            r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read."}}"#,
            "missing scopes",
        ),
    ];
    for (status, body, expected) in cases {
        let (url, seen) = fake_openai(status, body)?;
        let run = env.kubectl_with(
            &[
                "rotate",
                "openai",
                "--from-stdin",
                "-y",
                "--check-key",
                "--openai-base-url",
                &url,
                "-n",
                &env.namespace,
            ],
            &[],
            Some(input.as_bytes()),
        )?;
        run.failure(1)?;
        ensure!(
            run.stderr.contains(expected) && run.stderr.contains("nothing was written"),
            "{status}: {}",
            run.stderr
        );
        ensure!(
            !run.stderr.contains("sk-proj-****"),
            "the API's error text (which quotes the key) is not echoed"
        );
        let seen = seen.lock().expect("lock").clone();
        ensure!(
            seen.iter().any(|l| l.starts_with("GET /v1/models")),
            "{seen:?}"
        );
        ensure!(
            seen.iter()
                .any(|l| l.ends_with(&format!("Bearer {NEW_KEY}"))),
            "the key is sent as a bearer token: {seen:?}"
        );
        ensure!(
            env.secret_values("app-secrets")? == before,
            "nothing was written after a failed check"
        );
    }
    let run = env.kubectl_with(
        &[
            "rotate",
            "openai",
            "--from-stdin",
            "-y",
            "--check-key",
            "--openai-base-url",
            "http://127.0.0.1:9",
            "-n",
            &env.namespace,
        ],
        &[],
        Some(input.as_bytes()),
    )?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(
            "could not check the new key: cannot reach the OpenAI API at http://127.0.0.1:9"
        ) && run.stderr.contains("nothing was written")
            && !run.stderr.contains("the new key is"),
        "{}",
        run.stderr
    );

    let (url, _) = fake_openai("200 OK", r#"{"object":"list","data":[]}"#)?;
    let run = env.kubectl_with(
        &[
            "rotate",
            "openai",
            "--from-stdin",
            "-y",
            "--check-key",
            "--openai-base-url",
            &url,
            "-n",
            &env.namespace,
        ],
        &[],
        Some(input.as_bytes()),
    )?;
    run.success()?;
    ensure!(
        run.stderr.contains("the new key is valid"),
        "{}",
        run.stderr
    );
    ensure!(
        env.secret_values("app-secrets")?["openai-api-key"] == NEW_KEY.as_bytes(),
        "rotated after a valid check"
    );
    Ok(())
}

fn a_preset_from_the_config_file_rotates_its_own_secret(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "config")?;
    let ns = env.namespace.clone();
    let secret = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"stripe","namespace":"{ns}"}},"data":{{"api-key":"c2tfbGl2ZV9vbGRrZXk="}}}}"#
    );
    env.kubectl_with(&["create", "-f", "-"], &[], Some(secret.as_bytes()))?
        .success()?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "presets:\n  stripe:\n    secret: stripe\n    key: api-key\n",
    )?;
    let config_var = config.to_string_lossy().into_owned();
    let listed = env.kubectl_with(
        &["rotate", "presets"],
        &[("KUBECTL_ROTATE_CONFIG", &config_var)],
        None,
    )?;
    listed.success()?;
    ensure!(
        listed.stdout.lines().any(|l| l.starts_with("stripe ")
            && l.contains("stripe/api-key")
            && l.contains(&config_var)),
        "{}",
        listed.stdout
    );
    ensure!(
        listed.stdout.lines().any(|l| l.starts_with("openai ")),
        "{}",
        listed.stdout
    );
    let before = env.secret_values("stripe")?;
    let run = env.kubectl_with(
        &["rotate", "stripe", "--generate", "token", "-y", "-n", &ns],
        &[("KUBECTL_ROTATE_CONFIG", &config_var)],
        None,
    )?;
    run.success()?;
    let after = env.secret_values("stripe")?;
    ensure!(
        after["api-key"] != before["api-key"] && after["api-key"].len() == 40,
        "the config preset rotated its own Secret"
    );
    // Without the config, there is no such verb.
    let run = env.rotate(&["stripe", "--generate", "token", "-y"])?;
    run.failure(2)?;
    Ok(())
}

fn config_errors_point_at_the_file_and_line(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "badconfig")?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "presets:\n  stripe:\n    secret: stripe\n    kee: api-key\n",
    )?;
    let config_text = config.to_string_lossy().into_owned();
    let run = env.kubectl(&["rotate", "presets", "--config", &config_text])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(&format!("{config_text}:4:"))
            && run.stderr.contains("unknown field `kee`"),
        "{}",
        run.stderr
    );
    std::fs::write(&config, "presets:\n  stripe:\n    secret: stripe\n")?;
    let run = env.kubectl_with(
        &["rotate", "presets"],
        &[("KUBECTL_ROTATE_CONFIG", &config_text)],
        None,
    )?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains(&format!(
            "{config_text}:2: preset \"stripe\": key: missing field `key`"
        )),
        "{}",
        run.stderr
    );
    // The fixed verbs still work with a broken config.
    env.rotate(&["status"])?.success()?;
    Ok(())
}

fn the_notice_carries_date_contact_duration_and_impact(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "notice")?;
    let run = env.kubectl(&[
        "rotate",
        "notice",
        "openai",
        "--date",
        "2026-12-01 02:00 UTC",
        "--contact",
        "#platform-oncall",
    ])?;
    run.success()?;
    for expected in [
        "NOTICE: Scheduled Secret Rotation",
        "Service: AI Agents",
        "Date: 2026-12-01 02:00 UTC",
        "Duration: Minimal (rolling restart, requests queued)",
        "Impact: None - API calls can be queued during restart",
        "We will be rotating the OpenAI API key to enhance security.",
        "please contact #platform-oncall.",
    ] {
        ensure!(
            run.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stdout
        );
    }
    // The encryption-key preset's notice states the runbook's downtime and impact.
    let run = env.kubectl(&[
        "rotate",
        "notice",
        "encryption-key",
        "--date",
        "2026-12-05 02:00 UTC",
        "--contact",
        "#platform-oncall",
    ])?;
    run.success()?;
    for expected in [
        "Duration: Consumers scaled to 0 during the migration (the runbook plans 30+ minutes)",
        "Impact: Tenant configs inaccessible during the migration (the consumers are stopped)",
        "We will be rotating the data encryption key (tenant configs) to enhance security.",
    ] {
        ensure!(
            run.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            run.stdout
        );
    }
    let run = env.kubectl(&[
        "rotate",
        "notice",
        "stripe",
        "--date",
        "x",
        "--contact",
        "y",
    ])?;
    run.failure(1)?;
    ensure!(
        run.stderr.contains("no preset named \"stripe\""),
        "{}",
        run.stderr
    );
    Ok(())
}
