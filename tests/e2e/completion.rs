//! Completion inside kubectl, end to end: real kubectl 1.37 runs `kubectl_complete-rotate` (the
//! plugin binary under that name, on PATH) for `kubectl __complete rotate ...`, against the local
//! control plane. Verbs, flags, enum values, Secret names, namespaces and contexts; the
//! connection flags typed on the line; and silence within a second or so when the cluster is
//! unreachable or mute.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};

use crate::TestFn;
use crate::support::{TestEnv, assert_no_values, assert_silent_helper, candidates};

pub fn tests() -> Vec<(&'static str, TestFn)> {
    vec![
        (
            "kubectl_completes_the_verbs_of_rotate_with_descriptions",
            kubectl_completes_the_verbs_of_rotate_with_descriptions,
        ),
        (
            "kubectl_completes_secret_names_in_the_namespace_typed",
            kubectl_completes_secret_names_in_the_namespace_typed,
        ),
        (
            "kubectl_completes_namespaces_after_dash_n",
            kubectl_completes_namespaces_after_dash_n,
        ),
        (
            "kubectl_completes_the_flags_of_the_verb_and_their_values",
            kubectl_completes_the_flags_of_the_verb_and_their_values,
        ),
        (
            "kubectl_completes_contexts_from_the_kubeconfig_typed",
            kubectl_completes_contexts_from_the_kubeconfig_typed,
        ),
        (
            "completion_uses_the_context_typed_and_is_silent_when_it_may_not_list",
            completion_uses_the_context_typed_and_is_silent_when_it_may_not_list,
        ),
        (
            "an_unreachable_cluster_gives_no_error_text_and_returns_quickly",
            an_unreachable_cluster_gives_no_error_text_and_returns_quickly,
        ),
        (
            "a_mute_cluster_is_given_up_on_after_about_a_second",
            a_mute_cluster_is_given_up_on_after_about_a_second,
        ),
    ]
}

fn kubectl_completes_the_verbs_of_rotate_with_descriptions(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cverbs")?;
    let run = env.complete(&[""])?;
    run.success()?;
    ensure!(
        run.stdout.lines().any(|l| l
            == "status\tShow each key of a Secret (size, last rotation, consuming workloads), never its value"),
        "{}",
        run.stdout
    );
    let (values, directive) = candidates(&run);
    ensure!(
        values
            == [
                "status",
                "secret",
                "rollback",
                "resume",
                "backup",
                "verify",
                "presets",
                "notice",
                "completion",
                "openai",
                "postgres",
                "redis",
                "encryption-key"
            ],
        "every verb and the built-in presets: {values:?}"
    );
    ensure!(directive == ":4", "{directive}");
    assert_silent_helper(&run)?;
    let run = env.complete(&["st"])?;
    ensure!(candidates(&run).0 == ["status"], "{}", run.stdout);
    Ok(())
}

