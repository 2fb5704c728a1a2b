//! The default model's recipe as data: the world, the sizes of every part and each stage's
//! budget (issue 4), and the `lynx train` configs written from them, so that every stage of a
//! recipe run can also be rerun by hand with `lynx train --config`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::LynxYaml;
use crate::model::bridge::resampler::WordTokenPlace;
use crate::model::llm::llama::LlamaConfig;
use crate::model::vision::eva_vit::VisionConfig;
use crate::synth::SynthConfig;
use crate::train::config::{LossReduction, TrainPart, VisionLossWeights};
use crate::{Error, Result};

/// The parts that Lynx's stages 1 and 2 train (paper 2.2); the vision encoder and LLM stay frozen.
pub const STAGE2_PARTS: [TrainPart; 3] =
    [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];

/// Optimisation budget of one training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    pub steps: u64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_steps: u64,
    pub weight_decay: f64,
    pub max_seq_len: usize,
}

/// A first part of stage 2 that trains on naming shapes alone.
///
/// Why it was tried (2026-11-28, the stop-20 variant's ViT of 3600 updates and its stage 1):
/// its bridge tokens name a lone object's shape 60% of the time (`lynx eval probe`), yet
/// stage 2 leaves the model naming it at chance (29/200). 300 updates on shape-name questions
/// alone make it name 108/200. The release's stage 2 at lr 1e-3 then wipes that out within
/// 300 updates (32/200, "star" 181 times, whether or not the bridge trains: 68/200 with only
/// the adapters training); at lr 2e-4 to 3e-4 it keeps 75-79/200 but learns the rest slowly
/// (places 53/160 after 600 updates). The full-length run (this phase, then 1800 updates of
/// the mix with these records at weight 2, lr 4e-4) names 92/200 and lifts "others" from 72 to
/// 86 of 160 with seen phrasings, but loses as much on reasoning, counting and held-out
/// phrasings: 61.3 / 46.6 (seen / unseen) against 61.3 / 50.8. Hence `None` in the default
/// plan (docs/probes.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShapePhase {
    pub budget: Budget,
    /// Weight of the same shape-name records in stage 2's mix afterwards (0: not mixed in).
    #[serde(default)]
    pub mix_weight: f64,
}

/// Everything that decides the default model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipePlan {
    pub seed: u64,
    pub world: SynthConfig,
    /// Tokenizer vocabulary (specials and byte pieces included).
    pub vocab_size: usize,
    pub llm: LlamaConfig,
    pub vision: VisionConfig,
    pub image_res: usize,
    pub bridge_depth: usize,
    pub num_bridge_tokens: usize,
    pub bridge_heads: usize,
    pub bridge_head_dim: usize,
    pub bridge_ff_mult: usize,
    /// The resampler's locality bias (`bridge_config.locality`; 0: free latents, the
    /// release's resampler). Not written when 0, so older plans keep their identity.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bridge_locality: f64,
    /// The resampler also reads the prompt (`bridge_config.instruction_aware`; false: the
    /// release's resampler). Not written when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bridge_instruction_aware: bool,
    /// How many of the bridge tokens are mixtures of the LLM's word embeddings
    /// (`bridge_config.word_tokens`; 0: none, the release's resampler). Not written when 0.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub bridge_word_tokens: usize,
    /// Where the word tokens enter the LLM (`bridge_config.word_token_place`: `prefix`, with
    /// the other bridge tokens, or `reply`, after the prompt). Not written when `prefix`.
    #[serde(default, skip_serializing_if = "WordTokenPlace::is_prefix")]
    pub bridge_word_token_place: WordTokenPlace,
    pub adapter_freq: usize,
    /// Adapter bottleneck width (`None`: half the LLM's hidden size, as in the release).
    #[serde(default)]
    pub adapter_bottleneck: Option<usize>,
    /// Questions about one image packed into one stage-2 dialog (see `recipe::data`).
    pub dialog_turns: usize,
    pub lm: Budget,
    pub instruct: Budget,
    pub vision_stage: Budget,
    /// Weights of the vision stage's objective.
    pub vision_loss: VisionLossWeights,
    pub stage1: Budget,
    /// Stage 2's first part: the `vqa_shape` questions answered by a shape's name, alone,
    /// before the mix (`None`: stage 2 is the mix only). See `ShapePhase`.
    #[serde(default)]
    pub stage2_shapes: Option<ShapePhase>,
    pub stage2: Budget,
    /// How stage 2 averages its token losses (`token`: the release's cross-entropy). Short
    /// answers are about 5% of stage 2's reply tokens outside the packed dialogs, so
    /// `example` (every example weighs the same) was tried: held-out 60.8 / 51.7 (seen /
    /// unseen) against 62.2 / 51.9 for `token` from the same stage 1, and explained answers
    /// lost 5 points (55.1% against 60.1% correct). Kept as a variant, not the default.
    #[serde(default)]
    pub stage2_loss_reduction: LossReduction,
    /// Stage 2's per-part learning-rate multipliers (`lynx train`'s `lr_scale`; empty: every
    /// part at the stage's rate). Only `bridge`, `adapter` and `frame_pos` train in stage 2.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub stage2_lr_scale: BTreeMap<TrainPart, f64>,
    /// Weight of stage 2's bridge-answer loss (`lynx train`'s `bridge_answer_loss`; 0, the
    /// default, is the release's objective). On top of an instruction-aware bridge with the
    /// shape phase (held-out 59.81 / 50.99 without it), 0.3 gave 45.17 / 34.48 and 0.03 gave
    /// 58.36 / 45.79, losing the shape names (docs/lm-lookup.md, section 4).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stage2_bridge_answer_loss: f64,
    /// Stage 2's bridge-answer loss counts only the answers that fit in the word tokens
    /// (`lynx train`'s `bridge_answer_short_only`). Needs word tokens and
    /// `stage2_bridge_answer_loss` above 0. Not written when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage2_bridge_answer_short_only: bool,
    /// Stage 2 feeds the LLM the word tokens detached (`lynx train`'s `detach_word_tokens`):
    /// they learn from the bridge-answer loss alone, not from the reply loss. Needs word tokens
    /// and `stage2_bridge_answer_loss` above 0.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage2_detach_word_tokens: bool,
    /// Share of stage 2's short-answer rows on which the LLM reads the answer's own words in
    /// place of the word tokens (`lynx train`'s `word_token_teacher`; 0: none). Needs word
    /// tokens placed before the reply.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stage2_word_token_teacher: f64,
    /// Stage 2's word-answer loss and teacher read an explained answer's short answer (the
    /// world's `vqa_explain` records give it) in place of the explanation (`lynx train`'s
    /// `word_tokens_from_short_answers`). Needs word tokens and the answer loss or the
    /// teacher. Not written when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage2_word_tokens_from_short_answers: bool,
    /// Stage 2's word-answer loss and teacher read only the first `bridge_word_tokens` tokens
    /// of a longer reply ("Once upon a time" of a story) in place of all its words (`lynx
    /// train`'s `word_tokens_from_reply_openings`). Needs word tokens and the answer loss or
    /// the teacher; refused with `stage2_bridge_answer_short_only`. Not written when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage2_word_tokens_from_reply_openings: bool,
    /// Weight in stage 2's mix of the world's dialogs cut into single turns
    /// (`train/dialog_turns.jsonl`, written by the recipe; 0: none), so that a question-reading
    /// bridge reads every question it is trained to answer, story requests included. Not
    /// written when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub stage2_dialog_turns_alone: f64,
    /// Only the dialogs' turns whose reply has at least this many words go into
    /// `stage2_dialog_turns_alone`'s file (0: every turn): the long-form ones (stories,
    /// descriptions), without the short ones that repeat the world's questions with a
    /// sentence for an answer. Needs `stage2_dialog_turns_alone`. Not written when 0.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub stage2_dialog_turns_min_words: usize,
    /// From stage 2 on, each word token is its most likely word's embedding (`lynx train`'s
    /// `word_token_hard`, which sets the model's `bridge_config.word_token_hard`; false: the
    /// mixture). Stage 1 and the phases before stage 2 keep the mixture, through which the
    /// word head still learns from the reply loss. Needs word tokens. Not written when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stage2_word_token_hard: bool,
    /// Stage 2's word phase, before the mix (`None`: none): the bridge alone learns to name
    /// the answers of the world's short-answer questions (`lynx train` with `reply_loss: 0`
    /// and `bridge_answer_loss: 1`, so the LLM does not run and an update costs about a
    /// third of a stage-2 update). Needs an instruction-aware bridge with word tokens: the
    /// phase teaches them to find what the question asks about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage2_words: Option<Budget>,
    /// Threads computing micro-batches (the numbers do not depend on it).
    pub workers: usize,
}

