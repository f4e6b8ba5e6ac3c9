//! Container logs, as the kubelet serves them at `/containerLogs/NS/POD/CONTAINER`. Nothing
//! runs, so a container's log is what its pod template declares it would print:
//!
//! - `fake-kubelet.kubectl-rotate.io/logs`: the log of every container of the pod, one line per
//!   line of the value (a final newline is optional);
//! - `fake-kubelet.kubectl-rotate.io/logs.CONTAINER`: the log of that container, instead.
//!
//! A crash-looping container never got that far: its log is the single line it failed with,
//! kept in its `lastState.terminated.message` (e.g. `secret validation failed: key ... does not
//! match the required pattern`, never a value). A container with no log annotation logs nothing.
//!
//! Of the kubelet's query parameters, `tailLines`, `limitBytes`, `timestamps` (every line is
//! stamped with the container's start time) and `previous` are honoured; `follow`,
//! `sinceSeconds` and `sinceTime` are accepted and ignored (the whole log is returned at once).
//! Pure: the pod comes in, the text or the kubelet's error goes out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::http::{Request, Response};

pub const ANNOTATION: &str = "fake-kubelet.kubectl-rotate.io/logs";

/// The log parameters we honour, from the kubelet request's query.
#[derive(Debug, Default, PartialEq)]
pub struct LogQuery {
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<usize>,
    pub timestamps: bool,
    pub previous: bool,
}

impl LogQuery {
    pub fn from_request(request: &Request) -> Self {
        let number = |name| request.query(name).and_then(|v| v.parse().ok());
        Self {
            tail_lines: number("tailLines"),
            limit_bytes: number("limitBytes"),
            timestamps: request.query("timestamps") == Some("true"),
            previous: request.query("previous") == Some("true"),
        }
    }
}

/// The lines a started `container` prints, from the pod's annotations.
pub fn declared_lines<'a>(
    annotations: &'a BTreeMap<String, String>,
    container: &str,
) -> Vec<&'a str> {
    let text = annotations
        .get(&format!("{ANNOTATION}.{container}"))
        .or_else(|| annotations.get(ANNOTATION))
        .map(String::as_str)
        .unwrap_or_default();
    text.strip_suffix('\n').unwrap_or(text).lines().collect()
}