fn kubectl_completes_secret_names_in_the_namespace_typed(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "csecrets")?;
    env.seed_demo_app()?;
    // A backup and a Helm release record: real Secrets that are not offered.
    let extra = format!(
        r#"{{"apiVersion":"v1","kind":"List","items":[
          {{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"sh.helm.release.v1.web.v1","namespace":"{ns}"}},"type":"helm.sh/release.v1","data":{{"release":"eA=="}}}},
          {{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"app-secrets-backup-1","namespace":"{ns}","labels":{{"kubectl-rotate.io/backup-of":"app-secrets"}}}},"data":{{"k":"eA=="}}}}
        ]}}"#,
        ns = env.namespace
    );
    env.kubectl_with(&["create", "-f", "-"], &[], Some(extra.as_bytes()))?
        .success()?;
    let values = env.secret_values("app-secrets")?;

    let run = env.complete(&["status", "-n", &env.namespace, ""])?;
    run.success()?;
    ensure!(
        run.stdout == "app-secrets\tOpaque, 4 keys\n:4\n",
        "{}",
        run.stdout
    );
    assert_silent_helper(&run)?;
    assert_no_values(&run, &values)?;
    // The same with the flag after the word, spelled --namespace=, and a prefix.
    let flag = format!("--namespace={}", env.namespace);
    let run = env.complete(&["status", &flag, "app"])?;
    ensure!(candidates(&run).0 == ["app-secrets"], "{}", run.stdout);
    let run = env.complete(&["status", "-n", &env.namespace, "x"])?;
    ensure!(run.stdout == ":4\n", "{}", run.stdout);

    // Issue 15, finding 2: after --to, each backup says which keys it holds (names only).
    env.rotate(&[
        "secret",
        "app-secrets",
        "redis-password",
        "--generate",
        "password",
        "-y",
    ])?
    .success()?;
    let run = env.complete(&[
        "rollback",
        "app-secrets",
        "redis-password",
        "-n",
        &env.namespace,
        "--to",
        "",
    ])?;
    run.success()?;
    ensure!(
        run.stdout
            .lines()
            .any(|l| l.starts_with("app-secrets-backup-2") && l.ends_with(", keys: redis-password")),
        "the rotation's backup names its key:\n{}",
        run.stdout
    );
    assert_no_values(&run, &values)?;
    Ok(())
}

fn kubectl_completes_namespaces_after_dash_n(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cns")?;
    let run = env.complete(&["status", "-n", ""])?;
    run.success()?;
    let (values, directive) = candidates(&run);
    for expected in ["default", "kube-system", env.namespace.as_str()] {
        ensure!(
            values.iter().any(|v| v == expected),
            "{expected} in {values:?}"
        );
    }
    ensure!(directive == ":4", "{directive}");
    let run = env.complete(&["-n", &env.namespace[..8]])?;
    let (values, _) = candidates(&run);
    ensure!(
        values.iter().all(|v| v.starts_with(&env.namespace[..8]))
            && values.contains(&env.namespace),
        "{values:?}"
    );
    assert_silent_helper(&run)
}

fn kubectl_completes_the_flags_of_the_verb_and_their_values(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cflags")?;
    let run = env.complete(&["status", "--"])?;
    run.success()?;
    let (values, directive) = candidates(&run);
    for flag in [
        "--all-namespaces",
        "--output",
        "--namespace",
        "--context",
        "--kubeconfig",
        "--as",
        "--as-group",
        "--request-timeout",
        "--help",
    ] {
        ensure!(values.iter().any(|v| v == flag), "{flag} in {values:?}");
    }
    ensure!(values.iter().all(|v| v.starts_with("--")), "{values:?}");
    ensure!(directive == ":4", "{directive}");
    ensure!(
        run.stdout.contains(
            "--all-namespaces\tShow Secrets in every namespace (overrides --namespace)\n"
        ),
        "{}",
        run.stdout
    );
    let run = env.complete(&["status", "-"])?;
    let (values, _) = candidates(&run);
    for short in ["-A", "-o", "-n", "-h"] {
        ensure!(values.iter().any(|v| v == short), "{short} in {values:?}");
    }
    let run = env.complete(&["status", "-o", ""])?;
    ensure!(candidates(&run).0 == ["text", "json"], "{}", run.stdout);
    let run = env.complete(&["completion", ""])?;
    ensure!(
        candidates(&run).0 == ["bash", "zsh", "fish", "powershell", "kubectl"],
        "{}",
        run.stdout
    );
    // --kubeconfig takes a path: no candidates, and the shell may complete file names (:0).
    let run = env.complete(&["status", "--kubeconfig", ""])?;
    ensure!(run.stdout == ":0\n", "{}", run.stdout);
    assert_silent_helper(&run)
}