fn is_zero_usize(x: &usize) -> bool {
    *x == 0
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn budget(steps: u64, batch_size: usize, grad_accum: usize, lr: f64, seq: usize) -> Budget {
    Budget {
        steps,
        batch_size,
        grad_accum,
        lr,
        min_lr: lr / 20.0,
        warmup_steps: (steps / 20).clamp(1, 100),
        weight_decay: 0.05,
        max_seq_len: seq,
    }
}

impl RecipePlan {
    /// The default model's plan: 41 minutes from nothing on two idle CPU cores
    /// (docs/lm-lookup.md, section 10).
    pub fn default_model(seed: u64) -> Self {
        Self {
            seed,
            world: SynthConfig {
                seed,
                count: 8000,
                video_fraction: 0.2,
                size: 112,
                frames: 8,
                test_count: 200,
                text_count: Some(3000),
                // Written for probing, not trained on: the frozen LM does not learn to read
                // a description in its context within this budget. With the reading records
                // in the LM's pretraining (weight 4 of 22) and its instruction tuning (2 of
                // 7; 192-token rows), it answered 49.3% of the short reading questions of
                // fresh scenes, against 48.3% for the LM trained without them. After 300 more
                // steps on mostly reading records, its loss per answer token was 0.56 with
                // the right descriptions and 0.63 with another scene's (the world's
                // `text_reading_control.jsonl`). An LM fed "Repeat
                // after me: X" for 200 steps copies the words it was trained on (loss 0.03)
                // and not others (5.5; 4.7 with tied embeddings, 6.5 after 400 steps at lr
                // 1e-3): no general copying to build lookup on. Lynx leans on a frozen LLM that
                // reads its context; this one does not, which is where binding and held-out
                // phrasings fail. Lookup drills (`tools/lm_lookup_probe.py`) did not teach it in
                // 1500-2500 updates of drills alone, at this size or twice it, against about 750
                // LM updates here (docs/lm-lookup.md).
                reading_count: Some(3000),
                qa_per_class: 2,
                // Half of the training questions are reworded (synonyms, requests, lead-ins;
                // never into a held-out phrasing), so a user's own wording reaches a model
                // that has met its words; see the report's unseen-phrasing rows.
                paraphrase: 0.5,
            },
            vocab_size: 1000,
            llm: LlamaConfig {
                hidden_size: 256,
                intermediate_size: 688,
                num_hidden_layers: 4,
                num_attention_heads: 4,
                num_key_value_heads: None,
                vocab_size: 0,
                rms_norm_eps: 1e-6,
                max_position_embeddings: 512,
                rope_theta: 10000.0,
                tie_word_embeddings: false,
            },
            vision: VisionConfig {
                patch_size: 14,
                embed_dim: 128,
                depth: 4,
                num_heads: 4,
                mlp_ratio: 4.0,
                qkv_bias: true,
                layer_norm_eps: 1e-6,
            },
            image_res: 112,
            // Four layers, not two (B4, docs/lm-lookup.md section 12): held-out 63.86 / 52.54
            // (seen / unseen) against 60.23 / 52.86, the checker 62.65 against 59.93. Alone it
            // told no story of 40 (13 story requests answered with a place name, which its
            // word tokens named and the LLM copied); with the dialogs' long turns alone below it
            // tells 38.
            bridge_depth: 4,
            // 16 media tokens plus the 4 word tokens below. 32 media tokens (the release's
            // count) were no better than 16 with the release's bridge: held-out 61.2 / 50.4
            // (seen / unseen) against 61.6 / 52.0, and stage 2 ran longer.
            num_bridge_tokens: 20,
            bridge_heads: 4,
            bridge_head_dim: 32,
            bridge_ff_mult: 2,
            // 3.0 (each latent tied to one cell of a 4x4 grid) carried a lone object's side
            // into the bridge tokens (linear probe 91.5% against 58.5%) but not into the
            // answers: held-out 61.6 / 50.1 (seen / unseen) against 61.6 / 52.0, videos 29.5 /
            // 25.6, side still "right" 194 times in 200 (docs/probes.md, stop 24).
            bridge_locality: 0.0,
            // The bridge reads the question, as InstructBLIP's Q-Former does, so that its word
            // tokens name what is asked. A free bridge fed one question per record scored 59.3 /
            // 47.0, this one 60.8 / 48.6, and it keeps shape names through stage 2's mix after
            // the shape phase (lone shapes 71/200 against 32; docs/lm-lookup.md section 3).
            bridge_instruction_aware: true,
            // Four bridge tokens are words: mixtures of the LM's word embeddings (one word each
            // from stage 2 on, `stage2_word_token_hard`) trained to name the short answer, placed
            // right before the reply where the LM copies them (docs/lm-lookup.md sections 5-9).
            // Placed first (stop 27) they named the answer more often than the model said it.
            bridge_word_tokens: 4,
            bridge_word_token_place: WordTokenPlace::Reply,
            adapter_freq: 1,
            // The release's width (hidden/2 = 128). Four times wider (512; both runs with 32
            // bridge tokens) lowered stage 1's caption loss by only 2% (0.432 against 0.439 over
            // its last 100 steps) and named no more of the shapes in 80 test images (13%,
            // against 18%; naming random shapes gets 24%).
            adapter_bottleneck: None,
            // One question per record: a bridge that reads six questions at once cannot pick
            // out what any one of them asks (section 3). Packed dialogs teach six answers per
            // pass and were better for the free bridge (61.6 / 52.0 against 59.3 / 47.0).
            dialog_turns: 1,
            lm: budget(600, 6, 2, 1e-3, 128),
            instruct: budget(150, 8, 2, 5e-4, 128),
            // Colours and places are learnt in a few hundred steps; shapes need edges seen
            // across patches and only take off after about 700 (a shape-only probe run: 20%
            // at 600 steps, 47% at 1200), so the stage is long and leans on shapes
            // (`vision_loss.shape`). 3600 updates (one run, with a class-token layout map that
            // learnt nothing) raised the per-patch shape head from 53% to 72%, and the shape
            // of a lone object read from the bridge tokens from 27% to 57% (`lynx eval
            // probe`; docs/probes.md). With the release's bridge that did not reach the answers
            // (61.3 / 50.8 against 61.6 / 52.0 at 2400); the word phase's word tokens name 59
            // shapes of the checker's 103 on it, against 32 on the 2400-update ViT (section 8).
            vision_stage: Budget {
                min_lr: 5e-5,
                warmup_steps: 60,
                ..budget(3600, 16, 2, 1.5e-3, 0)
            },
            vision_loss: VisionLossWeights {
                shape: 4.0,
                ..VisionLossWeights::default()
            },
            // The bridge has to carry where each shape is and its colour, not only the
            // place: the caption loss was still falling at 300 steps of stage 1. 2000 steps
            // (about two passes over the caption pairs; caption loss 0.44 -> 0.40) moved
            // nothing beyond run-to-run spread: held-out 61.0 / 53.6 (seen / unseen) against
            // 61.6 / 52.0, videos 29.5 / 21.8 against 33.3 / 29.5, 8 more minutes.
            stage1: budget(900, 8, 2, 1e-3, 96),
            // Shape names alone for 300 updates, then in stage 2's mix at weight 2: without
            // them the LM passes colours on and not shapes (V14 against V16, section 8; stop 21
            // in docs/probes.md).
            stage2_shapes: Some(ShapePhase {
                budget: Budget {
                    warmup_steps: 30,
                    ..budget(300, 8, 2, 1e-3, 160)
                },
                mix_weight: 2.0,
            }),
            // 1200 updates, not 1800, to make room for the word phase in the hour: V16's
            // stage 2 of 1200 scored as the default of 1800 (61.27 / 52.02 against 61.58 /
            // 52.02; section 8).
            stage2: budget(1200, 8, 2, 1e-3, 160),
            stage2_loss_reduction: LossReduction::Token,
            stage2_lr_scale: BTreeMap::new(),
            // The word tokens keep learning to name the answer while the LM learns to read
            // them (stop 27's 0.3; 1.0 made them less accurate, section 6).
            stage2_bridge_answer_loss: 0.3,
            stage2_bridge_answer_short_only: false,
            // Detached: the reply loss does not reshape the word tokens into what the LM reads
            // best; they kept more colours (46/100 against 26) and were still copied (section 7).
            stage2_detach_word_tokens: true,
            // The LM reads the answer's own words in place of the word tokens on a fifth of the
            // short-answer rows, and so learns to copy them. At 0.5 (V19) it copied most (the
            // checker 62.48) but answered 19 story requests of 40 with one word; at 0.2 (V21)
            // held-out 62.20 / 53.37 and stories kept (docs/lm-lookup.md section 9). At 0.3
            // with short answers (G6) it told 5 stories of 40, against 13 (section 11).
            stage2_word_token_teacher: 0.2,
            // Explained answers teach their short answer: the word tokens keep naming the answer
            // when an explanation is asked for (counting 98 of 160 against 30), and the LM
            // copies them there too (G5): explanations 55.4% against 52.4%, the checker 59.93
            // against 56.03 (spatial 19/33 against 0), held-out questions level over two draws
            // of scenes (docs/lm-lookup.md section 11).
            stage2_word_tokens_from_short_answers: true,
            // Reply openings with the dialogs' turns alone (B4OD) told 37 stories of 40, but the
            // LLM said "white" to half the colour questions of the checker (35 right of 100)
            // and unseen phrasings fell 10.7 points behind seen ones on a fresh draw of scenes.
            // With the teacher at 0.3 (B4ODT3) it led on every question total, but 9 stories of
            // 40 opened mid-phrase ("a time, there was ..."): the LLM went on from the word
            // tokens instead of saying them (docs/lm-lookup.md section 12).
            stage2_word_tokens_from_reply_openings: false,
            // The world's dialogs never open with a story request, and the question-reading
            // bridge reads only a record's first question, so without their turns as records of
            // their own it never saw one. Every turn at 1.6 on the deeper bridge (B4D) told 33
            // stories of 40 (G5, depth 2 without them: 13), but answered 38 of the checker's
            // 347 colour, count and shape questions with a dialog's sentence ("the cross is
            // pink. it is at the top." to "Tell me which colour the square is.") and got 50
            // colours of 100 (G5: 63). The turns whose reply has 20 words or more (stories,
            // descriptions, long explanations) at 0.8 tell 38 stories, answer 3 with a
            // sentence, and lead B4D on held-out questions of a fresh draw (64.90 / 56.66
            // against 64.06 / 54.23) and on videos (docs/lm-lookup.md section 13).
            stage2_dialog_turns_alone: 0.8,
            stage2_dialog_turns_min_words: 20,
            // Each word token is one word the LM knows. Without the teacher (V18) this alone
            // lost ground: held-out 60.12 / 48.08.
            stage2_word_token_hard: true,
            // The word phase: 1000 updates in which the word tokens alone learn to name the
            // short answers (the LM does not run), after the shape phase. They then name 67
            // colours, 81 counts and 53 shapes of the checker's 100, 144 and 103 (section 8).
            stage2_words: Some(budget(1000, 16, 2, 1e-3, 160)),
            workers: 2,
        }
    }

    /// Reads a plan written as `configs/plan.yaml` (every field required, unknown keys
    /// rejected, so a typo cannot silently fall back to the default).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let plan: Self = serde_yaml::from_str(&text)
            .map_err(|e| Error::Invalid(format!("plan {}: {e}", path.display())))?;
        plan.validate()
            .map_err(|e| Error::Invalid(format!("plan {}: {e}", path.display())))?;
        Ok(plan)
    }

    /// Checks what `lynx train` would only refuse hours into a run.
    pub fn validate(&self) -> Result<()> {
        if self.bridge_locality != 0.0 {
            let grid = self.image_res / self.vision.patch_size.max(1);
            crate::model::bridge::resampler::locality_bias(
                self.num_bridge_tokens,
                grid,
                self.bridge_locality,
            )
            .map_err(|e| Error::config("bridge_locality", e.to_string()))?;
        }
        if self.bridge_word_tokens > self.num_bridge_tokens {
            return Err(Error::config(
                "bridge_word_tokens",
                format!(
                    "{} word tokens but only {} bridge tokens (num_bridge_tokens)",
                    self.bridge_word_tokens, self.num_bridge_tokens
                ),
            ));
        }
        // Checked first: the keys below it need word tokens too, and would hide it.
        if self.stage2_word_tokens_from_short_answers
            && (self.bridge_word_tokens == 0
                || (self.stage2_bridge_answer_loss == 0.0 && self.stage2_word_token_teacher == 0.0))
        {
            return Err(Error::config(
                "stage2_word_tokens_from_short_answers",
                "changes what the word tokens learn: needs bridge_word_tokens and \
                 stage2_bridge_answer_loss or stage2_word_token_teacher above 0",
            ));
        }
        if self.stage2_word_tokens_from_reply_openings
            && (self.bridge_word_tokens == 0
                || (self.stage2_bridge_answer_loss == 0.0 && self.stage2_word_token_teacher == 0.0)
                || self.stage2_bridge_answer_short_only)
        {
            return Err(Error::config(
                "stage2_word_tokens_from_reply_openings",
                "changes what the word tokens learn: needs bridge_word_tokens and \
                 stage2_bridge_answer_loss or stage2_word_token_teacher above 0, and cannot go \
                 with stage2_bridge_answer_short_only",
            ));
        }
        if self.stage2_word_token_hard && self.bridge_word_tokens == 0 {
            return Err(Error::config(
                "stage2_word_token_hard",
                "hard word tokens need bridge_word_tokens above 0",
            ));
        }
        if self.bridge_word_token_place == WordTokenPlace::Reply && self.bridge_word_tokens == 0 {
            return Err(Error::config(
                "bridge_word_token_place",
                "word tokens placed before the reply need bridge_word_tokens above 0",
            ));
        }
        let turns = self.stage2_dialog_turns_alone;
        if !(turns.is_finite() && (0.0..=100.0).contains(&turns)) {
            return Err(Error::config(
                "stage2_dialog_turns_alone",
                format!("a mix weight in [0, 100], got {turns}"),
            ));
        }
        if self.stage2_dialog_turns_min_words > 0 && turns == 0.0 {
            return Err(Error::config(
                "stage2_dialog_turns_min_words",
                "picks which dialog turns stage2_dialog_turns_alone adds, and it is 0",
            ));
        }
        let answer = self.stage2_bridge_answer_loss;
        if !(answer.is_finite() && (0.0..=100.0).contains(&answer)) {
            return Err(Error::config(
                "stage2_bridge_answer_loss",
                format!("must be in [0, 100], got {answer}"),
            ));
        }
        if self.stage2_bridge_answer_short_only && (self.bridge_word_tokens == 0 || answer == 0.0) {
            return Err(Error::config(
                "stage2_bridge_answer_short_only",
                "picks the word tokens' answer rows: needs bridge_word_tokens and \
                 stage2_bridge_answer_loss above 0",
            ));
        }
        if self.stage2_detach_word_tokens && (self.bridge_word_tokens == 0 || answer == 0.0) {
            return Err(Error::config(
                "stage2_detach_word_tokens",
                "detached word tokens need bridge_word_tokens and stage2_bridge_answer_loss above 0",
            ));
        }
        let teacher = self.stage2_word_token_teacher;
        if !(teacher.is_finite() && (0.0..=1.0).contains(&teacher)) {
            return Err(Error::config(
                "stage2_word_token_teacher",
                format!("must be in [0, 1], got {teacher}"),
            ));
        }
        if teacher > 0.0
            && (self.bridge_word_tokens == 0
                || self.bridge_word_token_place != WordTokenPlace::Reply)
        {
            return Err(Error::config(
                "stage2_word_token_teacher",
                "teaching the LLM to say the word tokens needs bridge_word_tokens above 0 and \
                 bridge_word_token_place: reply",
            ));
        }
        if self.stage2_words.is_some()
            && (self.bridge_word_tokens == 0 || !self.bridge_instruction_aware)
        {
            return Err(Error::config(
                "stage2_words",
                "the word phase trains word tokens that read the question: it needs \
                 bridge_word_tokens above 0 and bridge_instruction_aware",
            ));
        }
        for (part, scale) in &self.stage2_lr_scale {
            if !STAGE2_PARTS.contains(part) {
                return Err(Error::config(
                    format!("stage2_lr_scale.{}", part.name()),
                    "stage 2 trains only bridge, adapter and frame_pos",
                ));
            }
            if !(scale.is_finite() && *scale > 0.0) {
                return Err(Error::config(
                    format!("stage2_lr_scale.{}", part.name()),
                    format!("must be a number > 0, got {scale}"),
                ));
            }
        }
        Ok(())
    }

    /// The same plan with every stage's steps (and the world) scaled by `x` (for quick runs
    /// and tests); at least one step per stage and a few scenes remain.
    pub fn scaled(mut self, x: f64) -> Self {
        if (x - 1.0).abs() < f64::EPSILON {
            return self;
        }
        let s = |n: u64| ((n as f64 * x).round() as u64).max(1);
        for b in [
            &mut self.lm,
            &mut self.instruct,
            &mut self.vision_stage,
            &mut self.stage1,
            &mut self.stage2,
        ]
        .into_iter()
        .chain(self.stage2_shapes.as_mut().map(|s| &mut s.budget))
        .chain(self.stage2_words.as_mut())
        {
            b.steps = s(b.steps);
            b.warmup_steps = b.warmup_steps.min(b.steps);
        }
        let w = &mut self.world;
        w.count = ((w.count as f64 * x.min(1.0)).round() as usize).max(20);
        w.test_count = ((w.test_count as f64 * x.min(1.0)).round() as usize).max(10);
        w.text_count = w
            .text_count
            .map(|n| ((n as f64 * x.min(1.0)).round() as usize).max(20));
        w.reading_count = w
            .reading_count
            .map(|n| ((n as f64 * x.min(1.0)).round() as usize).max(20));
        self
    }

    /// The Lynx config (LYNX.yaml keys) of the model: sizes, prompt, preprocessing and the
    /// generation settings the default model answers with (greedy: short answers must be
    /// exact; no n-gram ban, which would break the world's repeated phrases).
    pub fn lynx_yaml(&self) -> LynxYaml {
        let mut y = LynxYaml {
            image_res: self.image_res,
            vision_config: Some(self.vision.clone()),
            bridge_depth: self.bridge_depth,
            num_bridge_tokens: self.num_bridge_tokens,
            adapter_freq: self.adapter_freq,
            adapter_bottleneck: self.adapter_bottleneck,
            use_adapter: true,
            add_frame_pos: true,
            tokenizer: crate::config::TokenizerChoice::Json,
            max_input_tokens: 160,
            max_new_tokens: 96,
            min_length: 2,
            num_beams: 1,
            use_nucleus_sampling: false,
            no_repeat_ngram_size: 0,
            length_penalty: 1.0,
            batch_size_test: 16,
            ..LynxYaml::default()
        };
        y.llm = "lynx-world-vicuna".into();
        y.vision_encoder = "lynx-world-vit".into();
        y.data.num_frames = self.world.frames;
        y.bridge_config.num_heads = self.bridge_heads;
        y.bridge_config.head_dim = self.bridge_head_dim;
        y.bridge_config.ff_mult = self.bridge_ff_mult;
        y.bridge_config.locality = self.bridge_locality;
        y.bridge_config.instruction_aware = self.bridge_instruction_aware;
        y.bridge_config.word_tokens = self.bridge_word_tokens;
        y.bridge_config.word_token_place = self.bridge_word_token_place;
        y
    }
}

