//! Resolved settings: what the flags and the environment mean, decided once, before any I/O.
//!
//! This is the "resolve" step between parsing (`cli.rs`) and executing (`commands/`). It decides
//! which kubeconfig files are read (kubectl's rules), the request timeout, and whether stdout and
//! stderr get colour. Nothing here opens a connection; `cluster::connect` does that with these values.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::cli::{ColorWhen, GlobalArgs};
use crate::cluster::connect::{ConnectionSettings, KubeconfigSource};
use crate::model::environment::Environment;
use crate::ui::printer::ColorChoice;

pub fn resolve_connection(args: &GlobalArgs, env: &Environment) -> Result<ConnectionSettings> {
    let request_timeout = parse_duration(&args.request_timeout).with_context(|| {
        format!(
            "invalid --request-timeout {:?}: use a number with a unit, such as 30s, 1m or 500ms (0 for no limit)",
            args.request_timeout
        )
    })?;
    Ok(ConnectionSettings {
        kubeconfig: kubeconfig_source(args.kubeconfig.clone(), env),
        context: args.context.clone(),
        cluster: args.cluster.clone(),
        user: args.user.clone(),
        impersonate_user: args.as_user.clone(),
        impersonate_groups: args.as_group.clone(),
        request_timeout: (!request_timeout.is_zero()).then_some(request_timeout),
        namespace: args.namespace.clone(),
    })
}

/// kubectl's precedence: `--kubeconfig`, then the `KUBECONFIG` list, then `~/.kube/config`,
/// and the in-cluster service account only when none of those exists.
pub fn kubeconfig_source(flag: Option<PathBuf>, env: &Environment) -> KubeconfigSource {
    if let Some(path) = flag {
        return KubeconfigSource::Flag(path);
    }
    if let Some(list) = &env.kubeconfig {
        let paths: Vec<PathBuf> = std::env::split_paths(list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return KubeconfigSource::EnvList(paths);
        }
    }
    match &env.home {
        Some(home) if home.join(".kube").join("config").exists() => {
            KubeconfigSource::Default(home.join(".kube").join("config"))
        }
        _ => KubeconfigSource::InCluster,
    }
}

/// `--color`, then `NO_COLOR` / `TERM=dumb` / `FORCE_COLOR`, then terminal detection, per stream.
pub fn resolve_color(when: ColorWhen, env: &Environment) -> ColorChoice {
    match when {
        ColorWhen::Always => ColorChoice {
            stdout: true,
            stderr: true,
        },
        ColorWhen::Never => ColorChoice::default(),
        ColorWhen::Auto if env.no_color || env.term_dumb => ColorChoice::default(),
        ColorWhen::Auto if env.force_color => ColorChoice {
            stdout: true,
            stderr: true,
        },
        ColorWhen::Auto => ColorChoice {
            stdout: env.stdout_is_terminal,
            stderr: env.stderr_is_terminal,
        },
    }
}

/// Parses a duration the way kubectl's flags accept it: Go syntax (`1h30m`, `10s`, `500ms`,
/// `1.5m`) or a bare number of seconds (`30`).
pub fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty duration");
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            bail!("expected a number at {rest:?}");
        }
        let number: f64 = rest[..number_len]
            .parse()
            .with_context(|| format!("bad number {:?}", &rest[..number_len]))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("missing unit after {number} (use ms, s, m or h)"),
            other => bail!("unknown unit {other:?} (use ms, s, m or h)"),
        };
        total += number * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses `--restart`: `auto`, `none`, or `KIND/NAME[,KIND/NAME...]` with kubectl's kind names
