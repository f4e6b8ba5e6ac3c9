//! The HTTP port a pod's app would serve, so health checks through the API server's pod proxy
//! (`/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH`) get a real answer. Declared on the pod
//! template:
//!
//! `fake-kubelet.kubectl-rotate.io/http: '{"port": 8000, "paths": {"/health": 200}}'`
//!
//! `port` defaults to the first `containerPort` of the pod's containers. A started pod answers
//! GET (and HEAD) on a declared path with that status and a one-line body, any other path with
//! 404, any other method with 405. A crash-looping pod does not listen: connections are
//! refused, and the pod proxy answers 503. An invalid annotation crash-loops the pod, like an
//! app that cannot parse its configuration. This module parses and answers; `main` listens.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize;

use crate::http::{Request, Response};

pub const ANNOTATION: &str = "fake-kubelet.kubectl-rotate.io/http";

#[derive(Debug, PartialEq)]
pub struct HttpApp {
    pub port: u16,
    paths: BTreeMap<String, u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpApp {
    port: Option<u16>,
    paths: BTreeMap<String, u16>,
}

/// Parses the annotation; the error is the pod's crash reason.
pub fn parse(annotation: &str, spec: &PodSpec) -> Result<HttpApp, String> {
    let invalid = |why: String| format!("invalid annotation {ANNOTATION}: {why}");
    let raw: RawHttpApp = serde_json::from_str(annotation).map_err(|e| invalid(e.to_string()))?;
    let declared_port = || {
        let ports = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten());
        ports
            .map(|p| p.container_port)
            .next()
            .and_then(|p| u16::try_from(p).ok())
    };
    let port = raw
        .port
        .or_else(declared_port)
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid("no \"port\", and no container declares a containerPort".into()))?;
    if let Some((path, status)) = raw
        .paths
        .iter()
        .find(|(path, status)| !path.starts_with('/') || !(100..=599).contains(*status))
    {
        return Err(invalid(format!(
            "path {path:?} with status {status}: paths start with / and statuses are 100-599"
        )));
    }
    Ok(HttpApp {
        port,
        paths: raw.paths,
    })
}

impl HttpApp {
    /// The app's answer to one request.
    pub fn answer(&self, request: &Request) -> Response {
        if request.method != "GET" && request.method != "HEAD" {
            return Response::error(405, "method not allowed");
        }
        match self.paths.get(&request.path) {
            Some(&status) if (200..300).contains(&status) => Response::new(status, "ok\n"),
            Some(&status) => Response::error(status, &format!("{} failed", request.path)),
            None => Response::error(404, "404 page not found"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request;
    use k8s_openapi::api::core::v1::{Container, ContainerPort};

    fn spec(ports: &[i32]) -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "api".into(),
                ports: Some(
                    ports
                        .iter()
                        .map(|&p| ContainerPort {
                            container_port: p,
                            ..ContainerPort::default()
                        })
                        .collect(),
                ),
                ..Container::default()
            }],
            ..PodSpec::default()
        }
    }

    fn get(app: &HttpApp, line: &str) -> Response {
        app.answer(&parse_request(line).expect("valid request"))
    }

    #[test]
    fn declared_paths_answer_with_their_status_and_others_with_404() {
        let app = parse(
            r#"{"port": 8000, "paths": {"/health": 200, "/ready": 503}}"#,
            &spec(&[]),
        )
        .expect("valid");
        assert_eq!(app.port, 8000);
        assert_eq!(
            get(&app, "GET /health HTTP/1.1"),
            Response::new(200, "ok\n")
        );
        assert_eq!(get(&app, "GET /health?verbose=1 HTTP/1.1").status, 200);
        assert_eq!(
            get(&app, "GET /ready HTTP/1.1"),
            Response::error(503, "/ready failed")
        );
        assert_eq!(get(&app, "GET /other HTTP/1.1").status, 404);
        assert_eq!(get(&app, "POST /health HTTP/1.1").status, 405);
    }

    #[test]
    fn the_port_defaults_to_the_first_container_port() {
        let app = parse(r#"{"paths": {}}"#, &spec(&[3000, 9090])).expect("valid");
        assert_eq!(app.port, 3000);
    }

    #[test]
    fn invalid_annotations_are_crash_reasons() {
        for bad in [
            "not json",
            r#"{"paths": {}}"#,
            r#"{"port": 0, "paths": {}}"#,
            r#"{"port": 8000}"#,
            r#"{"port": 8000, "paths": {"health": 200}}"#,
            r#"{"port": 8000, "paths": {"/health": 99}}"#,
            r#"{"port": 8000, "paths": {}, "extra": 1}"#,
        ] {
            let err = parse(bad, &spec(&[])).expect_err(bad);
            assert!(
                err.starts_with("invalid annotation fake-kubelet.kubectl-rotate.io/http: "),
                "{err}"
            );
        }
    }
}
