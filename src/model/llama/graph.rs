//! A decode step recorded once and replayed.
//!
//! A decode step launches the same kernels on the same buffers whatever its token and position
//! (five a block): only three small inputs change — the token's embedding row, its RoPE angles,
//! and the attention's step parameters (the new token's cache slot, the number of key segments
//! and the launch's size), which the attention kernels read from the device. So the first step
//! on a cache runs as usual (the warm-up that sizes cubecl's pools), is then recorded with
//! cubecl's graph capture (the launches kept with their pipelines, bindings and sizes instead of
//! run) and replayed for its answer, and every later step writes its three inputs in place and
//! replays the recording: the host re-encodes the step's dispatches from a list instead of
//! building each launch through Burn and CubeCL. A recording that fails (cubecl refuses one that
//! would allocate) is an error that loses its cache; the model's steps are launched one by one
//! from then on.
//!
//! A recording belongs to one cache (its rows are among the buffers replayed) and one model (its
//! weights too), and holds every buffer it touched: cubecl keeps the pages of the step's
//! activations out of reuse while a recording lives, and this module keeps the inputs and the
//! output. A step that needs other launches — the first with more than one segment of keys
//! ([`KvCache::segment_keys`]), where attention splits into segments and merges them — records
//! again, once.

use std::sync::atomic::{AtomicU64, Ordering};

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, BackendGraph, Dispatch, backend_extension};
use burn::tensor::{Int, Tensor};
use burn_cubecl::CubeBackend;

use super::tail::{Tail, TailOut};
use super::{Llama, Step};
use crate::model::attention::{STEP_SEGMENTS, step_info};
use crate::model::device::{DeviceError, count_recorded, count_replayed};
use crate::model::error::ModelError;
use crate::model::kv_cache::KvCache;

/// Writing new values over a tensor's buffer in place, as a Burn backend extension (a replayed
/// step reads its inputs from the buffers it was recorded with).
#[backend_extension(Cube)]
pub(crate) trait OverwriteOps: burn::backend::Backend {
    /// Writes `bytes` (the tensor's whole contents) over `tensor`'s buffer, after the work
    /// queued before; returns the tensor.
    fn overwrite_float(tensor: FloatTensor<Self>, bytes: Vec<u8>) -> FloatTensor<Self>;

    /// [`Self::overwrite_float`] for an integer tensor.
    fn overwrite_int(tensor: IntTensor<Self>, bytes: Vec<u8>) -> IntTensor<Self>;
}

impl OverwriteOps for CubeBackend {
    fn overwrite_float(tensor: FloatTensor<Self>, bytes: Vec<u8>) -> FloatTensor<Self> {
        let bytes = cubecl::bytes::Bytes::from_bytes_vec(bytes);
        tensor.client.write(&tensor.handle, bytes);
        tensor
    }

    fn overwrite_int(tensor: IntTensor<Self>, bytes: Vec<u8>) -> IntTensor<Self> {
        let bytes = cubecl::bytes::Bytes::from_bytes_vec(bytes);
        tensor.client.write(&tensor.handle, bytes);
        tensor
    }
}

/// A cache's recorded decode step, if any.
#[derive(Debug, Clone, Default)]
pub(crate) enum GraphSlot {
    /// Nothing recorded yet (or the last recording was for other launches).
    #[default]
    Empty,
    /// A recording, ready to replay.
    Ready(Box<DecodeGraph>),
    /// Never recorded: the cache's steps are launched one by one (the warm-up's throwaway cache,
    /// whose recordings would cost time — each a step run twice — and compile nothing).
    Never,
}

impl GraphSlot {
    /// Drops the recording, if any.
    pub(crate) fn release(&mut self) {
        if let GraphSlot::Ready(_) = self {
            *self = GraphSlot::Empty;
        }
    }
}

/// A recorded decode step and the buffers it reads and writes outside the cache and weights.
#[derive(Debug, Clone)]
pub(crate) struct DecodeGraph {
    graph: BackendGraph<Dispatch>,
    /// The model it was recorded with ([`Llama::identity`]).
    model: u64,
    /// Whether attention runs in segments (then merged) in it.
    segmented: bool,
    /// What it ends with.
    tail: Tail,
    /// `[1, width]`: the token's embedding row.
    row: Tensor<2>,
    /// `[2, 1, head_dim / 2]`: its RoPE angles.
    angles: Tensor<3>,
    /// The attention's step parameters ([`step_info`]).
    info: Tensor<1, Int>,
    /// What its tail writes.
    out: TailOut,
    /// Kernel launches it replays.
    launches: u64,
}

