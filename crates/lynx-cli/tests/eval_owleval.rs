//! `lynx eval owleval` end to end with the tiny fixture model on real OwlEval questions and
//! images (../shared/data/owleval): dialogues asked in order with the model's own answers in the
//! prompt, the paper's padding, the answer format the rating server loads, resume, and errors
//! named by question id.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{owleval, text};
use lynx::eval::{self, OwlAnswer};
use lynx::pipeline::{Engine, EngineOptions, Media, Request};
use serde_json::Value;

/// Short answers and room for a dialogue in the prompt (the tiny config keeps 40 tokens).
const SETS: [&str; 2] = ["max_new_tokens=8", "max_input_tokens=200"];

fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/lynx.yaml")
}

/// The lines of the real questions file with these ids, in file order.
fn questions_subset(ids: &[i64], dest: &Path) {
    let all = std::fs::read_to_string(owleval().join("questions.jsonl")).unwrap();
    let mut out = String::new();
    for line in all.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if ids.contains(&v["question_id"].as_i64().unwrap()) {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(dest, out).unwrap();
}

fn run(questions: &Path, images: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lynx"));
    cmd.args(["eval", "owleval", "--config"])
        .arg(tiny_config())
        .arg("--questions")
        .arg(questions)
        .arg("--images")
        .arg(images)
        .arg("--out")
        .arg(out);
    for s in SETS {
        cmd.args(["--set", s]);
    }
    cmd.args(extra).output().unwrap()
}

fn engine() -> Engine {
    Engine::load(&EngineOptions {
        config: Some(tiny_config()),
        sets: SETS.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .unwrap()
}

fn answer_alone(engine: &Engine, req: &Request) -> String {
    let mut rng = engine.rng();
    let gen = engine.generation_config();
    engine
        .answer(std::slice::from_ref(req), &gen, &mut rng)
        .unwrap()[0]
        .text
        .clone()
}

/// 9.jpg: a two-turn dialogue (13, 14); 47.jpg: the first two turns of five (75, 76);
/// 48.jpg: a single question (80). The smallest images of the set, to keep the test quick.
const IDS: [i64; 5] = [13, 14, 75, 76, 80];

#[test]
fn dialogues_in_order_with_padding_in_the_rating_format() {
    let dir = tempfile::tempdir().unwrap();
    let questions = dir.path().join("questions.jsonl");
    questions_subset(&IDS, &questions);
    let out = dir.path().join("answers/lynx.jsonl");
    let cases = owleval().join("cases");
    let o = run(&questions, &cases, &out, &["--model-id", "lynx-tiny"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("owleval: 5 questions: 5 answered, 0 already in"),
        "{}",
        text(&o.stderr)
    );

    // the published answer format, one line per question, in id order
    let raw = std::fs::read_to_string(&out).unwrap();
    let mut ids = Vec::new();
    for line in raw.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = vec!["answer", "image", "model_id", "question", "question_id"];
        want.sort();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        assert_eq!(keys_sorted, want, "{line}");
        assert!(line.starts_with("{\"image\":"), "{line}");
        assert_eq!(v["model_id"], "lynx-tiny");
        assert!(!v["answer"].as_str().unwrap().trim().is_empty(), "{line}");
        ids.push(v["question_id"].as_i64().unwrap());
    }
    assert_eq!(ids, IDS);
    let answers = eval::read_answers(&out).unwrap();
    let qs = eval::load_questions(&questions).unwrap();
    for (a, q) in answers.iter().zip(&qs) {
        assert_eq!((&a.image, &a.question), (&q.image, &q.question));
    }
    let by_id: HashMap<i64, String> = answers
        .iter()
        .map(|a| (a.question_id, a.answer.clone()))
        .collect();

    // the second turn's prompt holds the first question and the model's first answer
    let engine = engine();
    let ds = eval::dialogues(&qs, "questions.jsonl").unwrap();
    assert_eq!(ds.len(), 3);
    let d = &ds[0];
    assert_eq!(d.image, "9.jpg");
    let padded = eval::load_padded(&cases.join("9.jpg"), 8, [255; 3]).unwrap();
    let px = engine.preprocessor.eval(&padded).unwrap();
    let req = eval::dialogue_request(d, 1, &by_id, Some(Media::ImagePixels(px.clone()))).unwrap();
    let prompt = engine
        .tokenizer
        .decode(&engine.prompt_ids(&req).unwrap(), true)
        .unwrap();
    assert!(prompt.contains(by_id[&13].as_str()), "{prompt:?}");
    assert!(
        prompt.contains("excluding ford f150 lightning"),
        "{prompt:?}"
    );
    assert!(
        prompt.trim_end().ends_with("step-by-step.\nbot:"),
        "{prompt:?}"
    );
    // and the command asked exactly that (padded image, dialogue so far), batched or not
    assert_eq!(answer_alone(&engine, &req), by_id[&14]);
    let no_history = Request {
        history: Vec::new(),
        ..req.clone()
    };
    assert_ne!(answer_alone(&engine, &no_history), by_id[&14]);
    let first = eval::dialogue_request(d, 0, &by_id, Some(Media::ImagePixels(px))).unwrap();
    assert_eq!(answer_alone(&engine, &first), by_id[&13]);
    let single = &ds[2];
    let px48 = engine
        .preprocessor
        .eval(&eval::load_padded(&cases.join("48.jpg"), 8, [255; 3]).unwrap())
        .unwrap();
    let req80 = eval::dialogue_request(single, 0, &by_id, Some(Media::ImagePixels(px48))).unwrap();
    assert_eq!(answer_alone(&engine, &req80), by_id[&80]);

    // `lynx rate serve` loads it beside a published model's answers
    let llava = dir.path().join("answers/llava.jsonl");
    let published =
        std::fs::read_to_string(owleval().join("answer/llava_13b_answer.jsonl")).unwrap();
    let subset: Vec<&str> = published
        .lines()
        .filter(|l| {
            let a: OwlAnswer = serde_json::from_str(l).unwrap();
            IDS.contains(&a.question_id)
        })
        .collect();
    std::fs::write(&llava, subset.join("\n") + "\n").unwrap();
    let set = lynx_serve::rating::AnswerSet::load(
        &[out.clone(), llava],
        Some(questions.as_path()),
        Some(cases.as_path()),
    )
    .unwrap();
    assert_eq!(set.models, ["llava-13b", "lynx-tiny"]);
    assert_eq!(set.question_ids(), IDS);
    let q14 = set.question(14).unwrap();
    assert_eq!(q14.earlier, [qs[0].question.clone()]);
    assert_eq!(q14.answers[1], by_id[&14]);
}

#[test]
fn padding_adds_eight_white_pixels_per_side_before_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ten.png");
    image::RgbImage::from_pixel(10, 10, image::Rgb([10, 20, 30]))
        .save(&p)
        .unwrap();
    let img = eval::load_padded(&p, 8, [255; 3]).unwrap();
    assert_eq!(img.dimensions(), (26, 26));
    assert_eq!(img.get_pixel(0, 0).0, [255, 255, 255]);
    assert_eq!(img.get_pixel(25, 12).0, [255, 255, 255]);
    assert_eq!(img.get_pixel(8, 8).0, [10, 20, 30]);
    assert_eq!(img.get_pixel(17, 17).0, [10, 20, 30]);
    assert_eq!(img.get_pixel(18, 17).0, [255, 255, 255]);
    assert_eq!(
        eval::load_padded(&p, 0, [255; 3]).unwrap().dimensions(),
        (10, 10)
    );
    // what the model sees differs: the border is in the preprocessed pixels
    let engine = engine();
    let a = engine.preprocessor.eval(&img).unwrap();
    let b = engine
        .preprocessor
        .eval(&eval::load_padded(&p, 0, [255; 3]).unwrap())
        .unwrap();
    let diff = (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 1.0, "{diff}");
}

#[test]
fn missing_image_names_the_question_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases");
    std::fs::create_dir_all(&cases).unwrap();
    for img in ["47.jpg", "48.jpg"] {
        std::fs::copy(owleval().join("cases").join(img), cases.join(img)).unwrap();
    }
    let questions = dir.path().join("questions.jsonl");
    questions_subset(&[75, 76, 80], &questions);
    // a dialogue about an image that is not there
    let mut q = std::fs::read_to_string(&questions).unwrap();
    q.push_str(
        r#"{"image": "absent.jpg", "question_id": 90, "question": "What is this?", "ability": "b", "category": ["single_turn", "multi_turn"]}
{"image": "absent.jpg", "question_id": 91, "question": "Why?", "ability": "e,f", "category": ["multi_turn"]}
"#,
    );
    std::fs::write(&questions, q).unwrap();
    let out = dir.path().join("lynx.jsonl");

    let o = run(&questions, &cases, &out, &[]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("error: question_id 90 (absent.jpg): "),
        "{err}"
    );
    assert!(err.contains("absent.jpg: No such file"), "{err}");
    assert!(
        err.contains(
            "error: question_id 91 (absent.jpg): not asked: the earlier turn question_id 90 failed"
        ),
        "{err}"
    );
    assert!(err.contains("2 question(s) could not be answered"), "{err}");
    let first = std::fs::read_to_string(&out).unwrap();
    let ids: Vec<i64> = eval::read_answers(&out)
        .unwrap()
        .iter()
        .map(|a| a.question_id)
        .collect();
    assert_eq!(ids, [75, 76, 80]);
    assert!(first.contains("\"model_id\":\"lynx\""));

    // resuming under another model id would mix two models in one file
    let o = run(
        &questions,
        &cases,
        &out,
        &["--resume", "--model-id", "other"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("holds answers of model_id `lynx`, not `other`"),
        "{}",
        text(&o.stderr)
    );

    // a crash in the middle of line 2; the image turns up; resume answers only what is missing
    let cut = first.find('\n').unwrap() + 30;
    std::fs::write(&out, &first[..cut]).unwrap();
    std::fs::copy(owleval().join("cases/9.jpg"), cases.join("absent.jpg")).unwrap();
    let o = run(&questions, &cases, &out, &["--resume"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("owleval: 5 questions: 4 answered, 1 already in"),
        "{}",
        text(&o.stderr)
    );
    let again = std::fs::read_to_string(&out).unwrap();
    // deterministic: the re-asked questions got the same answers, and the file is in id order
    assert!(again.starts_with(&first), "{again}\n---\n{first}");
    let ids: Vec<i64> = eval::read_answers(&out)
        .unwrap()
        .iter()
        .map(|a| a.question_id)
        .collect();
    assert_eq!(ids, [75, 76, 80, 90, 91]);

    // nothing left: a resumed run asks nothing and keeps the file
    let o = run(&questions, &cases, &out, &["--resume"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("0 answered, 5 already in"));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), again);
}
