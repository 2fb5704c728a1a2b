//! Loading and checking OwlEval answer files (`lynx rate serve` start-up): the 6 published files,
//! and every inconsistency that must stop the server, named by file and line.

use std::path::{Path, PathBuf};

use lynx_serve::rating::AnswerSet;

fn owleval() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/owleval")
}

fn real_answer_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(owleval().join("answer"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn line(model: &str, id: i64, image: &str) -> String {
    format!(
        r#"{{"image": "{image}", "question_id": {id}, "question": "q{id}?", "answer": "{model} says {id}", "model_id": "{model}"}}"#
    )
}

/// Writes files named `name` with `lines` into a temp dir.
fn files(specs: &[(&str, Vec<String>)]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let paths = specs
        .iter()
        .map(|(name, lines)| {
            let p = dir.path().join(name);
            std::fs::write(&p, lines.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    (dir, paths)
}

fn err(paths: &[PathBuf], questions: Option<&Path>) -> String {
    AnswerSet::load(paths, questions, None)
        .unwrap_err()
        .to_string()
}

#[test]
fn loads_the_six_published_owleval_answer_files() {
    let root = owleval();
    let set = AnswerSet::load(
        &real_answer_files(),
        Some(&root.join("questions.jsonl")),
        Some(&root.join("cases")),
    )
    .unwrap();
    assert_eq!(
        set.models,
        [
            "BLIP2",
            "MMreact",
            "llava-13b",
            "mPLUG_Owl_7b:v1",
            "minigpt4_13b",
            "openflanmingo"
        ]
    );
    assert_eq!(set.questions.len(), 82);
    assert_eq!(set.question_ids(), (1..=82).collect::<Vec<i64>>());
    let q36 = set.question(36).unwrap();
    assert_eq!(q36.text, "Describe this image as detailed as possible.");
    // Answer files say `N.png`; the images are `cases/N.jpg`.
    assert_eq!(
        q36.image_path.as_deref(),
        Some(root.join("cases").join(&q36.image_name).as_path())
    );
    assert!(set
        .questions
        .iter()
        .all(|q| q.image_path.as_ref().is_some_and(|p| p.is_file())));
    assert_eq!(
        set.question(1).unwrap().answers[0],
        "the phone is plugged into a charger"
    );
    // Without a questions file the first answer file's texts are shown.
    let set = AnswerSet::load(&real_answer_files(), None, None).unwrap();
    assert_eq!(
        set.question(36).unwrap().text,
        "Describe this image as detailed aspossible."
    );
    assert!(set.question(36).unwrap().image_path.is_none());
}

#[test]
fn duplicate_model_and_question_names_both_lines() {
    let (_d, p) = files(&[
        (
            "a.jsonl",
            vec![line("m1", 1, "1.jpg"), line("m1", 2, "2.jpg")],
        ),
        (
            "b.jsonl",
            vec![
                line("m2", 1, "1.jpg"),
                line("m2", 2, "2.jpg"),
                line("m2", 1, "1.jpg"),
            ],
        ),
    ]);
    let e = err(&p, None);
    assert!(
        e.contains("b.jsonl:3:") && e.contains("duplicate answer of model `m2` to question_id 1"),
        "{e}"
    );
    assert!(e.contains("b.jsonl:1"), "{e}");
}

#[test]
fn mismatched_question_sets_name_the_file() {
    let (_d, p) = files(&[
        (
            "a.jsonl",
            vec![line("m1", 1, "1.jpg"), line("m1", 2, "2.jpg")],
        ),
        ("b.jsonl", vec![line("m2", 1, "1.jpg")]),
    ]);
    let e = err(&p, None);
    assert!(
        e.contains("b.jsonl:") && e.contains("model `m2` has no answer to question_id 2"),
        "{e}"
    );
    assert!(e.contains("a.jsonl:2"), "{e}");
    let (_d, p) = files(&[
        ("a.jsonl", vec![line("m1", 1, "1.jpg")]),
        (
            "b.jsonl",
            vec![line("m2", 1, "1.jpg"), line("m2", 7, "7.jpg")],
        ),
    ]);
    let e = err(&p, None);
    assert!(
        e.contains("b.jsonl:2:") && e.contains("question_id 7 of model `m2` is not in"),
        "{e}"
    );
}

#[test]
fn mismatched_images_name_the_line_but_extensions_may_differ() {
    let (_d, p) = files(&[
        (
            "a.jsonl",
            vec![line("m1", 1, "1.jpg"), line("m1", 2, "2.jpg")],
        ),
        (
            "b.jsonl",
            vec![line("m2", 1, "1.png"), line("m2", 2, "3.png")],
        ),
    ]);
    let e = err(&p, None);
    assert!(
        e.contains("b.jsonl:2:") && e.contains("image `3.png`") && e.contains("a.jsonl:2"),
        "{e}"
    );
}

#[test]
fn the_questions_file_is_the_reference_when_given() {
    let (d, p) = files(&[
        (
            "a.jsonl",
            vec![line("m1", 1, "1.jpg"), line("m1", 2, "2.jpg")],
        ),
        (
            "b.jsonl",
            vec![line("m2", 1, "1.jpg"), line("m2", 2, "2.jpg")],
        ),
        (
            "q.jsonl",
            vec![r#"{"image": "1.jpg", "question_id": 1, "question": "First?"}"#.into()],
        ),
    ]);
    let e = err(&p[..2], Some(&p[2]));
    assert!(
        e.contains("a.jsonl:2:")
            && e.contains("question_id 2 of model `m1` is not in the questions file"),
        "{e}"
    );
    std::fs::write(
        &p[2],
        "{\"image\": \"1.jpg\", \"question_id\": 1, \"question\": \"First?\"}\n\
         {\"image\": \"2.jpg\", \"question_id\": 2, \"question\": \"Second?\"}\n",
    )
    .unwrap();
    let set = AnswerSet::load(&p[..2], Some(&p[2]), None).unwrap();
    assert_eq!(set.question(2).unwrap().text, "Second?");
    assert_eq!(set.question(2).unwrap().answers, ["m1 says 2", "m2 says 2"]);
    // Images that are not in the folder are an error at start.
    let e = AnswerSet::load(&p[..2], Some(&p[2]), Some(d.path()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("q.jsonl:1:") && e.contains("image `1.jpg` is not in"),
        "{e}"
    );
}

#[test]
fn malformed_lines_and_files_are_errors() {
    let (_d, p) = files(&[
        (
            "a.jsonl",
            vec![line("m1", 1, "1.jpg"), "{\"image\": \"1.jpg\"".into()],
        ),
        ("b.jsonl", vec![line("m2", 1, "1.jpg")]),
    ]);
    assert!(
        err(&p, None).contains("a.jsonl:2: bad answer"),
        "{}",
        err(&p, None)
    );
    let (_d, p) = files(&[(
        "a.jsonl",
        vec![r#"{"image": "1.jpg", "question_id": "1", "question": "?", "answer": "x", "model_id": "m"}"#.into()],
    )]);
    assert!(
        err(&p, None).contains("a.jsonl:1: bad answer"),
        "{}",
        err(&p, None)
    );
    let (_d, p) = files(&[("a.jsonl", vec![line(" ", 1, "1.jpg")])]);
    assert!(
        err(&p, None).contains("a.jsonl:1: empty `model_id`"),
        "{}",
        err(&p, None)
    );
    let (_d, p) = files(&[
        ("a.jsonl", vec![line("m1", 1, "1.jpg")]),
        ("b.jsonl", vec![]),
    ]);
    assert!(
        err(&p, None).contains("b.jsonl: no answers"),
        "{}",
        err(&p, None)
    );
    let (_d, p) = files(&[("a.jsonl", vec![line("m1", 1, "1.jpg")])]);
    assert!(
        err(&p, None).contains("at least 2 models"),
        "{}",
        err(&p, None)
    );
    let missing = vec![PathBuf::from("/nonexistent/answers.jsonl")];
    assert!(err(&missing, None).contains("/nonexistent/answers.jsonl"));
}