fn kubectl_completes_contexts_from_the_kubeconfig_typed(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cctx")?;
    let run = env.complete(&["status", "--context", ""])?;
    run.success()?;
    ensure!(candidates(&run).0 == ["admin", "nobody"], "{}", run.stdout);
    ensure!(run.stdout.starts_with("admin\tcluster "), "{}", run.stdout);
    // --kubeconfig typed on the line is the one read, even with a broken KUBECONFIG.
    let dir = tempfile::tempdir()?;
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "this: [is not a kubeconfig")?;
    let broken = broken.to_string_lossy().into_owned();
    let good = kubeconfig.to_string_lossy().into_owned();
    let run = env.complete_with(
        &["--kubeconfig", &good, "status", "--context", ""],
        &[("KUBECONFIG", &broken)],
    )?;
    ensure!(candidates(&run).0 == ["admin", "nobody"], "{}", run.stdout);
    let run = env.complete_with(&["status", "--context", ""], &[("KUBECONFIG", &broken)])?;
    ensure!(run.stdout == ":4\n", "{}", run.stdout);
    assert_silent_helper(&run)
}

fn completion_uses_the_context_typed_and_is_silent_when_it_may_not_list(
    kubeconfig: &Path,
) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cnobody")?;
    env.seed_demo_app()?;
    let run = env.complete(&["status", "-n", &env.namespace, "--context", "nobody", ""])?;
    run.success()?;
    ensure!(
        run.stdout == ":4\n",
        "nobody may not list Secrets: {}",
        run.stdout
    );
    assert_silent_helper(&run)?;
    let run = env.complete(&["status", "--context", "admin", "-n", &env.namespace, ""])?;
    ensure!(candidates(&run).0 == ["app-secrets"], "{}", run.stdout);
    Ok(())
}

/// A kubeconfig for `server` with a throwaway token.
fn kubeconfig_for(dir: &Path, server: &str) -> Result<String> {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
             users:\n- name: u\n  user:\n    token: not-a-real-token\ncontexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n\
             current-context: ctx\n"
        ),
    )?;
    Ok(path.to_string_lossy().into_owned())
}

fn an_unreachable_cluster_gives_no_error_text_and_returns_quickly(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cclosed")?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(); // bound, then closed
    let dir = tempfile::tempdir()?;
    let closed = kubeconfig_for(dir.path(), &format!("https://127.0.0.1:{port}"))?;
    for words in [
        vec!["status", "--kubeconfig", closed.as_str(), ""],
        vec!["status", "--kubeconfig", closed.as_str(), "-n", ""],
    ] {
        let run = env.complete(&words)?;
        run.success()?;
        ensure!(run.stdout == ":4\n", "{words:?}: {}", run.stdout);
        assert_silent_helper(&run)?;
        ensure!(
            run.elapsed < Duration::from_secs(2),
            "{words:?} took {:?}",
            run.elapsed
        );
    }
    let run = env.complete_with(&["status", ""], &[("KUBECONFIG", &closed)])?;
    ensure!(run.stdout == ":4\n", "{}", run.stdout);
    ensure!(
        run.elapsed < Duration::from_secs(2),
        "took {:?}",
        run.elapsed
    );
    assert_silent_helper(&run)
}

fn a_mute_cluster_is_given_up_on_after_about_a_second(kubeconfig: &Path) -> Result<()> {
    let env = TestEnv::new(kubeconfig, "cmute")?;
    // Accepts connections and never answers: only the helper's own bound ends the wait.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir()?;
    let mute = kubeconfig_for(dir.path(), &format!("https://127.0.0.1:{port}"))?;
    let run = env.complete(&["status", "--kubeconfig", &mute, ""])?;
    run.success()?;
    ensure!(run.stdout == ":4\n", "{}", run.stdout);
    assert_silent_helper(&run)?;
    ensure!(
        run.elapsed >= Duration::from_millis(900) && run.elapsed < Duration::from_millis(2500),
        "bounded at about a second, took {:?}",
        run.elapsed
    );
    Ok(())
}
