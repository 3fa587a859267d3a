//! What every handler shares.

use std::sync::Arc;

use export_core::engine::ExportEngine;
use export_core::worker::PoolWaker;

use crate::auth::TokenVerifier;
use crate::client::{IpLimiter, TrustedProxies};
use crate::metrics::Metrics;

/// What every handler shares.
pub struct AppState {
    pub engine: Arc<ExportEngine>,
    pub tokens: TokenVerifier,
    pub metrics: Arc<Metrics>,
    pub ip_limiter: IpLimiter,
    /// The proxies whose `X-Forwarded-For` names the client.
    pub proxies: TrustedProxies,
    pub exports_per_hour: u32,
    pub link_minutes: i64,
    pub max_body_bytes: usize,
    /// Wakes this process's workers when a job is submitted; `None` in an API-only process.
    pub waker: Option<PoolWaker>,
    /// Scheduled reports.
    pub scheduler: Option<Arc<export_schedule::scheduler::Scheduler>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
