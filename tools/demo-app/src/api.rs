//! The `api` role: a small HTTP/1.1 server (hyper, no framework) with the runbook's endpoints.
//!
//! - `GET /health`, `GET /api/v1/health`: 200 when PostgreSQL answers `SELECT 1` and Redis
//!   answers `PING` through the pools (so a stale password shows up here once the pooled
//!   connection is recycled), else 503 naming what failed and why.
//! - `GET /api/v1/tenants/<id>/config`: the tenant's decrypted config (cached in Redis);
//!   404 unknown tenant, 503 PostgreSQL or Redis failure, 500 `decryption failed`.
//!
//! Every failure is logged on one line, without secret values.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::App;
use crate::log;
use crate::tenants::{self, Failure};

/// Serves until the process is stopped.
pub async fn serve(app: Arc<App>, addr: SocketAddr) -> Result<(), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // The bound address, so that PORT=0 (tests) tells which port was chosen.
    let bound = listener.local_addr().unwrap_or(addr);
    log(format_args!("Listening on {bound}"));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // E.g. out of file descriptors: wait rather than spin or die.
                log(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(app.clone(), req));
            // A client that goes away mid-request is not worth a log line.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method not allowed"}),
        ));
    }
    let path = req.uri().path();
    let response = if path == "/health" || path == "/api/v1/health" {
        health(&app).await
    } else if let Some(id) = path
        .strip_prefix("/api/v1/tenants/")
        .and_then(|rest| rest.strip_suffix("/config"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
    {
        tenant_config(&app, id).await
    } else {
        reply(StatusCode::NOT_FOUND, json!({"error": "not found"}))
    };
    Ok(response)
}

async fn health(app: &App) -> Response<Full<Bytes>> {
    let ping = redis::cmd("PING");
    let (database, redis) = tokio::join!(
        app.backends.query("SELECT 1", &[]),
        app.backends.redis::<String>(&ping),
    );
    let mut errors = serde_json::Map::new();
    if let Err(e) = &database {
        log(format_args!("health check failed: database: {e}"));
        errors.insert("database".into(), e.clone().into());
    }
    if let Err(e) = &redis {
        log(format_args!("health check failed: redis: {e}"));
        errors.insert("redis".into(), e.clone().into());
    }
    let word = |ok: bool| if ok { "healthy" } else { "unhealthy" };
    if errors.is_empty() {
        reply(
            StatusCode::OK,
            json!({"status": "healthy", "database": "healthy", "redis": "healthy"}),
        )
    } else {
        reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({
                "status": "unhealthy",
                "database": word(database.is_ok()),
                "redis": word(redis.is_ok()),
                "errors": errors,
            }),
        )
    }
}

async fn tenant_config(app: &App, id: &str) -> Response<Full<Bytes>> {
    match tenants::config_for(&app.backends, &app.fernet, id).await {
        Ok((config, cached)) => {
            let mut response = Response::new(Full::new(Bytes::from(config)));
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            // Lets a client (and the tests) see that the cache is in use.
            let cache = if cached { "hit" } else { "miss" };
            headers.insert("x-cache", HeaderValue::from_static(cache));
            response
        }
        Err(Failure::NotFound) => reply(StatusCode::NOT_FOUND, json!({"error": "unknown tenant"})),
        Err(failure) => {
            log(format_args!("request failed: {failure} (tenant {id})"));
            let (status, error) = match failure {
                Failure::Decrypt(_) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "decryption failed".to_string(),
                ),
                other => (StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
            };
            reply(status, json!({"error": error}))
        }
    }
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