/// The common keys of a training stage's config.
pub fn stage_config(stage: &str, b: &Budget, seed: u64, workers: usize, out: &Path) -> Value {
    json!({
        "stage": stage,
        "batch_size": b.batch_size,
        "grad_accum": b.grad_accum,
        "workers": workers,
        "lr": b.lr,
        "min_lr": b.min_lr,
        "warmup_steps": b.warmup_steps,
        "max_steps": b.steps,
        "weight_decay": b.weight_decay,
        "clip_grad_norm": 1.0,
        "seed": seed,
        "save_every": b.steps.div_ceil(4).max(1),
        "keep_last": 1,
        "max_seq_len": b.max_seq_len.max(1),
        "output_dir": out.to_string_lossy(),
    })
}

/// `{path, weight}` entries for files of the folder `dir`.
pub fn mix_in(dir: &Path, files: &[(&str, f64)]) -> Value {
    Value::Array(
        files
            .iter()
            .map(|(f, w)| json!({"path": dir.join(f).to_string_lossy(), "weight": w}))
            .collect(),
    )
}

/// `{path, weight}` entries.
pub fn datasets(items: &[(&Path, f64)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(p, w)| json!({"path": p.to_string_lossy(), "weight": w}))
            .collect(),
    )
}

/// Sets `key` of a JSON object.
pub fn with(mut v: Value, key: &str, value: Value) -> Value {
    if let Some(m) = v.as_object_mut() {
        m.insert(key.to_string(), value);
    }
    v
}

