//! API errors as messages that say what failed, why, and what to do next: a refusal names the
//! RBAC rule that would allow it (`access`), a refused certificate says so in kubectl's words
//! (`net::verify`), a timeout names `--request-timeout`. Pure, so each case is tested.

use std::time::Duration;

use anyhow::anyhow;

use crate::model::clock::humanize;
use crate::model::errors::error_chain;

/// The message for a failed request; pure so that each case can be tested.
pub fn explain_error(
    err: kube::Error,
    action: &str,
    server: &str,
    request_timeout: Option<Duration>,
) -> anyhow::Error {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            match crate::cluster::access::forbidden_advice(&status.message) {
                Some(advice) => anyhow!(
                    "cannot {action}: permission denied: {}\n{advice}",
                    status.message
                ),
                None => anyhow!(
                    "cannot {action}: permission denied: {}\nask a cluster administrator for that permission \
                     (check yours with `kubectl auth can-i --list`), or use another --context/--as",
                    status.message
                ),
            }
        }
        kube::Error::Api(status) if status.code == 401 => anyhow!(
            "cannot {action}: the API server at {server} did not accept your credentials ({}); \
             log in again or check the kubeconfig user",
            status.message
        ),
        kube::Error::Api(status) => {
            anyhow!("cannot {action}: {} ({})", status.message, status.reason)
        }
        other => {
            let chain = error_chain(&other);
            let timed_out = chain.to_lowercase().contains("timed out") || chain.contains("elapsed");
            match (timed_out, request_timeout) {
                (true, Some(limit)) => anyhow!(
                    "cannot {action}: the API server at {server} did not answer within --request-timeout={}; \
                     check that the cluster is reachable, or raise --request-timeout",
                    humanize(limit)
                ),
                _ if chain.contains("certificate")
                    && crate::cluster::net::verify::last_refusal().is_some() =>
                {
                    anyhow!(
                        "cannot {action}: the API server at {server} presented a certificate that kubectl would refuse too: {}",
                        crate::cluster::net::verify::last_refusal().unwrap_or_default()
                    )
                }
                _ if chain.contains("through the proxy") => anyhow!(
                    "cannot {action}: cannot reach the API server at {server}: {chain}\n\
                     check the proxy (unset it, or add the server to NO_PROXY, if the cluster is reachable without it)"
                ),
                _ => anyhow!(
                    "cannot {action}: cannot reach the API server at {server}: {chain}\n\
                     check that the cluster is running and that --context/--kubeconfig point at it"
                ),
            }
        }
    }
}

/// One line for a failed request: the server's message, or the transport's error chain. A
/// refusal (Forbidden) also names the rule that would allow it.
pub fn short_error(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if status.code == 403 => {
            match crate::cluster::access::forbidden_rule(&status.message) {
                Some((rule, namespace)) => format!(
                    "{} (to allow it, add to {}: {})",
                    status.message,
                    crate::cluster::access::where_to_add(namespace.as_deref()),
                    rule.inline()
                ),
                None => status.message.clone(),
            }
        }
        kube::Error::Api(status) => status.message.clone(),
        other => error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        let status = Status::failure(message, reason).with_code(code);
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_forbidden_answer_names_the_missing_permission_and_the_next_step() {
        let err = explain_error(
            api_error(
                403,
                "Forbidden",
                r#"secrets is forbidden: User "nobody" cannot list resource "secrets" in API group "" in the namespace "prod""#,
            ),
            "list Secrets in namespace \"prod\"",
            "https://127.0.0.1:6443/",
            None,
        );
        let text = format!("{err:#}");
        assert!(text.contains(r#"cannot list resource "secrets""#), "{text}");
        assert!(text.contains("kubectl auth can-i"), "{text}");
    }
}
