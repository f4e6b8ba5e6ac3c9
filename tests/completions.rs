//! Binary tests of completion that need no API server: the committed scripts in `completions/`
//! are what the clap definition generates, the bash one works, `completion kubectl --install`
//! puts the helper where kubectl finds it, and the helper never prints an error.
//! Completion against a live cluster, through real kubectl, is in `tests/e2e/completion.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-rotate");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `program` with an empty environment: no KUBECONFIG, an empty HOME, PATH as given.
fn clean(program: &Path, home: &Path, path: &str) -> Command {
    let mut command = Command::new(program);
    command.env_clear().env("HOME", home).env("PATH", path);
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The binary linked under the helper's name in a directory of its own.
fn helper(dir: &Path) -> PathBuf {
    let helper = dir.join("kubectl_complete-rotate");
    std::os::unix::fs::symlink(BIN, &helper).expect("link the helper");
    helper
}

#[test]
fn committed_completion_scripts_match_the_clap_definition() {
    let home = tempfile::tempdir().unwrap();
    for (shell, file) in [
        ("bash", "kubectl-rotate.bash"),
        ("zsh", "_kubectl-rotate"),
        ("fish", "kubectl-rotate.fish"),
        ("powershell", "_kubectl-rotate.ps1"),
    ] {
        let output = clean(Path::new(BIN), home.path(), "/usr/bin:/bin")
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        let committed = std::fs::read_to_string(repo().join("completions").join(file))
            .unwrap_or_else(|e| panic!("completions/{file}: {e}; run scripts/completions.sh"));
        assert!(
            text(&output.stdout) == committed,
            "completions/{file} is stale: the clap definition changed; run scripts/completions.sh \
             and commit the result"
        );
    }
}

/// Regression: clap_complete's bash script completed nothing after a verb when the command
/// name has a hyphen (clap-rs/clap#6421).
#[test]
fn the_bash_script_completes_the_flags_and_values_of_a_verb() {
    let script = repo().join("completions/kubectl-rotate.bash");
    let complete = |words: &str, cword: usize, cur: &str, prev: &str| -> String {
        let program = format!(
            "source {script}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\n\
             _kubectl__rotate kubectl-rotate '{cur}' '{prev}'\necho \"${{COMPREPLY[*]}}\"",
            script = script.display()
        );
        let output = Command::new("bash")
            .args(["--noprofile", "--norc", "-c", &program])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout).trim().to_string()
    };
    assert_eq!(
        complete("kubectl-rotate st", 1, "st", "kubectl-rotate"),
        "status"
    );
    assert_eq!(
        complete("kubectl-rotate status -o ''", 3, "", "-o"),
        "text json"
    );
    assert_eq!(
        complete("kubectl-rotate status --all", 2, "--all", "status"),
        "--all-namespaces"
    );
    assert_eq!(
        complete("kubectl-rotate completion p", 2, "p", "completion"),
        "powershell"
    );
}

