//! Writes one example per Open-VQA class of the synthetic world to `examples/synth/` (a PNG,
//! a filmstrip PNG for videos, and README.md with the question, answers and explanation), using
//! the public `lynx::synth` API. Run: `cargo run -p lynx --example synth_examples [OUT_DIR]`.

use std::fmt::Write as _;
use std::path::PathBuf;

use image::{GenericImage, RgbImage};
use lynx::synth::render::{png_bytes, render_image};
use lynx::synth::video::render_frames;
use lynx::synth::{sample_scene, scene_questions, scene_rng, Split, SynthConfig, VqaClass};

fn main() -> lynx::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "examples/synth".into()),
    );
    std::fs::create_dir_all(&out).map_err(|e| lynx::Error::io(&out, e))?;
    let cfg = SynthConfig {
        seed: 0,
        video_fraction: 0.25,
        ..SynthConfig::default()
    };
    let mut readme = String::from(
        "# Synthetic world examples\n\nOne scene per Open-VQA class from `lynx data synth --seed 0 \
         --video-fraction 0.25` (112 px; videos shown as 8-frame filmstrips). Regenerate with \
         `cargo run -p lynx --example synth_examples`.\n\n| class | file | question | answers | explanation |\n| --- | --- | --- | --- | --- |\n",
    );
    let classes: Vec<VqaClass> = VqaClass::IMAGE.into_iter().chain(VqaClass::VIDEO).collect();
    let mut used = Vec::new();
    for class in classes {
        // The first unused scene that has a question of this class (OCR: one with a sign).
        for index in 0..500 {
            if used.contains(&index) {
                continue;
            }
            let scene = sample_scene(&cfg, Split::Train, index);
            let qas = scene_questions(&scene, &mut scene_rng(cfg.seed, Split::Train, index, 1));
            let preferred = |k: &str| match class {
                VqaClass::Ocr => k == "ocr_sign",
                VqaClass::Counting => k == "count",
                VqaClass::Reasoning => k == "missing",
                VqaClass::Spatial => k == "between",
                VqaClass::Others => k == "shape_of",
                _ => true,
            };
            let Some(qa) = qas
                .iter()
                .find(|q| q.class == class && q.testable && preferred(q.kind))
            else {
                continue;
            };
            used.push(index);
            let slug = format!(
                "{}{}",
                if scene.is_video() { "video_" } else { "" },
                class.open_vqa_name().to_lowercase().replace("(y/n)", "_yn")
            );
            let img = if scene.is_video() {
                let frames = render_frames(&scene);
                let mut strip = RgbImage::new(scene.side * frames.len() as u32, scene.side);
                for (k, f) in frames.iter().enumerate() {
                    strip
                        .copy_from(f, k as u32 * scene.side, 0)
                        .map_err(|e| lynx::Error::media(&slug, e.to_string()))?;
                }
                strip
            } else {
                render_image(&scene)
            };
            let file = out.join(format!("{slug}.png"));
            std::fs::write(&file, png_bytes(&img)?).map_err(|e| lynx::Error::io(&file, e))?;
            let question = qa.phrase(&mut scene_rng(cfg.seed, Split::Train, index, 2), false);
            let _ = writeln!(
                readme,
                "| {} | [{slug}.png]({slug}.png) | {question} | {} | {} |",
                class.open_vqa_name(),
                qa.alternatives.join(" / "),
                qa.explanation
            );
            break;
        }
    }
    let path = out.join("README.md");
    std::fs::write(&path, readme).map_err(|e| lynx::Error::io(&path, e))?;
    println!("wrote {}", out.display());
    Ok(())
}
