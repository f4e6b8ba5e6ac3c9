//! Error chains as one line: the API client's messages, the proxy routes, the OpenAI check and
//! `main`'s final error all say each cause once, outermost first.

/// An error and its causes, each said once, joined with `: `.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