/// Applies the query to a log: its last `tailLines` lines, each prefixed with `timestamp` (RFC
/// 3339 with nanoseconds, as the kubelet writes it) when asked, cut at `limitBytes`.
pub fn render(lines: &[&str], timestamp: &str, query: &LogQuery) -> String {
    let skip = query
        .tail_lines
        .map_or(0, |tail| lines.len().saturating_sub(tail));
    let mut out = String::new();
    for line in &lines[skip..] {
        if query.timestamps {
            out.push_str(timestamp);
            out.push(' ');
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(limit) = query.limit_bytes
        && limit < out.len()
    {
        let mut cut = limit;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// The kubelet's answer to a log request for `container` of `pod`: the log, or its error.
pub fn container_log(pod: &Pod, container: &str, query: &LogQuery) -> Response {
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| c.name == container);
    let declared = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .any(|c| c.name == container);
    let Some(status) = status.filter(|_| declared) else {
        if declared {
            return Response::error(
                400,
                &format!(
                    "container {container:?} in pod {pod_name:?} is waiting to start: ContainerCreating"
                ),
            );
        }
        return Response::error(
            400,
            &format!("container {container} is not valid for pod {pod_name}"),
        );
    };

    let running = status.state.as_ref().and_then(|s| s.running.as_ref());
    let crashed = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    match (running, crashed) {
        // Our running containers never restarted, so they have no previous log.
        (Some(running), _) if !query.previous => {
            let empty = BTreeMap::new();
            let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
            let lines = declared_lines(annotations, container);
            Response::new(
                200,
                render(&lines, &stamp(running.started_at.as_ref()), query),
            )
        }
        (None, Some(crashed)) => {
            // The log of the last attempt, which is also what `--previous` would show.
            let reason = crashed.message.as_deref().unwrap_or_default();
            let lines: Vec<&str> = reason.lines().collect();
            Response::new(
                200,
                render(&lines, &stamp(crashed.started_at.as_ref()), query),
            )
        }
        _ => not_started(status, pod_name, query.previous),
    }
}

/// The log of a container the fake kubelet runs for real (see `app`): its log file, or with
/// `previous` the previous run's. None when the container is not a real one (no such files).
/// `follow` returns the log as it is now.
pub fn app_log(
    state_dir: &std::path::Path,
    pod: &Pod,
    container: &str,
    query: &LogQuery,
) -> Option<Response> {
    let uid = pod.metadata.uid.as_deref()?;
    let current = crate::app::log_path(state_dir, uid, container, false);
    if !current.exists() {
        return None;
    }
    let path = if query.previous {
        crate::app::log_path(state_dir, uid, container, true)
    } else {
        current
    };
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    let Ok(bytes) = std::fs::read(&path) else {
        return Some(Response::error(
            400,
            &format!("previous terminated container {container:?} in pod {pod_name:?} not found"),
        ));
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let started = pod
        .status
        .iter()
        .flat_map(|s| s.container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.running.as_ref())
        .and_then(|r| r.started_at.as_ref());
    Some(Response::new(200, render(&lines, &stamp(started), query)))
}

fn not_started(status: &ContainerStatus, pod_name: &str, previous: bool) -> Response {
    let container = &status.name;
    if previous {
        return Response::error(
            400,
            &format!("previous terminated container {container:?} in pod {pod_name:?} not found"),
        );
    }
    let reason = status
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .unwrap_or("ContainerCreating");
    Response::error(
        400,
        &format!("container {container:?} in pod {pod_name:?} is waiting to start: {reason}"),
    )
}

fn stamp(time: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>) -> String {
    time.map(|t| format!("{:.9}", t.0)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Fate, status_patch};
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    const NOW: &str = "2025-01-01T00:00:00Z";
    const LOG: &str =
        "Starting AI Agents API\nSecrets loaded successfully\nredis connection healthy\n";

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A pod as the fake kubelet leaves it once started with `fate`.
    fn started_pod(fate: &Fate) -> Pod {
        let spec = PodSpec {
            containers: vec![Container {
                name: "api".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        let patch = status_patch(&spec, "uid", fate, "198.18.0.2", "198.18.0.1", NOW);
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-1", "annotations": {ANNOTATION: LOG}},
            "status": patch["status"],
        }))
        .expect("a pod");
        pod.spec = Some(spec);
        pod
    }

    fn query(tail_lines: Option<usize>, timestamps: bool) -> LogQuery {
        LogQuery {
            tail_lines,
            timestamps,
            ..LogQuery::default()
        }
    }

    #[test]
    fn the_pod_annotation_is_every_containers_log_unless_one_has_its_own() {
        let both = annotations(&[
            (ANNOTATION, "a\nb\n"),
            ("fake-kubelet.kubectl-rotate.io/logs.sidecar", "s"),
        ]);
        assert_eq!(declared_lines(&both, "app"), ["a", "b"]);
        assert_eq!(declared_lines(&both, "sidecar"), ["s"]);
        assert!(declared_lines(&annotations(&[]), "app").is_empty());
    }

    #[test]
    fn tail_lines_timestamps_and_limit_bytes_apply_in_the_kubelets_order() {
        let lines = ["one", "two", "three"];
        assert_eq!(
            render(&lines, "T", &LogQuery::default()),
            "one\ntwo\nthree\n"
        );
        assert_eq!(render(&lines, "T", &query(Some(1), false)), "three\n");
        assert_eq!(render(&lines, "T", &query(Some(0), false)), "");
        assert_eq!(
            render(&lines, "T", &query(Some(9), false)),
            "one\ntwo\nthree\n"
        );
        assert_eq!(
            render(&lines, "T", &query(Some(2), true)),
            "T two\nT three\n"
        );
        let limited = LogQuery {
            limit_bytes: Some(6),
            ..LogQuery::default()
        };
        assert_eq!(render(&lines, "T", &limited), "one\ntw");
    }

    #[test]
    fn query_parameters_are_read_from_the_kubelet_request() {
        let request = crate::http::parse_request(
            "GET /containerLogs/ns/p/c?tailLines=2&timestamps=true&follow=true HTTP/1.1",
        )
        .expect("valid");
        assert_eq!(LogQuery::from_request(&request), query(Some(2), true));
    }

    #[test]
    fn a_ready_container_logs_the_declared_lines() {
        let pod = started_pod(&Fate::Ready);
        let answer = container_log(&pod, "api", &LogQuery::default());
        assert_eq!(answer, Response::new(200, LOG));
        let stamped = container_log(&pod, "api", &query(Some(1), true));
        assert_eq!(
            stamped.body,
            "2025-01-01T00:00:00.000000000Z redis connection healthy\n"
        );
        let previous = LogQuery {
            previous: true,
            ..LogQuery::default()
        };
        let answer = container_log(&pod, "api", &previous);
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.body,
            "previous terminated container \"api\" in pod \"api-1\" not found\n"
        );
    }

    #[test]
    fn a_crash_looping_container_logs_only_why_it_failed() {
        let reason = r#"secret validation failed: key "k" of Secret "s" does not match the required pattern"#;
        let pod = started_pod(&Fate::CrashLoop {
            reason: reason.into(),
        });
        let answer = container_log(&pod, "api", &LogQuery::default());
        assert_eq!(answer, Response::new(200, format!("{reason}\n")));
        assert!(!answer.body.contains("Secrets loaded successfully"));
    }

    #[test]
    fn unknown_and_unstarted_containers_get_the_kubelets_errors() {
        let mut pod = started_pod(&Fate::Ready);
        let unknown = container_log(&pod, "nope", &LogQuery::default());
        assert_eq!(
            unknown,
            Response::error(400, "container nope is not valid for pod api-1")
        );
        pod.status = None;
        let unstarted = container_log(&pod, "api", &LogQuery::default());
        assert_eq!(
            unstarted,
            Response::error(
                400,
                r#"container "api" in pod "api-1" is waiting to start: ContainerCreating"#
            )
        );
    }
}
