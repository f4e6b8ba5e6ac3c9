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

/// Calls `GET {base_url}/v1/models` with the key (10 s timeout).
pub async fn check_key(base_url: &str, key: &SecretValue) -> KeyCheck {
    let url = format!("{}/v1/models", base_url.trim_end_matches('/'));
    let Ok(key_text) = std::str::from_utf8(key.expose()) else {
        return KeyCheck::Invalid;
    };
    let authorization = zeroize::Zeroizing::new(format!("Bearer {key_text}"));
    let result = tokio::task::spawn_blocking(move || {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let response = agent
            .get(&url)
            .header("Authorization", authorization.as_str())
            .call();
        match response {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response.body_mut().read_to_string().unwrap_or_default();
                classify(status, &body)
            }
            Err(err) => KeyCheck::Network(err.to_string()),
        }
    })
    .await;
    result.unwrap_or_else(|e| KeyCheck::Network(e.to_string()))
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