/// Writes a config as YAML.
pub fn write_yaml(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_yaml::to_string(v)
        .map_err(|e| Error::Invalid(format!("writing {}: {e}", path.display())))?;
    crate::train::atomic::write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default plan with the release's bridge (no word tokens, no question reading) and
    /// none of the stage-2 keys that need them: what the key tests below switch on one by one.
    fn release_bridge_plan() -> RecipePlan {
        RecipePlan {
            num_bridge_tokens: 16,
            bridge_instruction_aware: false,
            bridge_word_tokens: 0,
            bridge_word_token_place: WordTokenPlace::Prefix,
            stage2_bridge_answer_loss: 0.0,
            stage2_bridge_answer_short_only: false,
            stage2_detach_word_tokens: false,
            stage2_word_token_teacher: 0.0,
            stage2_word_tokens_from_short_answers: false,
            stage2_word_tokens_from_reply_openings: false,
            stage2_dialog_turns_alone: 0.0,
            stage2_dialog_turns_min_words: 0,
            stage2_word_token_hard: false,
            stage2_words: None,
            ..RecipePlan::default_model(0)
        }
    }

    #[test]
    fn the_default_plan_is_valid_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plan = RecipePlan::default_model(0);
        plan.validate().unwrap();
        write_yaml(&path, &plan).unwrap();
        assert_eq!(RecipePlan::load(&path).unwrap(), plan);
        // The release's bridge is what its keys' tests start from, and it is valid too.
        release_bridge_plan().validate().unwrap();
    }

    #[test]
    fn a_written_plan_loads_back_and_typos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let mut plan = RecipePlan::default_model(7);
        plan.adapter_bottleneck = Some(512);
        plan.stage2_shapes = Some(ShapePhase {
            budget: plan.stage1.clone(),
            mix_weight: 1.5,
        });
        write_yaml(&path, &plan).unwrap();
        assert_eq!(RecipePlan::load(&path).unwrap(), plan);
        let scaled = plan.clone().scaled(0.01);
        assert_eq!(scaled.stage2_shapes.unwrap().budget.steps, 9);
        assert_eq!(plan.lynx_yaml().adapter_bottleneck, Some(512));

        // Plans written before the field existed still load, with the release's width.
        let text = std::fs::read_to_string(&path).unwrap();
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("adapter_bottleneck"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, old).unwrap();
        assert_eq!(RecipePlan::load(&path).unwrap().adapter_bottleneck, None);

        std::fs::write(&path, text.replace("num_bridge_tokens", "num_bridge_token")).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("num_bridge_token"),
            "{err}"
        );
    }

    #[test]
    fn stage2_lr_scale_round_trips_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plain = release_bridge_plan();
        write_yaml(&path, &plain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("stage2_lr_scale"), "{text}");

        let mut plan = plain.clone();
        plan.stage2_lr_scale.insert(TrainPart::Bridge, 0.2);
        write_yaml(&path, &plan).unwrap();
        let back = RecipePlan::load(&path).unwrap();
        assert_eq!(back.stage2_lr_scale.get(&TrainPart::Bridge), Some(&0.2));

        for (part, scale, want) in [
            (
                TrainPart::VisionEncoder,
                0.5,
                "only bridge, adapter and frame_pos",
            ),
            (TrainPart::Adapter, -1.0, "> 0"),
        ] {
            let mut bad = plain.clone();
            bad.stage2_lr_scale.insert(part, scale);
            write_yaml(&path, &bad).unwrap();
            let err = RecipePlan::load(&path).unwrap_err().to_string();
            assert!(
                err.contains("plan.yaml")
                    && err.contains(&format!("stage2_lr_scale.{}", part.name()))
                    && err.contains(want),
                "{err}"
            );
        }
    }

    #[test]
    fn bridge_locality_reaches_the_lynx_config_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plain = release_bridge_plan();
        write_yaml(&path, &plain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("bridge_locality"), "{text}");
        assert_eq!(plain.lynx_yaml().bridge_config.locality, 0.0);

        let mut local = plain.clone();
        local.bridge_locality = 3.0;
        write_yaml(&path, &local).unwrap();
        let loaded = RecipePlan::load(&path).unwrap();
        assert_eq!(loaded, local);
        assert_eq!(loaded.lynx_yaml().bridge_config.locality, 3.0);

        // 32 latents cannot tile a square grid: refused when the plan loads, not hours later.
        let mut bad = local.clone();
        bad.num_bridge_tokens = 32;
        write_yaml(&path, &bad).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("bridge_locality") && err.contains("32"),
            "{err}"
        );
    }

    #[test]
    fn bridge_instruction_aware_reaches_the_lynx_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plain = release_bridge_plan();
        write_yaml(&path, &plain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("instruction_aware"), "{text}");
        assert!(!plain.lynx_yaml().bridge_config.instruction_aware);

        let mut aware = plain.clone();
        aware.bridge_instruction_aware = true;
        write_yaml(&path, &aware).unwrap();
        let loaded = RecipePlan::load(&path).unwrap();
        assert_eq!(loaded, aware);
        assert!(loaded.lynx_yaml().bridge_config.instruction_aware);
    }

    #[test]
    fn bridge_word_tokens_reach_the_lynx_config_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plain = release_bridge_plan();
        write_yaml(&path, &plain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("word_tokens"), "{text}");
        assert_eq!(plain.lynx_yaml().bridge_config.word_tokens, 0);

        let mut words = plain.clone();
        words.bridge_word_tokens = 4;
        write_yaml(&path, &words).unwrap();
        let loaded = RecipePlan::load(&path).unwrap();
        assert_eq!(loaded, words);
        assert_eq!(loaded.lynx_yaml().bridge_config.word_tokens, 4);

        let mut bad = words.clone();
        bad.bridge_word_tokens = bad.num_bridge_tokens + 1;
        write_yaml(&path, &bad).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("bridge_word_tokens"),
            "{err}"
        );

        // Their place: not written when before the prompt, and refused with no word tokens.
        assert!(!text.contains("word_token_place"), "{text}");
        let mut reply = words.clone();
        reply.bridge_word_token_place = WordTokenPlace::Reply;
        write_yaml(&path, &reply).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("bridge_word_token_place: reply"), "{text}");
        let loaded = RecipePlan::load(&path).unwrap();
        assert_eq!(loaded, reply);
        assert_eq!(
            loaded.lynx_yaml().bridge_config.word_token_place,
            WordTokenPlace::Reply
        );
        reply.bridge_word_tokens = 0;
        write_yaml(&path, &reply).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("bridge_word_token_place"),
            "{err}"
        );

        // Hard word tokens from stage 2 on: not written when off, not in LYNX.yaml (stage 1
        // starts with the mixture), refused without word tokens.
        assert!(!text.contains("word_token_hard"), "{text}");
        let mut hard = words.clone();
        hard.stage2_word_token_hard = true;
        write_yaml(&path, &hard).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("stage2_word_token_hard: true"), "{text}");
        let loaded = RecipePlan::load(&path).unwrap();
        assert_eq!(loaded, hard);
        assert!(!loaded.lynx_yaml().bridge_config.word_token_hard);
        hard.bridge_word_tokens = 0;
        write_yaml(&path, &hard).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("stage2_word_token_hard"),
            "{err}"
        );
    }

    #[test]
    fn stage2_bridge_answer_loss_round_trips_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plain = release_bridge_plan();
        write_yaml(&path, &plain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("bridge_answer_loss"), "{text}");

        let mut aux = plain.clone();
        aux.stage2_bridge_answer_loss = 0.3;
        write_yaml(&path, &aux).unwrap();
        assert_eq!(RecipePlan::load(&path).unwrap(), aux);

        aux.bridge_word_tokens = 4;
        aux.stage2_detach_word_tokens = true;
        write_yaml(&path, &aux).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("stage2_detach_word_tokens: true"), "{text}");
        assert_eq!(RecipePlan::load(&path).unwrap(), aux);
        let mut no_answer = aux.clone();
        no_answer.stage2_bridge_answer_loss = 0.0;
        write_yaml(&path, &no_answer).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("stage2_detach_word_tokens"),
            "{err}"
        );

        // Short answers only: written when on, refused without the answer loss or word tokens.
        assert!(!text.contains("short_only"), "{text}");
        let mut short = aux.clone();
        short.stage2_bridge_answer_short_only = true;
        write_yaml(&path, &short).unwrap();
        let short_text = std::fs::read_to_string(&path).unwrap();
        assert!(
            short_text.contains("stage2_bridge_answer_short_only: true"),
            "{short_text}"
        );
        assert_eq!(RecipePlan::load(&path).unwrap(), short);
        for edit in [
            |p: &mut RecipePlan| p.bridge_word_tokens = 0,
            |p: &mut RecipePlan| {
                p.stage2_bridge_answer_loss = 0.0;
                p.stage2_detach_word_tokens = false;
            },
        ] {
            let mut bad = short.clone();
            edit(&mut bad);
            write_yaml(&path, &bad).unwrap();
            let err = RecipePlan::load(&path).unwrap_err().to_string();
            assert!(
                err.contains("plan.yaml") && err.contains("stage2_bridge_answer_short_only"),
                "{err}"
            );
        }

        // The teacher: a share, written when above 0, for word tokens before the reply only.
        assert!(!text.contains("word_token_teacher"), "{text}");
        let mut taught = aux.clone();
        taught.bridge_word_token_place = WordTokenPlace::Reply;
        taught.stage2_word_token_teacher = 0.5;
        write_yaml(&path, &taught).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("stage2_word_token_teacher: 0.5"), "{text}");
        assert_eq!(RecipePlan::load(&path).unwrap(), taught);
        for (place, share) in [(WordTokenPlace::Prefix, 0.5), (WordTokenPlace::Reply, 1.5)] {
            let mut bad = taught.clone();
            bad.bridge_word_token_place = place;
            bad.stage2_word_token_teacher = share;
            write_yaml(&path, &bad).unwrap();
            let err = RecipePlan::load(&path).unwrap_err().to_string();
            assert!(
                err.contains("plan.yaml") && err.contains("stage2_word_token_teacher"),
                "{err}"
            );
        }

        // Short answers and reply openings for the word tokens: written when on, refused with
        // neither the answer loss nor the teacher, or without word tokens; openings also with
        // the short-only answer loss.
        type Edit = fn(&mut RecipePlan);
        let no_words = |p: &mut RecipePlan| p.bridge_word_tokens = 0;
        let no_loss = |p: &mut RecipePlan| {
            p.stage2_bridge_answer_loss = 0.0;
            p.stage2_detach_word_tokens = false;
            p.stage2_word_token_teacher = 0.0;
        };
        let short_only = |p: &mut RecipePlan| p.stage2_bridge_answer_short_only = true;
        let keys: [(&str, Edit, Vec<Edit>); 2] = [
            (
                "stage2_word_tokens_from_short_answers",
                |p| p.stage2_word_tokens_from_short_answers = true,
                vec![no_words, no_loss],
            ),
            (
                "stage2_word_tokens_from_reply_openings",
                |p| p.stage2_word_tokens_from_reply_openings = true,
                vec![no_words, no_loss, short_only],
            ),
        ];
        for (key, set, edits) in keys {
            assert!(!text.contains(key), "{text}");
            let mut on = taught.clone();
            set(&mut on);
            write_yaml(&path, &on).unwrap();
            let on_text = std::fs::read_to_string(&path).unwrap();
            assert!(on_text.contains(&format!("{key}: true")), "{on_text}");
            assert_eq!(RecipePlan::load(&path).unwrap(), on);
            for edit in edits {
                let mut bad = on.clone();
                edit(&mut bad);
                write_yaml(&path, &bad).unwrap();
                let err = RecipePlan::load(&path).unwrap_err().to_string();
                assert!(err.contains("plan.yaml") && err.contains(key), "{err}");
            }
        }

        // Dialog turns alone: written when above 0, refused outside [0, 100].
        assert!(!text.contains("dialog_turns_alone"), "{text}");
        let mut alone = aux.clone();
        alone.stage2_dialog_turns_alone = 0.5;
        write_yaml(&path, &alone).unwrap();
        let alone_text = std::fs::read_to_string(&path).unwrap();
        assert!(
            alone_text.contains("stage2_dialog_turns_alone: 0.5"),
            "{alone_text}"
        );
        assert_eq!(RecipePlan::load(&path).unwrap(), alone);
        // Its floor on the reply's words: written when above 0, refused without the turns.
        let mut long = alone.clone();
        long.stage2_dialog_turns_min_words = 30;
        write_yaml(&path, &long).unwrap();
        let long_text = std::fs::read_to_string(&path).unwrap();
        assert!(
            long_text.contains("stage2_dialog_turns_min_words: 30"),
            "{long_text}"
        );
        assert_eq!(RecipePlan::load(&path).unwrap(), long);
        long.stage2_dialog_turns_alone = 0.0;
        write_yaml(&path, &long).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(err.contains("stage2_dialog_turns_min_words"), "{err}");
        for w in [-1.0, f64::NAN] {
            alone.stage2_dialog_turns_alone = w;
            write_yaml(&path, &alone).unwrap();
            let err = RecipePlan::load(&path).unwrap_err().to_string();
            assert!(err.contains("stage2_dialog_turns_alone"), "{err}");
        }

        aux.stage2_bridge_answer_loss = -1.0;
        write_yaml(&path, &aux).unwrap();
        let err = RecipePlan::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("plan.yaml") && err.contains("stage2_bridge_answer_loss"),
            "{err}"
        );
    }

    #[test]
    fn stage2_words_round_trips_scales_and_needs_question_reading_word_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.yaml");
        let plain = release_bridge_plan();
        write_yaml(&path, &plain).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("stage2_words"), "{text}");

        let mut words = plain.clone();
        words.bridge_word_tokens = 4;
        words.bridge_instruction_aware = true;
        words.stage2_words = Some(budget(1500, 16, 2, 1e-3, 96));
        write_yaml(&path, &words).unwrap();
        assert_eq!(RecipePlan::load(&path).unwrap(), words);
        let scaled = words.clone().scaled(0.01);
        assert_eq!(scaled.stage2_words.map(|b| b.steps), Some(15));

        for edit in [
            |p: &mut RecipePlan| p.bridge_word_tokens = 0,
            |p: &mut RecipePlan| p.bridge_instruction_aware = false,
        ] {
            let mut bad = words.clone();
            edit(&mut bad);
            write_yaml(&path, &bad).unwrap();
            let err = RecipePlan::load(&path).unwrap_err().to_string();
            assert!(
                err.contains("plan.yaml") && err.contains("stage2_words"),
                "{err}"
            );
        }
    }
}
