//! `lynx bench infer`: times the stages of answering a question about an image (vision encoder,
//! bridge, LLM prefill, decoding) with HF-4.28 generation semantics, so the Rust engine can be
//! compared side by side with PyTorch (tools/bench_reference.py measures the same quantities
//! the same way). Results are medians over timed iterations; see BENCHMARKS.md. `lynx bench
//! train` (train.rs) times training steps.

pub mod presets;
pub mod stats;
pub mod train;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::generation::{generate_with, GenerationConfig, StepModel};
use crate::model::lynx::Lynx;
use crate::model::session::LlmSession;
use crate::{Error, Result};

pub use presets::{random_model, Preset, RandomModel};
pub use stats::{current_rss_bytes, peak_rss_bytes, process_cpu_time, Stats};
pub use train::{run_train_bench, TrainBenchOptions, TrainReport, TrainStepTimes};

/// What to run: batch and sequence sizes, decoding and repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct InferOptions {
    /// Images (and prompts) per batch.
    pub batch: usize,
    /// Square input resolution of the vision encoder.
    pub image_res: usize,
    /// Text tokens per prompt (no padding); the LLM reads `num_bridge_tokens` more.
    pub prompt_tokens: usize,
    /// New tokens per answer (EOS is disabled, so every answer has exactly this many).
    pub new_tokens: usize,
    /// Beam width of the beam-search run; 1 runs greedy decoding only.
    pub num_beams: usize,
    /// Timed iterations.
    pub iters: usize,
    /// Untimed iterations before them (allocator and cache warm-up).
    pub warmup: usize,
    /// Seed of the random pixels and prompt ids.
    pub seed: u64,
}

impl InferOptions {
    pub fn validate(&self) -> Result<()> {
        for (key, v) in [
            ("batch", self.batch),
            ("prompt_tokens", self.prompt_tokens),
            ("new_tokens", self.new_tokens),
            ("num_beams", self.num_beams),
            ("iters", self.iters),
        ] {
            if v == 0 {
                return Err(Error::config(key, "must be at least 1"));
            }
        }
        if self.new_tokens < 2 {
            return Err(Error::config(
                "new_tokens",
                "must be at least 2 (decoding is timed from the second new token on)",
            ));
        }
        Ok(())
    }
}

/// The times of one iteration, in milliseconds: wall clock, and the process's CPU time for
/// vision + bridge + embeddings (`None` where the OS does not report it).
#[derive(Debug, Clone, Default, Serialize)]
pub struct IterTimes {
    pub vision_ms: f64,
    pub vision_cpu_ms: Option<f64>,
    pub bridge_ms: f64,
    /// Token embeddings and concatenation with the bridge tokens.
    pub embed_ms: f64,
    /// CPU time of vision, bridge and embeddings together.
    pub media_cpu_ms: Option<f64>,
    pub greedy: GenTimes,
    pub beam: Option<GenTimes>,
}

/// Where one `generate` call spent its time.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GenTimes {
    /// The model call on the prompt (once per input row).
    pub prefill_ms: f64,
    /// All single-token model calls.
    pub decode_ms: f64,
    /// Single-token model calls made.
    pub decode_steps: usize,
    /// The whole `generate` call (model calls, processors, beam bookkeeping, cache reordering).
    pub generate_ms: f64,
    pub generate_cpu_ms: Option<f64>,
}

/// Summary of one decoding mode.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeReport {
    pub num_beams: usize,
    /// Prompt tokens (bridge + text) per second of the prefill call.
    pub prefill_tokens_per_s: Stats,
    /// New tokens per answer per second over the single-token calls: batch × steps / time.
    /// Beam search feeds `num_beams` rows per answer per step.
    pub decode_tokens_per_s: Stats,
    /// Milliseconds per single-token call (the whole batch).
    pub decode_step_ms: Stats,
    /// Vision + bridge + embeddings + generate, divided by the batch size.
    pub e2e_ms_per_answer: Stats,
    /// The same in CPU time (all threads): robust to other programs on the machine.
    pub e2e_cpu_ms_per_answer: Option<Stats>,
}

