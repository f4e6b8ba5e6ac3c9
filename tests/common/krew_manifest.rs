//! krew's rules for a plugin manifest, as its validator (`validate-krew-manifest` and
//! `internal/index/validation`) and the krew-index reviewers apply them, for the manifest tests
//! (`tests/krew.rs`) and the install test (`tests/e2e/krew.rs`).
//!
//! Checked: apiVersion and kind; the name (`^[\w-]+$`, not a reserved Windows name) equals the
//! file name; `spec.version` is `v`-prefixed semver; `shortDescription` is one line of at most
//! 50 characters; `description` and `caveats` lines fit in 80 columns; every platform has a
//! `uri`, a 64-hex `sha256`, a `bin` (`.exe` on Windows) and `files` with `from`/`to`, installs
//! a LICENSE, and has a selector using only `os` and `arch` that selects a platform krew knows;
//! no two selectors select the same `os`/`arch`.

use std::path::Path;

use serde_yaml::Value;

/// The `os`/`arch` pairs krew runs on (Go's names).
const KNOWN_PLATFORMS: &[(&str, &str)] = &[
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("linux", "ppc64le"),
    ("linux", "s390x"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
    ("windows", "386"),
    ("windows", "amd64"),
    ("windows", "arm64"),
];

/// One platform of a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The `os`/`arch` pairs its selector selects.
    pub selects: Vec<(String, String)>,
    pub uri: String,
    pub sha256: String,
    pub bin: String,
    /// `(from, to)` file operations.
    pub files: Vec<(String, String)>,
}

/// Reads and validates the manifest at `path`; every problem found, or its platforms.
pub fn validate_file(path: &Path) -> Result<Vec<Platform>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
    let name_from_file = match (
        path.extension().and_then(|e| e.to_str()),
        path.file_stem().and_then(|s| s.to_str()),
    ) {
        (Some("yaml"), Some(stem)) => stem.to_string(),
        _ => {
            return Err(vec![format!(
                "{}: the file must be NAME.yaml",
                path.display()
            )]);
        }
    };
    validate(&text, &name_from_file)
}

/// Validates manifest `text` for a plugin whose file is named `file_name.yaml`.
pub fn validate(text: &str, file_name: &str) -> Result<Vec<Platform>, Vec<String>> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| vec![format!("not YAML: {e}")])?;
    let mut problems = Vec::new();
    let str_at =
        |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_string);

    if str_at(&doc, "apiVersion").as_deref()
        != Some("krew.googlecontainertools.github.com/v1alpha2")
    {
        problems.push("apiVersion must be krew.googlecontainertools.github.com/v1alpha2".into());
    }
    if str_at(&doc, "kind").as_deref() != Some("Plugin") {
        problems.push("kind must be Plugin".into());
    }
    let name = doc
        .get("metadata")
        .and_then(|m| str_at(m, "name"))
        .unwrap_or_default();
    if !is_safe_plugin_name(&name) {
        problems.push(format!(
            "metadata.name {name:?} must match ^[\\w-]+$ and not be a reserved Windows name"
        ));
    }
    if name != file_name {
        problems.push(format!(
            "metadata.name {name:?} must equal the file name {file_name:?}"
        ));
    }
    let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
    let version = str_at(&spec, "version").unwrap_or_default();
    if !is_v_semver(&version) {
        problems.push(format!(
            "spec.version {version:?} must be v-prefixed semver, e.g. v0.1.0"
        ));
    }
    let short = str_at(&spec, "shortDescription").unwrap_or_default();
    if short.is_empty() || short.contains(['\r', '\n']) || short.chars().count() > 50 {
        problems.push(format!(
            "spec.shortDescription must be one line of 1 to 50 characters, not {} ({short:?})",
            short.chars().count()
        ));
    }
    for field in ["description", "caveats"] {
        for line in str_at(&spec, field).unwrap_or_default().lines() {
            if line.chars().count() > 80 {
                problems.push(format!("spec.{field} has a line over 80 columns: {line:?}"));
            }
        }
    }
    if str_at(&spec, "description")
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        problems.push("spec.description must say what the plugin does".into());
    }

    let mut platforms = Vec::new();
    let listed = spec
        .get("platforms")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    if listed.is_empty() {
        problems.push("spec.platforms must list at least one platform".into());
    }
    for (i, p) in listed.iter().enumerate() {
        let at = format!("spec.platforms[{i}]");
        let uri = str_at(p, "uri").unwrap_or_default();
        if !uri.starts_with("https://") {
            problems.push(format!("{at}.uri must be an https URL, not {uri:?}"));
        }
        let sha256 = str_at(p, "sha256").unwrap_or_default();
        if sha256.len() != 64
            || !sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            problems.push(format!(
                "{at}.sha256 must be 64 lower-case hex digits, not {sha256:?}"
            ));
        }
        let bin = str_at(p, "bin").unwrap_or_default();
        if bin.is_empty() {
            problems.push(format!("{at}.bin must be set"));
        }
        let files: Vec<(String, String)> = p
            .get("files")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|f| {
                (
                    str_at(f, "from").unwrap_or_default(),
                    str_at(f, "to").unwrap_or_default(),
                )
            })
            .collect();
        if files.is_empty()
            || files
                .iter()
                .any(|(from, to)| from.is_empty() || to.is_empty())
        {
            problems.push(format!(
                "{at}.files must list operations, each with `from` and `to`"
            ));
        }
        if !files
            .iter()
            .any(|(from, _)| from == "LICENSE" || from.starts_with("LICENSE"))
        {
            problems.push(format!("{at}.files must install a LICENSE file"));
        }
        let selects = match p.get("selector") {
            Some(selector) => match selected_platforms(selector) {
                Ok(selects) => selects,
                Err(why) => {
                    problems.push(format!("{at}.selector: {why}"));
                    Vec::new()
                }
            },
            None => {
                problems.push(format!("{at}.selector must be set"));
                Vec::new()
            }
        };
        if selects.is_empty() {
            problems.push(format!("{at}.selector selects no platform krew supports"));
        }
        if selects.iter().any(|(os, _)| os == "windows") && !bin.ends_with(".exe") {
            problems.push(format!("{at}.bin must end in .exe on Windows, not {bin:?}"));
        }
        platforms.push(Platform {
            selects,
            uri,
            sha256,
            bin,
            files,
        });
    }
    for (os, arch) in KNOWN_PLATFORMS {
        let matching: Vec<usize> = platforms
            .iter()
            .enumerate()
            .filter(|(_, p)| p.selects.iter().any(|(o, a)| o == os && a == arch))
            .map(|(i, _)| i)
            .collect();
        if matching.len() > 1 {
            problems.push(format!("platforms {matching:?} have overlapping selectors: each selects os={os}/arch={arch}"));
        }
    }
    if problems.is_empty() {
        Ok(platforms)
    } else {
        Err(problems)
    }
}

