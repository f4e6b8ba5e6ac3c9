//! Fernet compatibility with the Python original (pyca `cryptography`), both ways: tokens made
//! by the Rust side (the `fernet` crate, directly and through `demo-app encrypt`) decrypt in
//! Python, tokens and keys made by Python work in Rust and pass the app's validation.
//!
//! The interpreter is `DEMO_APP_PYTHON` (default `python3`); it must import `cryptography`,
//! else these tests fail: they are never skipped.

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{APP, AppProcess, Secrets};

fn python() -> String {
    std::env::var("DEMO_APP_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs a Python script with `env`, `stdin` as its input; panics with a clear message when
/// the interpreter or the `cryptography` module is missing.
fn run_python(script: &str, env: &[(&str, &str)], stdin: &str) -> String {
    let python = python();
    let check = Command::new(&python)
        .args(["-c", "import cryptography.fernet"])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run Python interpreter {python:?} (DEMO_APP_PYTHON): {e}")
        });
    assert!(
        check.status.success(),
        "Python's `cryptography` module is not importable with {python:?}: {}\n\
         Install it, e.g. `python3 -m venv /tmp/demo-venv && /tmp/demo-venv/bin/pip install cryptography`, \
         and set DEMO_APP_PYTHON=/tmp/demo-venv/bin/python",
        String::from_utf8_lossy(&check.stderr).trim()
    );
    let output = piped(
        Command::new(&python)
            .args(["-c", script])
            .envs(env.iter().copied()),
        stdin,
    );
    assert!(
        output.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

fn piped(cmd: &mut Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// `demo-app encrypt|decrypt` with the key in the environment and `input` on stdin.
fn app_helper(command: &str, key: &str, input: &str) -> String {
    let empty = tempfile::tempdir().expect("temp dir");
    let output = piped(
        Command::new(APP)
            .arg(command)
            .env_clear()
            .env("AI_AGENTS_ENCRYPTION_KEY", key)
            .env("AI_AGENTS_SECRETS_DIR", empty.path()),
        input,
    );
    assert!(
        output.status.success(),
        "demo-app {command} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

const PY_DECRYPT: &str = "import os, sys\n\
from cryptography.fernet import Fernet\n\
f = Fernet(os.environ['FERNET_KEY'].encode())\n\
print(f.decrypt(sys.stdin.read().strip().encode()).decode())\n";

const PY_ENCRYPT: &str = "import sys\n\
from cryptography.fernet import Fernet\n\
key = Fernet.generate_key()\n\
print(key.decode())\n\
print(Fernet(key).encrypt(sys.stdin.read().encode()).decode())\n";

#[test]
fn rust_tokens_decrypt_in_python() {
    let plaintext = r#"{"tenant":"tenant-1","model":"gpt-4o","max_tokens":1000}"#;
    let key = fernet::Fernet::generate_key();

    let token = fernet::Fernet::new(&key)
        .expect("key")
        .encrypt(plaintext.as_bytes());
    assert_eq!(
        run_python(PY_DECRYPT, &[("FERNET_KEY", &key)], &token),
        plaintext
    );

    let token = app_helper("encrypt", &key, plaintext);
    assert_eq!(
        run_python(PY_DECRYPT, &[("FERNET_KEY", &key)], &token),
        plaintext
    );
}

#[test]
fn python_tokens_and_keys_work_in_rust() {
    let plaintext = r#"{"tenant":"tenant-9","model":"gpt-4o-mini","max_tokens":250}"#;
    let out = run_python(PY_ENCRYPT, &[], plaintext);
    let (key, token) = out.split_once('\n').expect("key and token lines");

    let decrypted = fernet::Fernet::new(key)
        .expect("Python key")
        .decrypt(token)
        .expect("decrypt");
    assert_eq!(decrypted, plaintext.as_bytes());
    assert_eq!(app_helper("decrypt", key, token), plaintext);

    // The full start-up validation accepts the Python key: it gets past the secrets and stops
    // at the database, which is not there (port 1).
    let secrets = Secrets {
        encryption_key: key.to_string(),
        ..Secrets::random()
    };
    let empty = tempfile::tempdir().expect("temp dir");
    let mut env = secrets.env();
    env.extend([
        ("DATABASE_PORT".to_string(), "1".to_string()),
        (
            "AI_AGENTS_SECRETS_DIR".to_string(),
            empty.path().display().to_string(),
        ),
    ]);
    let mut app = AppProcess::start("api", &env);
    let status = app.wait_exit(Duration::from_secs(30));
    let log = app.output();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Secrets loaded successfully"), "{log}");
    assert!(log.contains("database connection failed: "), "{log}");
}
