//! The runbook's copies on this machine (the key file, the database dump): never inside a git
//! work tree, and created new with mode 0600 in directories of mode 0700. What goes into them
//! is not here: the key file is the `save-key` step's (`mod.rs`), the dump is `dump.rs`'s.

use std::path::Path;

use anyhow::{Context, Result, bail};

/// Refuses a path inside a git work tree (a key or a dump must never be committed).
pub fn refuse_git_work_tree(path: &Path) -> Result<()> {
    let absolute =
        std::path::absolute(path).with_context(|| format!("cannot resolve {}", path.display()))?;
    for dir in absolute.ancestors().skip(1) {
        if dir.join(".git").exists() {
            bail!(
                "{} is inside the git work tree {}: a key or a database dump must never be committed; \
                 choose a directory outside it (--backup-dir, --key-backup-file, --db-backup-file)",
                absolute.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// Creates `path` (and its missing parent directories, mode 0700) as a new file of mode 0600.
pub(super) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}