fn is_safe_plugin_name(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// `vMAJOR.MINOR.PATCH`, with an optional `-pre` and `+build`, no leading zeros.
fn is_v_semver(version: &str) -> bool {
    let Some(rest) = version.strip_prefix('v') else {
        return false;
    };
    let (core, _build) = rest.split_once('+').unwrap_or((rest, ""));
    let (core, pre) = match core.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (core, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    let number_ok = |n: &&str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    numbers.len() == 3
        && numbers.iter().all(number_ok)
        && pre.is_none_or(|p| !p.is_empty() && p.split('.').all(|id| !id.is_empty()))
}

/// The known platforms a label selector selects; an error for keys other than `os`/`arch`.
fn selected_platforms(selector: &Value) -> Result<Vec<(String, String)>, String> {
    let labels = selector.get("matchLabels").and_then(Value::as_mapping);
    let expressions = selector
        .get("matchExpressions")
        .and_then(Value::as_sequence);
    if labels.is_none_or(|l| l.is_empty()) && expressions.is_none_or(|e| e.is_empty()) {
        return Err("an empty selector is not supported".into());
    }
    let mut keys: Vec<String> = labels
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.as_str().map(str::to_string))
        .collect();
    keys.extend(
        expressions
            .into_iter()
            .flatten()
            .filter_map(|e| e.get("key").and_then(Value::as_str).map(str::to_string)),
    );
    if let Some(key) = keys.iter().find(|k| *k != "os" && *k != "arch") {
        return Err(format!("key {key:?} is not supported (only os and arch)"));
    }
    let matches = |os: &str, arch: &str| {
        let value_of = |key: &str| if key == "os" { os } else { arch };
        let labels_match = labels
            .into_iter()
            .flatten()
            .all(|(k, v)| k.as_str().map(value_of) == v.as_str());
        let expressions_match = expressions.into_iter().flatten().all(|e| {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => values.contains(&value_of(key)),
                Some("NotIn") => !values.contains(&value_of(key)),
                Some("Exists") => true,
                _ => false,
            }
        });
        labels_match && expressions_match
    };
    Ok(KNOWN_PLATFORMS
        .iter()
        .filter(|(os, arch)| matches(os, arch))
        .map(|(os, arch)| (os.to_string(), arch.to_string()))
        .collect())
}
