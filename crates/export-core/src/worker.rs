//! A pool of worker threads that claim and produce export jobs, and shut down gracefully: on
//! [`WorkerPool::shutdown`] they stop claiming, running jobs get a grace period to finish, and
//! the jobs still running after it are released back to the queue (their attempt not counted) for
//! another worker or the next start.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;
use export_domain::ExportJob;
use uuid::Uuid;

use crate::engine::ExportEngine;

/// Settings of a worker pool.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// How many jobs run at once.
    pub workers: usize,
    /// The workers' name prefix; worker `i` is `<name>-<i>`, as jobs' `lease_owner` shows it.
    /// Names must be unique among the processes sharing a database, or one process could
    /// release another's jobs: the default, [`worker_identity`], is.
    pub name: String,
    /// How long an idle worker waits before looking for work again, unless woken.
    pub idle_poll: Duration,
    /// How long running jobs may take to finish after shutdown is asked for.
    pub grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            workers: 2,
            name: worker_identity(),
            idle_poll: Duration::from_millis(500),
            grace: Duration::from_secs(30),
        }
    }
}

/// A worker name no other process shares: the host's name, this process's id and a random
/// suffix, such as `clinic-db1-4711-9f3a2c1b`. The host name alone repeats across replicas, and
/// the process id alone across containers (where every main process is pid 1).
pub fn worker_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(63)
        .collect();
    let host = if host.is_empty() {
        "worker".to_owned()
    } else {
        host
    };
    let suffix = export_domain::random::random_u32();
    format!("{host}-{}-{suffix:08x}", std::process::id())
}

/// What shutting down did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs the pool finished (completed or failed an attempt) while it ran.
    pub jobs_run: u64,
    /// Jobs still running when the grace period ended, handed back to the queue.
    pub released: Vec<Uuid>,
}

#[derive(Debug, Default)]
struct State {
    stopping: bool,
    /// Bumped by `wake` so idle workers look again at once.
    wakeups: u64,
    running: usize,
    jobs_run: u64,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Wakes a pool's idle workers.
#[derive(Debug, Clone)]
pub struct PoolWaker(Arc<Shared>);

impl PoolWaker {
    pub fn wake(&self) {
        self.0.lock().wakeups += 1;
        self.0.changed.notify_all();
    }
}

/// Worker threads over one engine.
#[derive(Debug)]
pub struct WorkerPool {
    engine: Arc<ExportEngine>,
    shared: Arc<Shared>,
    names: Vec<String>,
    threads: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl WorkerPool {
    /// Starts `config.workers` threads claiming jobs from `engine`.
    pub fn start(engine: Arc<ExportEngine>, config: WorkerConfig) -> WorkerPool {
        WorkerPool::start_observed(engine, config, |_| {})
    }

    /// Starts the pool, calling `observe` with every job a worker finishes an attempt of
    /// (completed, failed, or back to pending for a retry): for metrics and notifications.
    pub fn start_observed(
        engine: Arc<ExportEngine>,
        config: WorkerConfig,
        observe: impl Fn(&ExportJob) + Send + Sync + 'static,
    ) -> WorkerPool {
        let observe: Arc<dyn Fn(&ExportJob) + Send + Sync> = Arc::new(observe);
        let shared = Arc::new(Shared::default());
        let names: Vec<String> = (0..config.workers.max(1))
            .map(|i| format!("{}-{i}", config.name))
            .collect();
        let threads = names
            .iter()
            .map(|name| {
                let (engine, shared, name) = (engine.clone(), shared.clone(), name.clone());
                let (idle, observe) = (config.idle_poll, observe.clone());
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || work(&engine, &shared, &name, idle, observe.as_ref()))
                    .expect("the system can start a worker thread")
            })
            .collect();
        WorkerPool {
            engine,
            shared,
            names,
            threads,
            grace: config.grace,
        }
    }

    /// Tells idle workers there may be work (a job was just submitted).
    pub fn wake(&self) {
        self.waker().wake();
    }

    /// A handle that wakes this pool's idle workers, for the code that submits jobs.
    pub fn waker(&self) -> PoolWaker {
        PoolWaker(self.shared.clone())
    }

    /// The workers' names, as jobs' `lease_owner` shows them.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// How many jobs are being produced right now.
    pub fn running(&self) -> usize {
        self.shared.lock().running
    }

    /// Stops claiming new jobs at once; running ones go on. [`shutdown`](Self::shutdown) then
    /// waits for them: for a process that has just been asked to stop.
    pub fn stop_claiming(&self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
    }

    /// Stops claiming, waits up to the grace period for running jobs, then releases the jobs
    /// still held. Workers still rendering then are left to finish on their own; their results
    /// are discarded, because the jobs are no longer theirs.
    pub fn shutdown(self) -> ShutdownReport {
        let deadline = Instant::now() + self.grace;
        let mut state = self.shared.lock();
        state.stopping = true;
        self.shared.changed.notify_all();
        while state.running > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let (still_running, jobs_run) = (state.running, state.jobs_run);
        drop(state);
        let mut released = Vec::new();
        if still_running > 0 {
            for name in &self.names {
                match self.engine.release_worker(name, Utc::now()) {
                    Ok(jobs) => released.extend(jobs),
                    Err(err) => log::error!("releasing the jobs of worker {name} failed: {err}"),
                }
            }
            log::warn!(
                "{} jobs were still running after the grace period and were released",
                released.len()
            );
        } else {
            for thread in self.threads {
                let _ = thread.join();
            }
        }
        ShutdownReport { jobs_run, released }
    }
}

fn work(
    engine: &ExportEngine,
    shared: &Shared,
    name: &str,
    idle: Duration,
    observe: &(dyn Fn(&ExportJob) + Send + Sync),
) {
    loop {
        let seen = {
            let mut state = shared.lock();
            if state.stopping {
                return;
            }
            state.running += 1;
            state.wakeups
        };
        // A panic outside the render (which `run_next` catches itself) costs this turn, never
        // the thread: the job's lease lapses and the attempt is counted when it is claimed again.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match engine.fail_lost_jobs(Utc::now()) {
                Ok(lost) => lost.iter().for_each(observe),
                Err(err) => log::warn!("worker {name}: failing lost jobs: {err}"),
            }
            engine.run_next(name, Utc::now())
        }))
        .unwrap_or_else(|_| {
            log::error!("worker {name}: a job attempt panicked outside the render");
            Ok(None)
        });
        if let Ok(Some(job)) = &outcome {
            observe(job);
        }
        let mut state = shared.lock();
        state.running -= 1;
        shared.changed.notify_all();
        let pause = match outcome {
            Ok(Some(job)) => {
                state.jobs_run += 1;
                log::info!(
                    "worker {name}: job {} is {} after {} attempts",
                    job.id,
                    job.status,
                    job.attempts
                );
                continue;
            }
            Ok(None) => idle,
            Err(err) => {
                log::warn!("worker {name}: {err}");
                idle
            }
        };
        // Idle: wait for a wake-up, shutdown, or the poll interval.
        let deadline = Instant::now() + pause;
        while !state.stopping && state.wakeups == seen {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = shared
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}