/// and short names (deployment/deploy, statefulset/sts, daemonset/ds).
pub fn parse_restart(text: &str) -> Result<crate::plan::patch::RestartMode> {
    use crate::model::workload::WorkloadKind;
    use crate::plan::patch::RestartMode;
    match text.trim() {
        "auto" => return Ok(RestartMode::Auto),
        "none" => return Ok(RestartMode::None),
        _ => {}
    }
    let mut list = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((kind, name)) = item.split_once('/') else {
            bail!("--restart {item:?}: use auto, none, or KIND/NAME such as deployment/api");
        };
        let kind = match kind.to_ascii_lowercase().as_str() {
            "deployment" | "deployments" | "deploy" => WorkloadKind::Deployment,
            "statefulset" | "statefulsets" | "sts" => WorkloadKind::StatefulSet,
            "daemonset" | "daemonsets" | "ds" => WorkloadKind::DaemonSet,
            other => bail!(
                "--restart {item:?}: cannot restart a {other:?}; use deployment, statefulset or daemonset"
            ),
        };
        if name.is_empty() {
            bail!("--restart {item:?}: the name is missing");
        }
        list.push((kind, name.to_string()));
    }
    if list.is_empty() {
        bail!("--restart is empty: use auto, none, or KIND/NAME[,KIND/NAME...]");
    }
    Ok(RestartMode::List(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Environment {
        Environment::default()
    }

    #[test]
    fn kubeconfig_flag_wins_over_the_environment() {
        let env = Environment {
            kubeconfig: Some("/a:/b".into()),
            ..base()
        };
        assert_eq!(
            kubeconfig_source(Some("/only".into()), &env),
            KubeconfigSource::Flag("/only".into())
        );
    }

    #[test]
    fn kubeconfig_env_is_a_path_list_and_empty_entries_are_ignored() {
        let env = Environment {
            kubeconfig: Some("/a::/b:".into()),
            ..base()
        };
        assert_eq!(
            kubeconfig_source(None, &env),
            KubeconfigSource::EnvList(vec!["/a".into(), "/b".into()])
        );
    }

    #[test]
    fn default_kubeconfig_is_used_only_when_it_exists_else_in_cluster() {
        let home = tempfile::tempdir().expect("tempdir");
        let env = Environment {
            kubeconfig: Some("".into()),
            home: Some(home.path().to_path_buf()),
            ..base()
        };
        assert_eq!(kubeconfig_source(None, &env), KubeconfigSource::InCluster);
        std::fs::create_dir(home.path().join(".kube")).expect("mkdir");
        std::fs::write(home.path().join(".kube/config"), "").expect("write");
        assert_eq!(
            kubeconfig_source(None, &env),
            KubeconfigSource::Default(home.path().join(".kube/config"))
        );
    }

    #[test]
    fn durations_follow_kubectl_syntax() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1.5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn restart_lists_use_kubectls_kind_names() {
        use crate::model::workload::WorkloadKind;
        use crate::plan::patch::RestartMode;
        assert_eq!(parse_restart("auto").unwrap(), RestartMode::Auto);
        assert_eq!(parse_restart("none").unwrap(), RestartMode::None);
        assert_eq!(
            parse_restart("deploy/api, sts/db,daemonset/agent").unwrap(),
            RestartMode::List(vec![
                (WorkloadKind::Deployment, "api".into()),
                (WorkloadKind::StatefulSet, "db".into()),
                (WorkloadKind::DaemonSet, "agent".into()),
            ])
        );
        assert!(parse_restart("api").is_err());
        assert!(parse_restart("cronjob/report").is_err());
        assert!(parse_restart("deployment/").is_err());
        assert!(parse_restart(",").is_err());
    }

    #[test]
    fn zero_request_timeout_means_no_limit() {
        let args = GlobalArgs {
            request_timeout: "0".into(),
            ..GlobalArgs::default()
        };
        assert_eq!(
            resolve_connection(&args, &base()).unwrap().request_timeout,
            None
        );
        let args = GlobalArgs {
            request_timeout: "2s".into(),
            ..GlobalArgs::default()
        };
        assert_eq!(
            resolve_connection(&args, &base()).unwrap().request_timeout,
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn a_bad_request_timeout_is_a_clear_error() {
        let args = GlobalArgs {
            request_timeout: "soon".into(),
            ..GlobalArgs::default()
        };
        let err = resolve_connection(&args, &base()).unwrap_err();
        assert!(format!("{err:#}").contains("--request-timeout"), "{err:#}");
    }

    #[test]
    fn no_color_turns_colour_off_even_when_empty_and_on_a_terminal() {
        let env = Environment {
            no_color: true,
            stdout_is_terminal: true,
            stderr_is_terminal: true,
            ..base()
        };
        assert_eq!(resolve_color(ColorWhen::Auto, &env), ColorChoice::default());
        assert_eq!(
            resolve_color(ColorWhen::Always, &env),
            ColorChoice {
                stdout: true,
                stderr: true
            }
        );
    }

    #[test]
    fn colour_follows_each_stream_being_a_terminal() {
        let env = Environment {
            stdout_is_terminal: false,
            stderr_is_terminal: true,
            ..base()
        };
        assert_eq!(
            resolve_color(ColorWhen::Auto, &env),
            ColorChoice {
                stdout: false,
                stderr: true
            }
        );
        let dumb = Environment {
            term_dumb: true,
            stdout_is_terminal: true,
            stderr_is_terminal: true,
            ..base()
        };
        assert_eq!(
            resolve_color(ColorWhen::Auto, &dumb),
            ColorChoice::default()
        );
        assert_eq!(
            resolve_color(ColorWhen::Never, &env),
            ColorChoice::default()
        );
    }
}
