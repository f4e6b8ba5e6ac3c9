//! `--check-key` for the `openai` preset: ask the OpenAI API whether a new key works before it is
//! written anywhere, with `GET /v1/models`, and classify the answer. The key travels only in the
//! Authorization header; the answer's body is never printed (OpenAI's error text quotes part of
//! the key), only classified.

use std::time::Duration;

use crate::values::SecretValue;

/// What the API said about the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// 200: the key works.
    Valid,
    /// 401: the key is wrong, revoked, or not a key.
    Invalid,
    /// 401 whose body says "Missing scopes": a restricted key without model access.
    MissingScopes,
    /// Another status.
    Unexpected(u16),
    /// No answer: DNS, TLS, connection, timeout.
    Network(String),
}

impl KeyCheck {
    pub fn describe(&self) -> String {
        match self {
            KeyCheck::Valid => "valid: GET /v1/models answered 200".into(),
            KeyCheck::Invalid => "invalid: GET /v1/models answered 401 (wrong, revoked or mistyped key)".into(),
            KeyCheck::MissingScopes => {
                "missing scopes: GET /v1/models answered 401 \"Missing scopes\" (a restricted key without model access)".into()
            }
            KeyCheck::Unexpected(code) => format!("unexpected answer: GET /v1/models answered {code}"),
            KeyCheck::Network(why) => format!("network error: {why}"),
        }
    }
}

/// Classifies an answer to `GET /v1/models`.
pub fn classify(status: u16, body: &str) -> KeyCheck {
    match status {
        200 => KeyCheck::Valid,
        401 if body.to_ascii_lowercase().contains("missing scopes") => KeyCheck::MissingScopes,
        401 => KeyCheck::Invalid,
        other => KeyCheck::Unexpected(other),
    }
}

/// Calls `GET {base_url}/v1/models` with the key (10 s timeout), through the proxy kubectl would
/// use for that URL (`HTTPS_PROXY`/`NO_PROXY`), trusting this machine's certificates.
pub async fn check_key(base_url: &str, key: &SecretValue) -> KeyCheck {
    let url = format!("{}/v1/models", base_url.trim_end_matches('/'));
    let Ok(key_text) = std::str::from_utf8(key.expose()) else {
        return KeyCheck::Invalid;
    };
    let bearer = zeroize::Zeroizing::new(format!("Bearer {key_text}"));
    let Ok(mut authorization) = http::HeaderValue::from_str(&bearer) else {
        return KeyCheck::Invalid;
    };
    authorization.set_sensitive(true);
    match tokio::time::timeout(Duration::from_secs(10), get(&url, authorization)).await {
        Ok(Ok((status, body))) => classify(status, &body),
        Ok(Err(err)) => KeyCheck::Network(err),
        Err(_) => KeyCheck::Network(format!("no answer from {url} within 10s")),
    }
}

async fn get(url: &str, authorization: http::HeaderValue) -> Result<(u16, String), String> {
    use http_body_util::BodyExt as _;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a URL: {e}"))?;
    let route = crate::cluster::net::proxy::route(
        &uri,
        None,
        &crate::cluster::net::ProxyEnv::from_process(),
    )
    .map_err(|e| e.to_string())?;
    let tls = crate::cluster::net::platform_tls().map_err(|e| e.to_string())?;
    let connector =
        crate::cluster::net::https_connector(&route, tls, None).map_err(|e| e.to_string())?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, String>(connector);
    let request = http::Request::get(uri)
        .header(http::header::AUTHORIZATION, authorization)
        .header(
            http::header::USER_AGENT,
            concat!("kubectl-rotate/", env!("CARGO_PKG_VERSION")),
        )
        .body(String::new())
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| crate::model::errors::error_chain(&e))?;
    let status = response.status().as_u16();
    // The answer is only classified; a body over 1 MiB is cut.
    let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_by_status_and_body() {
        assert_eq!(classify(200, "{}"), KeyCheck::Valid);
        assert_eq!(
            classify(401, r#"{"error":{"message":"Incorrect API key provided"}}"#),
            KeyCheck::Invalid
        );
        assert_eq!(
            classify(
                401,
                r#"{"error":{"message":"You have insufficient permissions for this operation. Missing scopes: api.model.read."}}"#
            ),
            KeyCheck::MissingScopes
        );
        assert_eq!(classify(429, ""), KeyCheck::Unexpected(429));
    }
}
