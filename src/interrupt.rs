//! Ctrl-C and SIGTERM during a run. The first signal asks the run to stop at the next step
//! boundary: a write in flight finishes and is journaled, a watch (which only reads) stops at
//! once. A second signal exits at once with 130, leaving the journal as it is (`resume` or
//! `rollback --run` still finish the job).
//!
//! Installed only once a run starts writing: before that, the default (the process ends, and
//! nothing was written) is right.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

/// The exit code of a run stopped by a signal (as shells report SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Whether a stop was asked for, shared by the signal task and the run.
#[derive(Clone, Default)]
pub struct Interrupt {
    /// 0: none; 1: SIGINT; 2: SIGTERM.
    signal: Arc<AtomicU8>,
    notify: Arc<Notify>,
}

impl Interrupt {
    /// An interrupt nobody signals (dry runs, tests).
    pub fn none() -> Self {
        Interrupt::default()
    }

    /// Listens for SIGINT and SIGTERM for the rest of the process.
    pub fn install() -> Self {
        let interrupt = Interrupt::default();
        let shared = interrupt.clone();
        tokio::spawn(async move {
            let mut signals = Signals::new();
            let mut seen = 0u32;
            loop {
                let which = signals.next().await;
                seen += 1;
                if seen >= 2 {
                    // The printer belongs to the run; this is the last word of the process.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\nerror: interrupted again: exiting at once; the run's journal says how far it got \
                         (`kubectl rotate status`)"
                    );
                    std::process::exit(i32::from(EXIT_INTERRUPTED));
                }
                shared.signal.store(which, Ordering::SeqCst);
                shared.notify.notify_waiters();
            }
        });
        interrupt
    }

    /// The signal that asked the run to stop, if any.
    pub fn requested(&self) -> Option<&'static str> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            2 => Some("SIGTERM"),
            _ => Some("Ctrl-C (SIGINT)"),
        }
    }

    /// Completes once a stop is asked for.
    pub async fn wait(&self) {
        loop {
            // Registered before the check, so a signal between the two is not missed.
            let notified = self.notify.notified();
            if self.requested().is_some() {
                return;
            }
            notified.await;
        }
    }
}

/// The process's SIGINT and SIGTERM streams, registered once.
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            streams: signal(SignalKind::interrupt())
                .ok()
                .zip(signal(SignalKind::terminate()).ok()),
        }
    }

    #[cfg(unix)]
    async fn next(&mut self) -> u8 {
        let Some((int, term)) = self.streams.as_mut() else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = int.recv() => 1,
            _ = term.recv() => 2,
        }
    }

    #[cfg(not(unix))]
    fn new() -> Self {
        Signals {}
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> u8 {
        let _ = tokio::signal::ctrl_c().await;
        1
    }
}
