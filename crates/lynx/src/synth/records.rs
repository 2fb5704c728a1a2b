//! The JSON shapes the synthetic world writes: `scenes.jsonl` lines, training records in the
//! formats of docs/ARCHITECTURE.md, and Open-VQA annotation lines (official release format).

use std::collections::BTreeMap;

use serde::Serialize;

use super::questions::VqaClass;
use super::video_questions::motion_of;
use super::world::{Rect, Scene};

/// A box in whole pixels, grown outward to cover the drawn shape and clamped to the image.
pub fn pixel_box(r: Rect, side: u32) -> [u32; 4] {
    let s = side as f32;
    [
        r[0].floor().clamp(0.0, s) as u32,
        r[1].floor().clamp(0.0, s) as u32,
        r[2].ceil().clamp(0.0, s) as u32,
        r[3].ceil().clamp(0.0, s) as u32,
    ]
}

#[derive(Serialize)]
pub struct FramePose {
    pub bbox: [u32; 4],
    pub color: &'static str,
}

#[derive(Serialize)]
pub struct ObjectJson {
    pub shape: &'static str,
    pub color: &'static str,
    pub size: &'static str,
    pub bbox: [u32; 4],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub motion: Option<&'static str>,
    /// Videos: the pose per frame, `null` while the object is not visible.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub track: Vec<Option<FramePose>>,
}

#[derive(Serialize)]
pub struct TextJson {
    pub text: String,
    pub bbox: [u32; 4],
    pub kind: &'static str,
    pub board: [u32; 4],
    pub color: &'static str,
}

#[derive(Serialize)]
pub struct EventJson {
    pub object: usize,
    pub action: String,
}

#[derive(Serialize)]
pub struct PatternJson {
    pub slots: Vec<Option<usize>>,
    pub missing: BTreeMap<&'static str, &'static str>,
    pub gap: [u32; 4],
}

#[derive(Serialize)]
pub struct SceneJson {
    pub id: String,
    pub kind: &'static str,
    pub media: String,
    pub width: u32,
    pub height: u32,
    pub place: &'static str,
    pub objects: Vec<ObjectJson>,
    pub texts: Vec<TextJson>,
    pub events: Vec<EventJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern: Option<PatternJson>,
}

/// The `scenes.jsonl` line of a scene. Video boxes are those of the first frame in which the
/// object is visible (the first frame, except for objects that appear later).
pub fn scene_json(scene: &Scene, media: &str) -> SceneJson {
    let side = scene.side;
    let objects = scene
        .objects
        .iter()
        .map(|o| {
            let track: Vec<Option<FramePose>> = o
                .track
                .iter()
                .map(|p| {
                    p.map(|p| FramePose {
                        bbox: pixel_box(super::world::shape_bbox(o.shape, p.cx, p.cy, p.r), side),
                        color: p.color.name(),
                    })
                })
                .collect();
            let bbox = track
                .iter()
                .flatten()
                .next()
                .map(|p| p.bbox)
                .unwrap_or_else(|| pixel_box(o.bbox(), side));
            ObjectJson {
                shape: o.shape.name(),
                color: o.color.name(),
                size: o.size.name(),
                bbox,
                motion: o.motion.map(|d| d.name()),
                track,
            }
        })
        .collect();
    let texts = scene
        .texts
        .iter()
        .map(|t| TextJson {
            text: t.text.clone(),
            bbox: pixel_box(t.bbox, side),
            kind: t.kind.name(),
            board: pixel_box(t.board, side),
            color: t.board_color.name(),
        })
        .collect();
    let events = scene
        .events
        .iter()
        .map(|e| EventJson {
            object: e.object,
            action: motion_of(e.kind).third,
        })
        .collect();
    let pattern = scene.pattern.as_ref().map(|p| PatternJson {
        slots: p.slots.clone(),
        missing: BTreeMap::from([
            ("shape", p.missing_shape.name()),
            ("color", p.missing_color.name()),
        ]),
        gap: pixel_box(p.gap, side),
    });
    SceneJson {
        id: scene.id.clone(),
        kind: if scene.is_video() { "video" } else { "image" },
        media: media.to_string(),
        width: side,
        height: side,
        place: scene.place.name(),
        objects,
        texts,
        events,
        frames: scene.is_video().then_some(scene.frames),
        pattern,
    }
}

#[derive(Serialize)]
pub struct Turn {
    pub from: &'static str,
    pub value: String,
}

