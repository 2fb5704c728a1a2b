//! The generated visual world (issue 4): a deterministic, learnable test-bed for a tiny Lynx.
//! Scenes of shapes, signs and books on eight procedural places, short videos of simple events,
//! and training data in the task categories of paper Section 2.4 plus an Open-VQA style test
//! split (Section 3.1) with seen and held-out question phrasings.
//!
//! Entry point: [`generate_world`]. Scenes can also be sampled and rendered one at a time with
//! [`sample_scene`], [`render::render_image`] and [`video::render_frames`], and questioned with
//! [`scene_questions`].
//!
//! # Vocabulary (`vocab.rs`)
//! 8 shapes (circle, square, triangle, star, diamond, hexagon, heart, cross), 8 colours (red,
//! orange, yellow, green, blue, purple, pink, white), 3 absolute sizes (small, medium, large:
//! half-sides of 7.5 %, 11 % and 15 % of the image side), 8 places (beach, snow, forest, city
//! street, room, desert, night sky, field), 52 sign/book words and the numbers 0-99 on labels.
//! Video events: moves left/right/up/down, appears, disappears, gets bigger/smaller, turns COLOR.
//!
//! # Output layout (`writer.rs`, `records.rs`)
//! - `scenes.jsonl`, `images/ID.png`, `videos/ID.json`. Videos use the release's format: a JSON
//!   list of base64-encoded PNG frames (`frames` per video, default 8). Boxes are pixel
//!   `[x0, y0, x1, y1]` (exclusive ends) of the image, or of the first frame in which a video
//!   object is visible; video objects also carry a per-frame `track`.
//! - `train/*.jsonl` in the formats of docs/ARCHITECTURE.md, media paths relative to `train/`:
//!   `pairs` (stage-1 short and detailed captions), `caption`, `caption_detailed`, `place`,
//!   `vqa_{ocr,count,reasoning,place,color,spatial,action,shape}`, `vqa_explain` (answers are
//!   sentences with a reason), `video_action`, `video_qa`, `video_caption`, `dialog`,
//!   `text_instruct` (with lessons on everyday synonyms, `lexicon.rs`), `text_reading`
//!   (a described scene and a question about it, `reading.rs`; `text_reading_control` asks
//!   the same questions after another scene's description); `train/prompts.yaml` (templates per task), `train/stage1.yaml`,
//!   `train/stage2.yaml` (suggested mixtures), `train/question_phrasings.yaml`. With
//!   `paraphrase` above 0, that share of training questions gets a surface paraphrase
//!   (`paraphrase.rs`); media, scenes and the test split do not change.
//! - `test/`: held-out scenes (their own seed stream and ids `test_NNNNNN`), `scenes.jsonl`,
//!   `open_vqa_images.jsonl`, `open_vqa_videos.jsonl` (official Open-VQA line format, media
//!   paths relative to `test/`), the same questions with held-out phrasings in
//!   `*_unseen.jsonl`, and `heldout_phrasings.yaml`.
//! - `summary.json` (config and counts) and `README.md`.
//!
//! # Determinism
//! Scene `i` of a split draws only from `scene_rng(seed, split, i, purpose)`; scenes are built
//! in parallel with rayon and written in index order, so output bytes depend on the seed only.

pub mod attributes;
pub mod language;
pub mod lexicon;
pub mod paraphrase;
pub mod phrasings;
pub mod placer;
pub mod places;
pub mod questions;
pub mod reading;
pub mod records;
pub mod relations;
pub mod render;
pub mod spatial;
pub mod templates;
pub mod textonly;
pub mod video;
pub mod video_questions;
pub mod vocab;
pub mod world;
pub mod writer;

pub use questions::{scene_questions, Qa, VqaClass};
pub use world::{Layout, Scene};
pub use writer::{
    generate_world, is_video, sample_scene, scene_id, scene_rng, Split, SynthConfig, WorldSummary,
};
