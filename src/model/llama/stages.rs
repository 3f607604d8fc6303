//! Where a decode step's device time goes, stage by stage: every block's q/k/v projection, its
//! attention (RoPE and the cache store, the attention kernel, the merge where there is one), its
//! output projection, gate/up and down, then the head. Each stage of each block is launched on
//! its own `repeats` times in one submission and timed against a single launch, so the round
//! trip of the read-back cancels out: what is left is the device's time per launch, the
//! dispatch's own cost included. Summed over the blocks, the stages show which kernel to work
//! on; their sum against the step's wall-clock time shows what the hand-offs between kernels
//! and the host cost.

use burn::tensor::Tensor;
use serde::Serialize;

use super::{Llama, LogitsFor};
use crate::model::attention::attend;
use crate::model::device::{DeviceChoice, DeviceCounters, read_vec};
use crate::model::error::ModelError;
use crate::model::kv_cache::KvCache;
use crate::model::project::{Epilogue, project};

/// One stage of a decode step, over every block (the head: once).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTime {
    /// `qkv`, `attention`, `output`, `gate_up`, `down` or `head`.
    pub stage: &'static str,
    /// Kernel launches it takes per decode step.
    pub launches_per_token: u64,
    /// Milliseconds of device time it takes per decode step.
    pub ms_per_token: f64,
}

/// The stages in the order a step runs them.
const STAGES: [&str; 6] = ["qkv", "attention", "output", "gate_up", "down", "head"];

impl Llama {
    /// Times each stage of a decode step after the tokens in `cache` (see the module's
    /// documentation), each launched `repeats` (≥ 2) times; `now` is a clock in seconds. The
    /// kernels must be compiled already (run a step first). The cache's next row is written over
    /// and over, its length unchanged. On the wgpu device only (the CPU device's cache grows
    /// with every attention call).
    pub async fn stage_times(
        &self,
        cache: &mut KvCache,
        repeats: usize,
        now: &dyn Fn() -> f64,
    ) -> Result<Vec<StageTime>, ModelError> {
        let position = cache.len() as u64;
        self.check_input(&[0], &[position], cache)?;
        if self.device.choice() != DeviceChoice::Wgpu || repeats < 2 {
            return Err(ModelError::BadInput {
                detail: "stage times need the wgpu device and at least 2 repeats".into(),
            });
        }
        // The residual stream's values do not change the kernels' time: the embedding row
        // stands in for every block's input.
        let x = self.embedding.lookup(&[0], &self.device)?;
        let step = self.step(&[position], cache);
        let heads = self.config.n_heads;
        let mut stages: Vec<StageTime> = STAGES
            .iter()
            .map(|&stage| StageTime {
                stage,
                launches_per_token: 0,
                ms_per_token: 0.0,
            })
            .collect();
        for (layer, block) in self.blocks.iter().enumerate() {
            let parts = [&block.q, &block.k, &block.v];
            let qkv = timed(&mut stages[0], repeats, now, || {
                project(
                    &x,
                    Some(&block.attn_norm),
                    &parts,
                    Epilogue::Store,
                    LogitsFor::All,
                )
            })
            .await?;
            let attended = timed(&mut stages[1], repeats, now, || {
                attend(
                    qkv.clone(),
                    &step.angles,
                    heads,
                    layer,
                    cache,
                    step.attention_inputs(),
                )
            })
            .await?;
            timed(&mut stages[2], repeats, now, || {
                project(
                    &attended,
                    None,
                    &[&block.o],
                    Epilogue::AddTo(&x),
                    LogitsFor::All,
                )
            })
            .await?;
            let gated = timed(&mut stages[3], repeats, now, || {
                let parts = [&block.gate, &block.up];
                project(
                    &x,
                    Some(&block.ffn_norm),
                    &parts,
                    Epilogue::SwiGlu,
                    LogitsFor::All,
                )
            })
            .await?;
            timed(&mut stages[4], repeats, now, || {
                project(
                    &gated,
                    None,
                    &[&block.down],
                    Epilogue::AddTo(&x),
                    LogitsFor::All,
                )
            })
            .await?;
        }
        timed(&mut stages[5], repeats, now, || {
            self.head(&x, LogitsFor::Last)
        })
        .await?;
        Ok(stages)
    }
}

/// Adds to `stage` the launches of one `launch()` and the device time of one, from a single
/// launch read back against `repeats` launched back to back and the last read back. Returns
/// the last result.
async fn timed(
    stage: &mut StageTime,
    repeats: usize,
    now: &dyn Fn() -> f64,
    mut launch: impl FnMut() -> Tensor<2>,
) -> Result<Tensor<2>, ModelError> {
    // Once untimed: its launches counted (the read-back's left out), the stage's buffers in the
    // pool before the timed runs.
    let counters = DeviceCounters::start();
    let out = launch();
    stage.launches_per_token += counters.launches();
    read_vec::<f32, 2, _>(out).await?;

    let start = now();
    read_vec::<f32, 2, _>(launch()).await?;
    let once = now() - start;

    let start = now();
    let mut out = launch();
    for _ in 1..repeats {
        out = launch();
    }
    read_vec::<f32, 2, _>(out.clone()).await?;
    let all = now() - start;
    stage.ms_per_token += (all - once) / (repeats - 1) as f64 * 1e3;
    Ok(out)
}
