//! The scheduler's loop in the server: every tick, due scheduled reports become jobs (and
//! deliveries and notifications go out); every expiry interval, the expiry pass deletes the files
//! whose retention has passed and sweeps the leftovers. A row a pass cannot handle is logged by
//! id and counted in `export_background_errors_total`; the pass goes on. Runs in `--role scheduler` and `--role all` processes; several may
//! share a database (the tick is exactly-once per due time, expiry is idempotent).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use export_core::engine::ExportEngine;
use export_core::worker::PoolWaker;
use export_schedule::scheduler::Scheduler;

use crate::metrics::Metrics;

/// The running loop.
#[derive(Debug)]
pub struct Maintenance {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: JoinHandle<()>,
}

impl Maintenance {
    pub fn start(
        scheduler: Arc<Scheduler>,
        engine: Arc<ExportEngine>,
        tick: Duration,
        expiry: Duration,
        waker: Option<PoolWaker>,
        metrics: Arc<Metrics>,
    ) -> Maintenance {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("maintenance".into())
            .spawn(move || {
                let (mut next_tick, mut next_expiry) = (Instant::now(), Instant::now());
                loop {
                    let now = Instant::now();
                    if now >= next_tick {
                        match scheduler.tick(Utc::now()) {
                            Ok(report) => {
                                if report.submitted > 0 {
                                    log::info!(
                                        "scheduler: {} runs submitted, {} missed due times coalesced, {} refused",
                                        report.submitted,
                                        report.skipped,
                                        report.refused
                                    );
                                    if let Some(waker) = &waker {
                                        waker.wake();
                                    }
                                }
                                metrics.background_errors("tick", report.errors as u64);
                            }
                            Err(err) => {
                                log::warn!("scheduler tick failed: {err}");
                                metrics.background_errors("tick", 1);
                            }
                        }
                        match scheduler.deliver(Utc::now()) {
                            Ok(report) => {
                                if report.delivered + report.failed + report.notified > 0 {
                                    log::info!(
                                        "delivery: {} reports delivered, {} failed, {} retrying, {} notifications sent",
                                        report.delivered,
                                        report.failed,
                                        report.retrying,
                                        report.notified
                                    );
                                }
                                metrics.background_errors("deliver", report.errors as u64);
                            }
                            Err(err) => {
                                log::warn!("delivery pass failed: {err}");
                                metrics.background_errors("deliver", 1);
                            }
                        }
                        next_tick = now + tick;
                    }
                    if now >= next_expiry {
                        match engine.expire(Utc::now(), false) {
                            Ok(report) => {
                                if report.expired > 0 {
                                    log::info!(
                                        "expiry: {} exports expired, {} bytes deleted",
                                        report.expired,
                                        report.bytes
                                    );
                                }
                                metrics.background_errors("expire", report.failed);
                                metrics.background_errors("sweep", report.sweep_failed);
                            }
                            Err(err) => {
                                log::warn!("expiry pass failed: {err}");
                                metrics.background_errors("expire", 1);
                            }
                        }
                        next_expiry = now + expiry;
                    }
                    let wake_at = next_tick.min(next_expiry);
                    let (lock, changed) = &*signal;
                    let mut stopping = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    while !*stopping && Instant::now() < wake_at {
                        let left = wake_at.saturating_duration_since(Instant::now());
                        stopping = changed
                            .wait_timeout(stopping, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    if *stopping {
                        return;
                    }
                }
            })
            .expect("the system can start the maintenance thread");
        Maintenance { stop, thread }
    }

    /// Stops the loop after the pass it is in.
    pub fn stop(self) {
        *self.stop.0.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.stop.1.notify_all();
        let _ = self.thread.join();
    }
}