/// A process-wide number for each loaded model (a recording must not replay another model's
/// weights).
pub(super) fn next_model_identity() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Llama {
    /// Whether this model's decode steps are recorded and replayed: the device's choice
    /// (`ComputeDevice::with_decode_graphs`), until the device refuses to record or a recording
    /// fails — then launched one by one for good.
    pub(super) fn records_decode_steps(&self) -> bool {
        self.device.decode_graphs() && !self.recording_failed.load(Ordering::Relaxed)
    }

    /// Whether a decode step on `cache` goes through [`Llama::decode_step`].
    pub(super) fn records_steps_on(&self, cache: &KvCache) -> bool {
        self.records_decode_steps()
            && cache.is_preallocated()
            && !matches!(cache.decode_graph, GraphSlot::Never)
    }

    /// Token `id` at `position` appended to the preallocated `cache`, through the blocks and
    /// `tail`: by replaying the cache's recorded step where it has one for these launches,
    /// otherwise by running the step and recording it for the next. A recording that fails is a
    /// [`DeviceError::Execution`] and loses the cache (the launches it kept never ran, so what
    /// they write — the cache's rows among it — is unwritten); later steps are launched.
    pub(super) fn decode_step(
        &self,
        id: u32,
        position: u64,
        cache: &mut KvCache,
        tail: Tail,
    ) -> Result<TailOut, ModelError> {
        self.decode_step_with(id, position, cache, tail, &|| {})
    }

    /// [`Llama::decode_step`], calling `in_capture` inside a recording's capture window (a test
    /// makes the recording fail with it).
    fn decode_step_with(
        &self,
        id: u32,
        position: u64,
        cache: &mut KvCache,
        tail: Tail,
        in_capture: &dyn Fn(),
    ) -> Result<TailOut, ModelError> {
        let not_rows = || ModelError::BadInput {
            detail: "a recorded decode step needs the preallocated (wgpu) cache".into(),
        };
        if !cache.is_preallocated() {
            return Err(not_rows());
        }
        let info = step_info(1, cache.len(), cache.segment_keys());
        let segmented = info[STEP_SEGMENTS] > 1;
        if let GraphSlot::Ready(graph) = &cache.decode_graph
            && graph.model == self.identity
            && graph.segmented == segmented
            && graph.tail == tail
        {
            let row = self.embedding.rows(&[id])?;
            let angles = self.rope.angles(&[position]);
            let out = graph.replay(&row, &angles, &info, self)?;
            cache.advance(1);
            return Ok(out);
        }

        // The step's inputs as any run has them; the recording keeps these very tensors.
        let row = self.embedding.lookup(&[id], &self.device)?;
        let step = self.step(&[position], cache);
        let info = step.info.clone().ok_or_else(not_rows)?;
        // The old recording goes first: its pages return to the allocator.
        cache.decode_graph = GraphSlot::Empty;
        let record = Dispatch::graph_prepare(self.device.burn().as_dispatch());
        let warm_up = self.tail(&self.blocks(row.clone(), &step, cache, None), tail);
        if let Err(reason) = record {
            log::warn!("decode steps are launched one by one: the device cannot record: {reason}");
            self.recording_failed.store(true, Ordering::Relaxed);
            cache.advance(1);
            return Ok(warm_up);
        }
        // Nothing may be allocated while recording: the warm-up's output goes back to the pools
        // so that the recording's takes its place, and the step's answer comes from replaying
        // the recording (it writes the cache slot the warm-up wrote, with the same values).
        drop(warm_up);
        let (graph, out, launches) =
            self.record(&row, &step, cache, tail, in_capture)
                .map_err(|reason| {
                    self.recording_failed.store(true, Ordering::Relaxed);
                    log::warn!("decode steps are launched one by one: recording failed: {reason}");
                    DeviceError::Execution {
                        reason: format!(
                            "recording a decode step failed, and its cache with it (later steps \
                             are launched one by one): {reason}"
                        ),
                    }
                })?;
        let graph = DecodeGraph {
            graph,
            model: self.identity,
            segmented,
            tail,
            row,
            angles: step.angles.clone(),
            info,
            out,
            launches,
        };
        let out = graph.run(self)?;
        cache.decode_graph = GraphSlot::Ready(Box::new(graph));
        cache.advance(1);
        Ok(out)
    }

    /// Records the step [`Llama::decode_step`] has just warmed up, with the same input tensors:
    /// the graph, its output and the launches in it.
    fn record(
        &self,
        row: &Tensor<2>,
        step: &Step,
        cache: &mut KvCache,
        tail: Tail,
        in_capture: &dyn Fn(),
    ) -> Result<(BackendGraph<Dispatch>, TailOut, u64), String> {
        let dispatch = self.device.burn().as_dispatch();
        Dispatch::graph_start_capture(dispatch).map_err(|e| e.to_string())?;
        let (out, launches) = count_recorded(|| {
            let x = self.blocks(row.clone(), step, cache, None);
            in_capture();
            self.tail(&x, tail)
        });
        let graph = Dispatch::graph_stop_capture(dispatch).map_err(|e| e.to_string())?;
        Ok((graph, out, launches))
    }
}

