//! What the device is asked to do, counted: kernel launches (run, recorded into a graph, and
//! replayed) and bytes read back — for `bench` and for tests that pin a decode step's cost.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::DeviceError;

/// Reads a tensor back to the host as `E` values, asynchronously (synchronous readback panics
/// on wasm), flattened row-major. Burn resolves the readback lazily: this returns only once
/// the device has finished the work, since it takes the values.
pub(crate) async fn read_vec<E, const D: usize, K>(
    tensor: burn::tensor::Tensor<D, K>,
) -> Result<Vec<E>, DeviceError>
where
    E: burn::tensor::Element,
    K: burn::tensor::kind::Basic,
{
    let data = tensor
        .into_data_async()
        .await
        .map_err(|e| DeviceError::Execution {
            reason: e.to_string(),
        })?;
    READBACK_BYTES.fetch_add(data.bytes().len() as u64, Ordering::Relaxed);
    data.try_into_vec_as::<E>()
        .map_err(|e| DeviceError::Execution {
            reason: format!("{e:?}"),
        })
}

/// Bytes [`read_vec`] has read back from any device since the process started.
static READBACK_BYTES: AtomicU64 = AtomicU64::new(0);

/// Counts what a stretch of work costs the device: kernel launches (ours and Burn's, through
/// cubecl's launch observer, and those a recorded decode step replays) and bytes read back,
/// from [`DeviceCounters::start`] on. Process-wide: run nothing else on the device while counting.
#[derive(Debug)]
pub struct DeviceCounters {
    launches_at_start: u64,
    readback_at_start: u64,
}

impl DeviceCounters {
    /// Starts counting.
    pub fn start() -> Self {
        Self {
            launches_at_start: launch_count().run.load(Ordering::Relaxed),
            readback_at_start: READBACK_BYTES.load(Ordering::Relaxed),
        }
    }

    /// Kernel launches so far.
    pub fn launches(&self) -> u64 {
        launch_count().run.load(Ordering::Relaxed) - self.launches_at_start
    }

    /// Bytes read back so far.
    pub fn readback_bytes(&self) -> u64 {
        READBACK_BYTES.load(Ordering::Relaxed) - self.readback_at_start
    }
}

/// Every kernel launch the process has issued since the counter was first asked for: `run`
/// counts those the device runs, `recorded` those issued while a graph records (run later, by
/// replays: [`count_replayed`]). cubecl has one observer slot, so this one stays installed.
#[derive(Debug, Default)]
struct LaunchCount {
    run: AtomicU64,
    recorded: AtomicU64,
    recording: AtomicBool,
}

impl cubecl::logging::LaunchObserver for LaunchCount {
    fn launched(&self, _kernel: &'static str) {
        match self.recording.load(Ordering::Relaxed) {
            true => self.recorded.fetch_add(1, Ordering::Relaxed),
            false => self.run.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The process's launch counter, installed as cubecl's launch observer on first use.
fn launch_count() -> &'static LaunchCount {
    static COUNT: OnceLock<Arc<LaunchCount>> = OnceLock::new();
    COUNT.get_or_init(|| {
        let count = Arc::new(LaunchCount::default());
        // Never dropped: the observation lasts as long as the process.
        std::mem::forget(cubecl::logging::LaunchObservation::new(count.clone()));
        count
    })
}

/// Runs `record` (which records launches into a graph instead of running them) and returns its
/// result and the launches it recorded.
pub(crate) fn count_recorded<T>(record: impl FnOnce() -> T) -> (T, u64) {
    let count = launch_count();
    let before = count.recorded.load(Ordering::Relaxed);
    count.recording.store(true, Ordering::Relaxed);
    let out = record();
    count.recording.store(false, Ordering::Relaxed);
    (out, count.recorded.load(Ordering::Relaxed) - before)
}

/// Counts `launches` a graph's replay runs.
pub(crate) fn count_replayed(launches: u64) {
    launch_count().run.fetch_add(launches, Ordering::Relaxed);
}
