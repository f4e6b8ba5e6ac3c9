//! The `worker` role, in the place of the runbook's Celery workers: it takes jobs from the Redis
//! list `jobs` (`BLPOP jobs 1`; a job is a tenant id), reads and decrypts that tenant's config
//! through the pools, and logs the outcome. It also writes `worker:heartbeat` (unix time) on
//! every turn, so a stale Redis password shows up within a turn or two even with no jobs.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::App;
use crate::log;
use crate::tenants;

/// How long `BLPOP` waits for a job; also the pace of the heartbeat.
const BLPOP_SECONDS: u64 = 1;
/// Pause after a Redis failure, so a broken connection does not turn into a busy loop.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs until the process is stopped.
pub async fn run(app: Arc<App>) -> Result<(), String> {
    log("Waiting for jobs");
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let heartbeat = app
            .backends
            .redis::<()>(redis::cmd("SET").arg("worker:heartbeat").arg(now))
            .await;
        let job = match heartbeat {
            Ok(()) => {
                app.backends
                    .redis::<Option<(String, String)>>(
                        redis::cmd("BLPOP").arg("jobs").arg(BLPOP_SECONDS),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        match job {
            Ok(Some((_list, tenant))) => {
                match tenants::config_for(&app.backends, &app.fernet, &tenant).await {
                    Ok(_) => log(format_args!("Processed job for tenant {tenant}")),
                    Err(failure) => log(format_args!("job for tenant {tenant} failed: {failure}")),
                }
            }
            Ok(None) => {}
            Err(e) => {
                log(format_args!("worker error: redis: {e}"));
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    }
}