impl DecodeGraph {
    /// Writes a step's inputs over the recording's and replays it; returns its output (the
    /// recording's buffer, which the next replay overwrites: the queue runs what reads it first).
    fn replay(
        &self,
        row: &[f32],
        angles: &[f32],
        info: &[u32],
        model: &Llama,
    ) -> Result<TailOut, ModelError> {
        overwrite(&self.row, row);
        overwrite(&self.angles, angles);
        let info_bytes = info.iter().flat_map(|v| v.to_le_bytes()).collect();
        <Dispatch as OverwriteOps>::overwrite_int(self.info.clone().into_dispatch(), info_bytes);
        self.run(model)
    }

    /// Replays the recording over the inputs its buffers hold; returns its output.
    fn run(&self, model: &Llama) -> Result<TailOut, ModelError> {
        // SAFETY: every buffer the recording reads or writes outlives this replay: the inputs
        // and the output are held here; the cache's rows by the cache that holds this graph;
        // the weights by the model, checked to be the one recorded with (`model`); the step's
        // activations by the recording itself (cubecl keeps the pages a recording touched from
        // being reused or released while it lives). Everything is on this thread's stream, so
        // writes queued before run before the replay, and the replay before what reads its
        // output.
        unsafe { Dispatch::graph_replay(model.device.burn().as_dispatch(), &self.graph) }.map_err(
            |e| DeviceError::Execution {
                reason: e.to_string(),
            },
        )?;
        count_replayed(self.launches);
        Ok(self.out.clone())
    }
}

/// Writes `values` over `tensor`'s buffer in place (see [`OverwriteOps`]).
fn overwrite<const D: usize>(tensor: &Tensor<D>, values: &[f32]) {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    <Dispatch as OverwriteOps>::overwrite_float(tensor.clone().into_dispatch(), bytes);
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::gguf::{FileSource, GgufHeader};
    use crate::model::device::{ComputeDevice, DeviceChoice};
    use crate::model::plan::KvFormat;
    use burn::tensor::TensorData;
    use pollster::block_on;

    /// The tiny Llama 3.1 (Q4_0) on lavapipe, its decode steps recorded or not.
    fn tiny(graphs: bool) -> Llama {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf"
        );
        let source = FileSource::open(path).unwrap();
        let header = GgufHeader::read(&source).unwrap();
        let device = ComputeDevice::init_native(DeviceChoice::Wgpu).unwrap();
        let device = device.with_decode_graphs(graphs);
        block_on(Llama::load(&header, &source, &device, &mut |_| {})).unwrap()
    }

    /// A prompt, then `steps` greedy steps in a fresh cache: the ids chosen.
    fn greedy(model: &Llama, steps: usize) -> (Vec<u32>, bool) {
        let mut cache = model.new_cache(16, KvFormat::Q8).unwrap();
        let logits = block_on(model.prefill(&[1, 2, 3, 4], &mut cache)).unwrap();
        let mut ids = vec![crate::engine::sampling::argmax(&logits)];
        for _ in 0..steps {
            let position = cache.len() as u64;
            let last = *ids.last().unwrap();
            ids.push(block_on(model.forward_argmax(&[last], &[position], &mut cache)).unwrap());
        }
        (ids, cache.has_decode_graph())
    }

    /// A recording that fails — here a tensor uploaded inside the capture window, which cubecl
    /// refuses — is a device error, not a wrong answer, and the model's later steps are launched
    /// one by one, choosing what a model that never records chooses.
    #[test]
    fn a_failed_recording_is_an_error_and_later_steps_are_launched() {
        let model = tiny(true);
        assert!(model.records_decode_steps());
        let mut cache = model.new_cache(16, KvFormat::Q8).unwrap();
        block_on(model.prefill(&[1, 2, 3, 4], &mut cache)).unwrap();
        let device = model.device.burn().clone();
        let upload = || {
            let data = TensorData::new(vec![0f32; 1 << 20], [1 << 20]);
            drop(Tensor::<1>::from_data(data, &device));
        };
        let step = model.decode_step_with(5, 4, &mut cache, Tail::Argmax, &upload);
        let Err(ModelError::Device(DeviceError::Execution { reason })) = step else {
            panic!("expected a device error, got {step:?}");
        };
        assert!(
            reason.contains("recording a decode step failed"),
            "{reason}"
        );
        assert!(!model.records_decode_steps());
        assert!(!cache.has_decode_graph());

        let (ids, recorded) = greedy(&model, 4);
        assert!(!recorded, "launched one by one");
        assert_eq!(ids, greedy(&tiny(false), 4).0);
        // The same recording without the upload succeeds.
        let (ids_replayed, recorded) = greedy(&tiny(true), 4);
        assert!(recorded);
        assert_eq!(ids_replayed, ids);
    }
}
