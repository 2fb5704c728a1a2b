//! The generated visual world (issue 4): a deterministic, learnable test-bed for a tiny Lynx.
//! Scenes of shapes, signs and books on eight procedural places, short videos of simple events,
//! and training data in the task categories of paper Section 2.4 plus an Open-VQA style test
//! split (Section 3.1) with seen and held-out question phrasings.
//!
//! Entry point: [`generate_world`]. Scenes can also be sampled and rendered one at a time with
//! [`sample_scene`], [`render::render_image`] and [`video::render_frames`].

pub mod language;
pub mod phrasings;
pub mod places;
pub mod questions;
pub mod records;
pub mod relations;
pub mod render;
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
