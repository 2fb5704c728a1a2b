//! Training (paper Sections 2.3 and 2.4): optimiser, schedules, checkpoints, metrics, RNG and
//! the training configuration. The loop itself (`trainer.rs`) builds on these.

pub mod atomic;
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod core;
pub mod lm;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod rng;
pub mod schedule;
pub mod st_io;
pub mod stages;
pub mod tokenizer_train;
pub mod trainer;
pub mod vision;
pub mod vision_targets;
pub mod word_teacher;