/// Everything `lynx bench infer` reports.
#[derive(Debug, Clone, Serialize)]
pub struct InferReport {
    pub implementation: String,
    /// The model: a preset's name or the config/model path.
    pub model: String,
    pub options: InferOptions,
    pub device: String,
    pub dtype: String,
    /// Threads of candle's CPU kernels (RAYON_NUM_THREADS).
    pub threads: usize,
    /// Parameters per top-level module, where known.
    pub parameters: BTreeMap<String, usize>,
    /// Vision tokens per image and LLM input length (bridge tokens + prompt).
    pub vision_tokens: usize,
    pub llm_input_tokens: usize,
    pub vision_ms_per_image: Stats,
    /// CPU time of the vision encoder per image (all threads).
    pub vision_cpu_ms_per_image: Option<Stats>,
    pub bridge_ms: Stats,
    pub greedy: DecodeReport,
    pub beam: Option<DecodeReport>,
    /// VmHWM after the run, MiB.
    pub peak_rss_mib: Option<f64>,
    /// VmRSS once the model was built, before the first iteration, MiB.
    pub model_rss_mib: Option<f64>,
    /// Accelerator memory is not reported: candle 0.11 exposes no allocator statistics.
    pub gpu_peak_mib: Option<f64>,
    pub iterations: Vec<IterTimes>,
}

/// An [`LlmSession`] that times its model calls.
struct TimedSession<'a> {
    inner: LlmSession<'a>,
    device: Device,
    times: GenTimes,
}

impl TimedSession<'_> {
    fn timed(
        &mut self,
        f: impl FnOnce(&mut LlmSession<'_>) -> Result<Tensor>,
    ) -> Result<(Tensor, f64)> {
        let t = Instant::now();
        let out = f(&mut self.inner)?;
        self.device.synchronize()?;
        Ok((out, ms(t.elapsed())))
    }
}

impl StepModel for TimedSession<'_> {
    fn prefill(&mut self, inputs_embeds: &Tensor, attention_mask: &Tensor) -> Result<Tensor> {
        let (out, t) = self.timed(|s| s.prefill(inputs_embeds, attention_mask))?;
        self.times.prefill_ms += t;
        Ok(out)
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let (out, t) = self.timed(|s| s.step(tokens))?;
        self.times.decode_ms += t;
        self.times.decode_steps += 1;
        Ok(out)
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.inner.select_rows(rows)
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Wall clock and process CPU time since a start.
pub(crate) struct Clock {
    wall: Instant,
    cpu: Option<Duration>,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self {
            cpu: process_cpu_time(),
            wall: Instant::now(),
        }
    }

    pub(crate) fn wall_ms(&self) -> f64 {
        ms(self.wall.elapsed())
    }

    pub(crate) fn cpu_ms(&self) -> Option<f64> {
        Some(ms(process_cpu_time()?.checked_sub(self.cpu?)?))
    }
}

/// Generation settings of the benchmark: plain greedy or beam search, no processors, EOS off.
pub fn bench_generation_config(new_tokens: usize, num_beams: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: new_tokens,
        min_length: 0,
        num_beams,
        length_penalty: 1.0,
        do_sample: false,
        repetition_penalty: 1.0,
        no_repeat_ngram_size: 0,
        num_return_sequences: 1,
        eos_token_id: None,
        pad_token_id: None,
        ..GenerationConfig::default()
    }
}

fn run_generate(
    model: &Lynx,
    embeds: &Tensor,
    mask: &Tensor,
    cfg: &GenerationConfig,
    rng: &mut ChaCha8Rng,
) -> Result<GenTimes> {
    let mut session = TimedSession {
        inner: LlmSession::new(model.llm()),
        device: model.device().clone(),
        times: GenTimes::default(),
    };
    let clock = Clock::start();
    let out = generate_with(&mut session, embeds, mask, cfg, rng, None)?;
    session.times.generate_ms = clock.wall_ms();
    session.times.generate_cpu_ms = clock.cpu_ms();
    if out.iter().any(|s| s.tokens.len() != cfg.max_new_tokens) {
        return Err(Error::Invalid(
            "bench: an answer ended before max_new_tokens although EOS is disabled".into(),
        ));
    }
    Ok(session.times)
}