/// One training record (pair, task, text-only or dialog; see docs/ARCHITECTURE.md).
#[derive(Serialize, Default)]
pub struct Record {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// An explained answer's short answer (`vqa_explain`): what the bridge's word tokens
    /// should name while the reply argues for it (`TrainConfig::word_tokens_from_short_answers`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub short_answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversations: Option<Vec<Turn>>,
}

impl Record {
    fn media(media: &str, video: bool) -> Record {
        if video {
            Record {
                video: Some(media.into()),
                ..Default::default()
            }
        } else {
            Record {
                image: Some(media.into()),
                ..Default::default()
            }
        }
    }
    pub fn pair(media: &str, video: bool, caption: String) -> Record {
        Record {
            caption: Some(caption),
            ..Record::media(media, video)
        }
    }
    pub fn task(
        task: &'static str,
        media: &str,
        video: bool,
        question: Option<String>,
        answer: String,
    ) -> Record {
        Record {
            task: Some(task),
            question,
            answer: Some(answer),
            ..Record::media(media, video)
        }
    }
    pub fn text(task: &'static str, question: String, answer: String) -> Record {
        Record {
            task: Some(task),
            question: Some(question),
            answer: Some(answer),
            ..Default::default()
        }
    }
    pub fn dialog(media: &str, video: bool, turns: Vec<(&'static str, String)>) -> Record {
        let conversations = turns
            .into_iter()
            .map(|(from, value)| Turn { from, value })
            .collect();
        Record {
            task: Some("dialog"),
            conversations: Some(conversations),
            ..Record::media(media, video)
        }
    }
}

/// One line of an Open-VQA annotation file.
#[derive(Serialize)]
pub struct OpenVqaRec {
    pub dataset: String,
    pub question: String,
    pub answer: Vec<String>,
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    pub origin_dataset: &'static str,
    pub class: &'static str,
}

impl OpenVqaRec {
    pub fn new(
        dataset: &str,
        question: String,
        answer: Vec<String>,
        index: usize,
        media: &str,
        video: bool,
        class: VqaClass,
    ) -> Self {
        OpenVqaRec {
            dataset: dataset.to_string(),
            question,
            answer,
            index,
            image: (!video).then(|| media.to_string()),
            video: video.then(|| media.to_string()),
            origin_dataset: "synth",
            class: class.open_vqa_name(),
        }
    }
}

/// Suggested dataset mixtures (`datasets: [{path, weight}]`, paths relative to train/).
pub fn stage_yaml(records: &BTreeMap<String, usize>, stage1: bool) -> String {
    let mut out = String::from(if stage1 {
        "# Stage 1 (paper 2.3): image/video-caption pairs.\ndatasets:\n"
    } else {
        "# Stage 2 (paper 2.4): instruction tasks, dialogs and text-only instructions.\ndatasets:\n"
    });
    for (file, _) in records.iter().filter(|(_, n)| **n > 0) {
        let weight = match file.trim_end_matches(".jsonl") {
            "pairs" if stage1 => 1.0,
            _ if stage1 => continue,
            "pairs" => continue,
            // A probe (questions after another scene's description), never training data.
            "text_reading_control" => continue,
            "caption" | "caption_detailed" | "place" | "video_caption" => 0.5,
            "text_instruct" | "dialog" | "vqa_explain" => 1.0,
            _ => 1.0,
        };
        out.push_str(&format!("  - {{path: \"{file}\", weight: {weight:.1}}}\n"));
    }
    out
}

/// README.md written at the top of a generated world.
pub const README: &str = "# Synthetic Lynx world (`lynx data synth`)

- `scenes.jsonl`: one line per training scene: id, kind (image|video), media, width, height,
  place, objects (shape, color, size, bbox [x0,y0,x1,y1] in pixels; videos add a per-frame
  `track`), texts (text, ink bbox, kind, board, color), events (object index, action), and for
  pattern scenes the missing piece.
- `images/*.png`; `videos/*.json`: a JSON list of base64-encoded PNG frames (the release format).
- `train/*.jsonl`: training records (media paths relative to train/); `train/prompts.yaml`
  holds the instruction templates per task; `train/stage1.yaml`, `train/stage2.yaml` suggest
  dataset mixtures; `train/question_phrasings.yaml` lists the question phrasings used.
- `test/`: held-out scenes with their own `scenes.jsonl`, media, and Open-VQA annotation files
  (`open_vqa_images.jsonl`, `open_vqa_videos.jsonl`, and `*_unseen.jsonl` with the phrasings of
  `test/heldout_phrasings.yaml`, never used in training). Media paths are relative to test/.
- `summary.json`: the configuration and counts.
";
