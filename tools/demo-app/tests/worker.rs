//! The worker role against real servers: it takes a job from the Redis list `jobs`, decrypts
//! that tenant's config and logs it; it keeps a heartbeat; SIGTERM stops it cleanly.

mod support;

use std::time::Duration;

use support::{AppProcess, Stack};

#[test]
fn worker_processes_a_job_pushed_to_redis() {
    let stack = Stack::start();
    let mut worker = AppProcess::start("worker", &stack.env(&stack.secrets));
    worker
        .wait_for_line("Waiting for jobs", Duration::from_secs(30))
        .unwrap_or_else(|| panic!("worker did not start; log:\n{}", worker.output()));
    let lines = worker.lines();
    assert_eq!(lines[0], "Starting AI Agents worker");
    assert_eq!(lines[4], "Tenant configs decrypted: 3");

    let mut redis = stack.redis.connect();
    let _: i64 = redis::cmd("LPUSH")
        .arg("jobs")
        .arg("tenant-2")
        .query(&mut redis)
        .expect("LPUSH");
    worker
        .wait_for_line("Processed job for tenant tenant-2", Duration::from_secs(10))
        .unwrap_or_else(|| panic!("job not processed; log:\n{}", worker.output()));

    let _: i64 = redis::cmd("LPUSH")
        .arg("jobs")
        .arg("tenant-404")
        .query(&mut redis)
        .expect("LPUSH");
    worker
        .wait_for_line(
            "job for tenant tenant-404 failed: unknown tenant",
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("unknown tenant not reported; log:\n{}", worker.output()));

    let heartbeat: Option<u64> = redis::cmd("GET")
        .arg("worker:heartbeat")
        .query(&mut redis)
        .expect("GET heartbeat");
    assert!(
        heartbeat.is_some_and(|t| t > 1_700_000_000),
        "heartbeat {heartbeat:?}"
    );

    worker.signal("TERM");
    let status = worker.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "log:\n{}", worker.output());
}