/// One iteration over a batch: vision, bridge, embeddings, greedy generate, beam generate.
fn iteration(
    model: &Lynx,
    pixels: &Tensor,
    ids: &Tensor,
    opts: &InferOptions,
    rng: &mut ChaCha8Rng,
) -> Result<IterTimes> {
    let dev = model.device();
    let media_clock = Clock::start();
    let t = Clock::start();
    let media = model.vision_encoder().forward(pixels)?;
    dev.synchronize()?;
    let (vision_ms, vision_cpu_ms) = (t.wall_ms(), t.cpu_ms());
    let t = Instant::now();
    let bridge = model.bridge().forward(&media)?;
    dev.synchronize()?;
    let bridge_ms = ms(t.elapsed());
    let t = Instant::now();
    let text_mask = Tensor::ones(ids.dims(), DType::U32, dev)?;
    let (embeds, mask) = model.input_embeds(&bridge, ids, &text_mask)?;
    dev.synchronize()?;
    let embed_ms = ms(t.elapsed());
    let media_cpu_ms = media_clock.cpu_ms();
    let greedy = run_generate(
        model,
        &embeds,
        &mask,
        &bench_generation_config(opts.new_tokens, 1),
        rng,
    )?;
    let beam = if opts.num_beams > 1 {
        let cfg = bench_generation_config(opts.new_tokens, opts.num_beams);
        Some(run_generate(model, &embeds, &mask, &cfg, rng)?)
    } else {
        None
    };
    Ok(IterTimes {
        vision_ms,
        vision_cpu_ms,
        bridge_ms,
        embed_ms,
        media_cpu_ms,
        greedy,
        beam,
    })
}

/// Stats of values that every iteration has, else `None`.
pub(crate) fn stats_opt(values: impl Iterator<Item = Option<f64>>) -> Option<Stats> {
    let v: Option<Vec<f64>> = values.collect();
    Stats::from_samples(&v?)
}

pub(crate) fn stats(values: impl Iterator<Item = f64>, what: &str) -> Result<Stats> {
    let v: Vec<f64> = values.collect();
    Stats::from_samples(&v)
        .ok_or_else(|| Error::Invalid(format!("bench: no valid samples for {what}")))
}

fn decode_report(
    iters: &[IterTimes],
    pick: impl Fn(&IterTimes) -> Option<&GenTimes>,
    num_beams: usize,
    opts: &InferOptions,
    llm_input_tokens: usize,
) -> Result<DecodeReport> {
    let gens: Vec<(&IterTimes, &GenTimes)> = iters
        .iter()
        .filter_map(|it| pick(it).map(|g| (it, g)))
        .collect();
    let b = opts.batch as f64;
    let prompt = b * llm_input_tokens as f64;
    Ok(DecodeReport {
        num_beams,
        prefill_tokens_per_s: stats(
            gens.iter().map(|(_, g)| prompt / (g.prefill_ms / 1e3)),
            "prefill",
        )?,
        decode_tokens_per_s: stats(
            gens.iter()
                .map(|(_, g)| b * g.decode_steps as f64 / (g.decode_ms / 1e3)),
            "decode",
        )?,
        decode_step_ms: stats(
            gens.iter()
                .map(|(_, g)| g.decode_ms / g.decode_steps.max(1) as f64),
            "decode step",
        )?,
        e2e_ms_per_answer: stats(
            gens.iter()
                .map(|(it, g)| (it.vision_ms + it.bridge_ms + it.embed_ms + g.generate_ms) / b),
            "end to end",
        )?,
        e2e_cpu_ms_per_answer: stats_opt(
            gens.iter()
                .map(|(it, g)| Some((it.media_cpu_ms? + g.generate_cpu_ms?) / b)),
        ),
    })
}