#[test]
fn completion_kubectl_prints_a_helper_script_and_install_is_only_for_kubectl() {
    let home = tempfile::tempdir().unwrap();
    let output = clean(Path::new(BIN), home.path(), "/usr/bin:/bin")
        .args(["completion", "kubectl"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(
        text(&output.stdout).contains("exec kubectl-rotate __complete \"$@\""),
        "{}",
        text(&output.stdout)
    );
    let output = clean(Path::new(BIN), home.path(), "/usr/bin:/bin")
        .args(["completion", "bash", "--install"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("error: --install only sets up completion inside kubectl"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn install_links_the_helper_beside_the_plugin_and_says_where() {
    let home = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let plugin = bin.path().join("kubectl-rotate");
    std::os::unix::fs::symlink(BIN, &plugin).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let output = clean(&plugin, home.path(), &path)
        .args(["completion", "kubectl", "--install"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let link = bin.path().join("kubectl_complete-rotate");
    assert_eq!(
        text(&output.stdout).lines().next().unwrap_or_default(),
        format!(
            "created {} -> kubectl-rotate: `kubectl rotate <TAB>` now completes verbs, flags and \
             names from your cluster (kubectl 1.26 or newer)",
            link.display()
        )
    );
    assert!(text(&output.stderr).is_empty(), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        PathBuf::from("kubectl-rotate")
    );
    // Again: nothing to do. And the link answers as the helper.
    let again = clean(&plugin, home.path(), &path)
        .args(["completion", "kubectl", "--install"])
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("already links to kubectl-rotate"),
        "{}",
        text(&again.stdout)
    );
    let answer = clean(&link, home.path(), &path).arg("").output().unwrap();
    assert!(
        text(&answer.stdout).starts_with("status\t"),
        "{}",
        text(&answer.stdout)
    );
}

#[test]
fn install_from_a_krew_store_links_into_krew_bin() {
    let home = tempfile::tempdir().unwrap();
    let krew = tempfile::tempdir().unwrap();
    let store = krew.path().join("store/rotate/v0.1.0");
    let bin = krew.path().join("bin");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    // krew's layout: the binary in the store (a file of its own), a link to it in bin.
    let stored = store.join("kubectl-rotate");
    std::fs::hard_link(BIN, &stored)
        .or_else(|_| std::fs::copy(BIN, &stored).map(|_| ()))
        .unwrap();
    std::os::unix::fs::symlink(&stored, bin.join("kubectl-rotate")).unwrap();
    let output = clean(&bin.join("kubectl-rotate"), home.path(), "/usr/bin:/bin")
        .env("KREW_ROOT", krew.path())
        .args(["completion", "kubectl", "--install"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_link(bin.join("kubectl_complete-rotate")).unwrap(),
        PathBuf::from("kubectl-rotate")
    );
    // krew's bin is not on this PATH: the user is told.
    assert!(
        text(&output.stderr).contains("is not on PATH"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn the_helper_offers_verbs_with_descriptions_then_a_directive() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = clean(&helper(dir.path()), home.path(), "/usr/bin:/bin")
        .arg("")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("status\tShow each key of a Secret")),
        "{stdout}"
    );
    assert!(lines.contains(
        &"completion\tPrint a shell completion script, or set up completion inside kubectl"
    ));
    assert_eq!(lines.last(), Some(&":4"));
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

fn assert_only_the_directive(output: &Output) {
    assert!(output.status.success());
    assert_eq!(text(&output.stdout), ":4\n");
    assert!(output.stderr.is_empty(), "{}", text(&output.stderr));
}

#[test]
fn the_helper_prints_only_the_directive_when_there_is_no_kubeconfig_or_a_broken_one() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let helper = helper(dir.path());
    let output = clean(&helper, home.path(), "/usr/bin:/bin")
        .args(["status", ""])
        .output()
        .unwrap();
    assert_only_the_directive(&output);
    let broken = dir.path().join("broken");
    std::fs::write(&broken, "this: [is not a kubeconfig").unwrap();
    for words in [
        vec!["status", "--kubeconfig", broken.to_str().unwrap(), ""],
        vec!["--kubeconfig", broken.to_str().unwrap(), "--context", ""],
        vec!["status", "--context", "missing", ""],
    ] {
        let output = clean(&helper, home.path(), "/usr/bin:/bin")
            .args(&words)
            .output()
            .unwrap();
        assert_only_the_directive(&output);
    }
}

#[test]
fn the_helper_gives_up_on_a_closed_port_at_once_and_silently() {
    let home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("config");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: dev\n  context: {{cluster: c, user: u}}\n\
             current-context: dev\n"
        ),
    )
    .unwrap();
    let helper = helper(dir.path());
    let started = Instant::now();
    let output = clean(&helper, home.path(), "/usr/bin:/bin")
        .env("KUBECONFIG", &kubeconfig)
        .args(["status", "-n", ""])
        .output()
        .unwrap();
    assert_only_the_directive(&output);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The kubeconfig alone still answers: contexts need no server.
    let output = clean(&helper, home.path(), "/usr/bin:/bin")
        .env("KUBECONFIG", &kubeconfig)
        .args(["status", "--context", ""])
        .output()
        .unwrap();
    assert_eq!(text(&output.stdout), "dev\tcluster c, current\n:4\n");
}
