//! Binary tests: the built `kubectl-rotate` run directly, for what needs no API server: help,
//! version, usage errors and kubeconfig errors, with their exit codes.

use assert_cmd::Command;
use predicates::prelude::*;

/// The binary with an empty environment: no KUBECONFIG, an empty HOME, no colour settings.
fn rotate(home: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubectl-rotate"));
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", "/usr/bin:/bin");
    cmd
}

fn kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("config");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: dev\n  context: {cluster: c, user: u}\n\
         - name: prod\n  context: {cluster: c, user: u}\ncurrent-context: dev\n",
    )
    .expect("write kubeconfig");
    path
}

#[test]
fn help_calls_the_command_kubectl_rotate() {
    let home = tempfile::tempdir().unwrap();
    rotate(home.path())
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Usage: kubectl rotate [OPTIONS] <COMMAND>",
        ));
}

#[test]
fn status_help_matches_its_snapshot() {
    let home = tempfile::tempdir().unwrap();
    let output = rotate(home.path())
        .args(["status", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&output.stdout));
}

#[test]
fn version_prints_the_crate_version() {
    let home = tempfile::tempdir().unwrap();
    rotate(home.path())
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("kubectl-rotate {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn an_unknown_flag_is_a_usage_error_with_exit_code_2() {
    let home = tempfile::tempdir().unwrap();
    rotate(home.path())
        .args(["status", "--no-such-flag"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "error: unexpected argument '--no-such-flag'",
        ))
        .stderr(predicate::str::contains("Usage: kubectl rotate status"));
}

#[test]
fn a_bad_request_timeout_is_an_error_naming_the_flag() {
    let home = tempfile::tempdir().unwrap();
    rotate(home.path())
        .args(["status", "--request-timeout", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "error: invalid value 'soon' for '--request-timeout <DURATION>'",
        ));
}

#[test]
fn a_missing_kubeconfig_file_is_named() {
    let home = tempfile::tempdir().unwrap();
    rotate(home.path())
        .args(["status", "--kubeconfig", "/nonexistent/kubeconfig"])
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "error: cannot read the kubeconfig /nonexistent/kubeconfig",
        ));
}

#[test]
fn without_any_kubeconfig_the_error_says_how_to_give_one() {
    let home = tempfile::tempdir().unwrap();
    rotate(home.path())
        .arg("status")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("no kubeconfig found"))
        .stderr(predicate::str::contains(
            "--kubeconfig PATH or set KUBECONFIG",
        ));
}

#[test]
fn an_unknown_context_cluster_or_user_lists_the_ones_that_exist() {
    let home = tempfile::tempdir().unwrap();
    let config = kubeconfig(home.path());
    rotate(home.path())
        .env("KUBECONFIG", &config)
        .args(["status", "--context", "staging"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(r#"context "staging" not found"#))
        .stderr(predicate::str::contains("contexts there: dev, prod"));
    rotate(home.path())
        .env("KUBECONFIG", &config)
        .args(["status", "--cluster", "other"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(r#"cluster "other" not found"#));
    rotate(home.path())
        .env("KUBECONFIG", &config)
        .args(["status", "--user", "root"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(r#"user "root" not found"#));
}

#[test]
fn the_default_kubeconfig_in_home_is_read_when_kubeconfig_is_unset() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".kube")).unwrap();
    let config = kubeconfig(home.path());
    std::fs::rename(config, home.path().join(".kube/config")).unwrap();
    // It got as far as choosing a context from ~/.kube/config.
    rotate(home.path())
        .args(["status", "--context", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            ".kube/config; contexts there: dev, prod",
        ));
}

/// Every verb's malformed flags are usage errors: exit 2 and a message naming the flag, before
/// any connection (the kubeconfig points at a port where nothing listens).
#[test]
fn usage_errors_of_every_verb_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let config = kubeconfig(home.path());
    let cases: &[(&[&str], &str)] = &[
        (
            &["status", "--request-timeout", "soon"],
            "--request-timeout",
        ),
        (
            &[
                "secret",
                "s",
                "k",
                "--generate",
                "password",
                "--timeout",
                "x",
            ],
            "--timeout",
        ),
        (
            &[
                "secret",
                "s",
                "k",
                "--generate",
                "password",
                "--restart",
                "pod/x",
            ],
            "--restart",
        ),
        (
            &["secret", "s", "k", "--from-stdin", "--length", "5"],
            "--length",
        ),
        (&["rollback", "s", "--timeout", "1y"], "--timeout"),
        (&["backup", "s", "--keep", "0"], "--keep"),
        (&["verify", "s", "--health", "8000"], "--health"),
        (&["verify", "s", "--logs", "["], "--logs"),
        (&["resume", "s", "--timeout", "x"], "--timeout"),
        (&["openai", "--timeout", "x"], "--timeout"),
        (&["openai", "--strategy", "single-user"], "--strategy"),
        (&["postgres", "--strategy", "both"], "--strategy"),
        (&["no-such-verb"], "no-such-verb"),
    ];
    for (args, flag) in cases {
        let output = rotate(home.path())
            .env("KUBECONFIG", &config)
            .args(*args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} names {flag}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed on stdout");
    }
}

/// Issue 15, finding 11: `scripts/demo.sh` assumed `target/`, and failed for anyone with
/// `CARGO_TARGET_DIR` set. It asks cargo (`scripts/target-dir.sh`) where the binaries are.
#[test]
fn the_scripts_ask_cargo_where_it_builds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let elsewhere = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(root.join("scripts/target-dir.sh"))
        .env("CARGO_TARGET_DIR", elsewhere.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        elsewhere.path().to_string_lossy()
    );
    let demo = std::fs::read_to_string(root.join("scripts/demo.sh")).unwrap();
    assert!(demo.contains("scripts/target-dir.sh"));
    assert!(
        !demo.contains("target/debug"),
        "demo.sh assumes target/ somewhere"
    );
}