/// Runs the benchmark on `model`. `model_name` and `parameters` only label the report;
/// `progress` is called after every iteration (warm-up included) with the count done so far.
pub fn run_infer(
    model: &Lynx,
    model_name: &str,
    parameters: BTreeMap<String, usize>,
    opts: &InferOptions,
    progress: &mut dyn FnMut(usize),
) -> Result<InferReport> {
    opts.validate()?;
    let cfg = model.config();
    let p = cfg.vision.patch_size;
    if opts.image_res == 0 || !opts.image_res.is_multiple_of(p) {
        return Err(Error::config(
            "image_res",
            format!(
                "{} is not a positive multiple of the patch size {p}",
                opts.image_res
            ),
        ));
    }
    let dev = model.device();
    let model_rss_mib = current_rss_bytes().map(mib);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let (b, r) = (opts.batch, opts.image_res);
    let px: Vec<f32> = (0..b * 3 * r * r)
        .map(|_| rng.random_range(-2.0f32..2.0))
        .collect();
    let pixels = Tensor::from_vec(px, (b, 3, r, r), dev)?;
    // Ordinary tokens: above the special ids 0..=2, below [PAD].
    let base_vocab = cfg.vocab_size.saturating_sub(1) as u32;
    if base_vocab <= 3 {
        return Err(Error::config("vocab_size", "too small for a prompt"));
    }
    let ids: Vec<u32> = (0..b * opts.prompt_tokens)
        .map(|_| rng.random_range(3..base_vocab))
        .collect();
    let ids = Tensor::from_vec(ids, (b, opts.prompt_tokens), dev)?;
    let mut iterations = Vec::with_capacity(opts.iters);
    for i in 0..opts.warmup + opts.iters {
        let times = iteration(model, &pixels, &ids, opts, &mut rng)?;
        if i >= opts.warmup {
            iterations.push(times);
        }
        progress(i + 1);
    }
    let llm_input_tokens = cfg.bridge.num_bridge_tokens + opts.prompt_tokens;
    let greedy = decode_report(
        &iterations,
        |it| Some(&it.greedy),
        1,
        opts,
        llm_input_tokens,
    )?;
    let beam = if opts.num_beams > 1 {
        Some(decode_report(
            &iterations,
            |it| it.beam.as_ref(),
            opts.num_beams,
            opts,
            llm_input_tokens,
        )?)
    } else {
        None
    };
    Ok(InferReport {
        implementation: format!("lynx-rs {} (candle 0.11)", env!("CARGO_PKG_VERSION")),
        model: model_name.to_string(),
        options: opts.clone(),
        device: if dev.is_cpu() {
            "cpu".into()
        } else {
            format!("{dev:?}")
        },
        dtype: format!("{:?}", model.dtype()).to_lowercase(),
        threads: candle_core::utils::get_num_threads(),
        parameters,
        vision_tokens: model.vision_encoder().num_tokens(r),
        llm_input_tokens,
        vision_ms_per_image: stats(
            iterations.iter().map(|it| it.vision_ms / b as f64),
            "vision",
        )?,
        vision_cpu_ms_per_image: stats_opt(
            iterations
                .iter()
                .map(|it| it.vision_cpu_ms.map(|c| c / b as f64)),
        ),
        bridge_ms: stats(iterations.iter().map(|it| it.bridge_ms), "bridge")?,
        greedy,
        beam,
        peak_rss_mib: peak_rss_bytes().map(mib),
        model_rss_mib,
        gpu_peak_mib: None,
        iterations,
    })
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

impl InferReport {
    /// A plain-text table of the medians (min–max).
    pub fn render(&self) -> String {
        let o = &self.options;
        let mut s = format!(
            "{} | model {} | {} {} | threads {}\n\
             batch {} | image {}px ({} vision tokens) | prompt {} + {} bridge tokens | {} new tokens | {} iters (+{} warm-up)\n",
            self.implementation,
            self.model,
            self.device,
            self.dtype,
            self.threads,
            o.batch,
            o.image_res,
            self.vision_tokens,
            o.prompt_tokens,
            self.llm_input_tokens - o.prompt_tokens,
            o.new_tokens,
            o.iters,
            o.warmup
        );
        let mut row = |name: &str, st: &Stats, digits: usize| {
            s.push_str(&format!("  {name:<34} {}\n", st.display(digits)));
        };
        row("vision encoder ms/image", &self.vision_ms_per_image, 2);
        if let Some(st) = &self.vision_cpu_ms_per_image {
            row("  (CPU time)", st, 2);
        }
        row("bridge ms (batch)", &self.bridge_ms, 2);
        for d in std::iter::once(&self.greedy).chain(self.beam.as_ref()) {
            let mode = if d.num_beams > 1 {
                format!("beam {}", d.num_beams)
            } else {
                "greedy".to_string()
            };
            row(
                &format!("prefill tokens/s ({mode})"),
                &d.prefill_tokens_per_s,
                1,
            );
            row(
                &format!("decode tokens/s ({mode})"),
                &d.decode_tokens_per_s,
                1,
            );
            row(&format!("decode ms/step ({mode})"), &d.decode_step_ms, 2);
            row(
                &format!("end-to-end ms/answer ({mode})"),
                &d.e2e_ms_per_answer,
                1,
            );
            if let Some(st) = &d.e2e_cpu_ms_per_answer {
                row("  (CPU time)", st, 1);
            }
        }
        let mem = |v: Option<f64>| v.map_or("n/a".to_string(), |m| format!("{m:.0} MiB"));
        s.push_str(&format!(
            "  {:<34} {} (after building the model: {})\n",
            "peak RSS",
            mem(self.peak_rss_mib),
            mem(self.model_rss_mib)
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_preset_run_reports_every_stage() {
        let cfg = Preset::Tiny.config();
        let RandomModel { model, parameters } =
            random_model(&cfg, 56, DType::F32, &Device::Cpu).unwrap();
        let opts = InferOptions {
            batch: 2,
            image_res: 56,
            prompt_tokens: 5,
            new_tokens: 4,
            num_beams: 2,
            iters: 3,
            warmup: 1,
            seed: 1,
        };
        let mut seen = Vec::new();
        let report = run_infer(&model, "tiny", parameters, &opts, &mut |i| seen.push(i)).unwrap();
        assert_eq!(seen, vec![1, 2, 3, 4]);
        assert_eq!(report.iterations.len(), 3);
        assert_eq!((report.vision_tokens, report.llm_input_tokens), (17, 37));
        for it in &report.iterations {
            // The first new token comes from the prefill logits; each later one costs a step.
            assert_eq!(it.greedy.decode_steps, 3);
            assert_eq!(it.beam.as_ref().unwrap().decode_steps, 3);
            assert!(it.greedy.generate_ms >= it.greedy.prefill_ms + it.greedy.decode_ms);
        }
        #[cfg(unix)]
        assert!(
            report.vision_cpu_ms_per_image.is_some()
                && report.greedy.e2e_cpu_ms_per_answer.is_some()
        );
        let beam = report.beam.as_ref().unwrap();
        assert_eq!((report.greedy.num_beams, beam.num_beams), (1, 2));
        for st in [
            &report.vision_ms_per_image,
            &report.greedy.decode_tokens_per_s,
            &beam.e2e_ms_per_answer,
        ] {
            assert_eq!(st.n, 3);
            assert!(st.min <= st.median && st.median <= st.max && st.min > 0.0);
        }
        let text = report.render();
        assert!(text.contains("decode tokens/s (beam 2)"), "{text}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["options"]["new_tokens"], 4);
        assert_eq!(json["parameters"]["absolute_frame_pos_embed"], 160);
    }

    #[test]
    fn rejects_bad_options() {
        let cfg = Preset::Tiny.config();
        let model = random_model(&cfg, 56, DType::F32, &Device::Cpu)
            .unwrap()
            .model;
        let mut opts = InferOptions {
            batch: 1,
            image_res: 50,
            prompt_tokens: 3,
            new_tokens: 2,
            num_beams: 1,
            iters: 1,
            warmup: 0,
            seed: 0,
        };
        let err = run_infer(&model, "tiny", BTreeMap::new(), &opts, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("image_res"), "{err}");
        opts.image_res = 56;
        opts.new_tokens = 1;
        let err = run_infer(&model, "tiny", BTreeMap::new(), &opts, &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("new_tokens"), "{err}");
    }
}
