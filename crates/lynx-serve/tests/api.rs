//! HTTP API tests of the OwlEval rating server (paper Section 3.1 rules) on the 6 published
//! OwlEval answer files: anonymised stable shuffles, every rule refused with a 4xx JSON error
//! that stores nothing, resume after a restart, images.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{answer_files, owleval, real_config, refused, small_answers, start, Client, LABELS};
use lynx_serve::rating::{AnswerSet, RatingApp, ServeConfig};
use serde_json::{json, Value};

/// (model id -> score) stored for `name` on `question`, read straight from the database.
fn stored(db: &std::path::Path, name: &str, question: i64) -> BTreeMap<String, u8> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT r.model_id, r.score FROM ratings r JOIN annotators a ON a.id = r.annotator_id
             WHERE a.name = ?1 AND r.question_id = ?2",
        )
        .unwrap();
    let rows = stmt
        .query_map(rusqlite::params![name, question], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

fn row_count(db: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM ratings", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn page_is_self_contained_and_states_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&real_config(&dir.path().join("r.sqlite")));
    let (status, ctype, bytes) = Client::new(&server).get_bytes("/");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let page = String::from_utf8(bytes).unwrap();
    assert!(page.contains("Correctness comes first") && page.contains("richness"));
    for external in ["src=\"http", "href=\"http", "@import", "url(http", "<link"] {
        assert!(
            !page.contains(external),
            "the page loads something external: {external}"
        );
    }
    let (status, info) = Client::new(&server).get("/api/info");
    assert_eq!(status, 200);
    assert_eq!(info["answers_per_question"], 6);
    assert_eq!(info["questions"].as_array().unwrap().len(), 82);
    assert_eq!(
        info["rules"],
        json!({"min_score": 1, "max_score": 5, "max_tied_models": 2, "max_ties": 10})
    );
    assert_eq!(info["forced_pairs"], 1);
    refused(Client::new(&server).get("/api/nothing"), 404, "not_found");
}

#[test]
fn login_creates_once_and_checks_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&real_config(&dir.path().join("r.sqlite")));
    let c = Client::new(&server);
    let first = c.login("  Ann  ");
    assert_eq!(first["name"], "Ann");
    assert_eq!(first["created"], true);
    assert_eq!(first["progress"]["next_unrated"], 1);
    assert_eq!(first["progress"]["ties_used"], 0);
    assert_eq!(c.login("Ann")["created"], false);
    refused(
        c.post("/api/login", &json!({"name": "   "})),
        400,
        "invalid_name",
    );
    refused(
        c.post("/api/login", &json!({"name": "x".repeat(65)})),
        400,
        "invalid_name",
    );
    refused(
        c.post("/api/login", &json!({"name": "a\u{7}b"})),
        400,
        "invalid_name",
    );
    refused(
        c.post("/api/login", &json!({"nom": "Ann"})),
        400,
        "bad_request",
    );
}

#[test]
fn answers_are_anonymised_and_shuffled_stably_per_annotator() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&real_config(&dir.path().join("r.sqlite")));
    let c = Client::new(&server);
    c.login("ann");
    c.login("bob");
    let set = AnswerSet::load(&answer_files(), None, None).unwrap();
    let mut differs = 0;
    for id in 1..=82 {
        let a = c.question("ann", id);
        assert_eq!(a, c.question("ann", id), "a reload shows the same order");
        let text = a.to_string();
        for model in &set.models {
            assert!(
                !text.contains(model.as_str()),
                "question {id} shows model id {model}"
            );
        }
        let answers = a["answers"].as_array().unwrap();
        assert_eq!(answers.len(), 6);
        for (i, ans) in answers.iter().enumerate() {
            assert_eq!(
                ans.as_object().unwrap().keys().collect::<Vec<_>>(),
                ["label", "text"]
            );
            assert_eq!(ans["label"], LABELS[i]);
        }
        let mut shown: Vec<&str> = answers
            .iter()
            .map(|x| x["text"].as_str().unwrap())
            .collect();
        let mut want: Vec<&str> = set
            .question(id)
            .unwrap()
            .answers
            .iter()
            .map(String::as_str)
            .collect();
        shown.sort();
        want.sort();
        assert_eq!(shown, want, "question {id} shows every model's answer once");
        if a["answers"] != c.question("bob", id)["answers"] {
            differs += 1;
        }
    }
    assert!(
        differs > 60,
        "orders differ between annotators ({differs} of 82 questions)"
    );
    let q = c.question("ann", 1);
    assert_eq!(
        q["question"],
        "What is funny about this image? Describe it panel by panel."
    );
    assert_eq!(
        (q["position"].clone(), q["prev"].clone(), q["next"].clone()),
        (json!(1), Value::Null, json!(2))
    );
    assert_eq!(q["scores"], Value::Null);
    assert_eq!(q["earlier"], json!([]));
    // Question 5 is the second turn of a conversation about image 4.
    let q5 = c.question("ann", 5);
    assert_eq!(q5["question"], "What is funny about it?");
    assert_eq!(
        q5["earlier"],
        json!(["Is there text in the image? If so, can you read it and explain it to me?"])
    );
}

#[test]
fn scores_are_stored_against_the_models_behind_the_labels() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let server = start(&real_config(&db));
    let c = Client::new(&server);
    c.login("ann");
    let set = AnswerSet::load(&answer_files(), None, None).unwrap();
    // Questions whose 6 answers are all different, so the text tells the model.
    for id in [1i64, 2, 44] {
        let q = c.question("ann", id);
        let by_text: HashMap<&str, &str> = set
            .models
            .iter()
            .map(String::as_str)
            .zip(&set.question(id).unwrap().answers)
            .map(|(m, t)| (t.as_str(), m))
            .collect();
        let scores = [5u8, 4, 3, 2, 1, 1];
        let (status, body) = c.rate("ann", id, &scores);
        assert_eq!(status, 200, "{body}");
        let want: BTreeMap<String, u8> = q["answers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(scores)
            .map(|(a, s)| (by_text[a["text"].as_str().unwrap()].to_string(), s))
            .collect();
        assert_eq!(stored(&db, "ann", id), want);
        let again = c.question("ann", id);
        let shown: Vec<u64> = LABELS
            .iter()
            .map(|l| again["scores"][l].as_u64().unwrap())
            .collect();
        assert_eq!(
            shown,
            scores.map(u64::from),
            "the page gets its scores back by label"
        );
    }
}

#[test]
fn rule_breaking_submissions_get_4xx_json_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let server = start(&real_config(&db));
    let c = Client::new(&server);
    c.login("ann");
    assert_eq!(c.rate("ann", 3, &[1, 2, 3, 4, 5, 5]).0, 200);
    let before = row_count(&db);
    let put = |id: &str, body: Value| c.put(&format!("/api/ratings/{id}"), &body);
    let scores = |v: Value| json!({"annotator": "ann", "scores": v});
    for bad in [
        json!(0),
        json!(6),
        json!(2.5),
        json!("4"),
        json!(null),
        json!(-3),
    ] {
        let msg = refused(
            put(
                "1",
                scores(json!({"A": 1, "B": 2, "C": bad.clone(), "D": 3, "E": 4, "F": 5})),
            ),
            422,
            "score_out_of_range",
        );
        assert!(msg.contains("answer C"), "{msg}");
    }
    let msg = refused(
        put("1", scores(json!({"A": 1, "B": 2, "C": 3, "E": 4}))),
        422,
        "missing_score",
    );
    assert!(msg.contains("answers D and F"), "{msg}");
    refused(put("1", scores(json!({}))), 422, "missing_score");
    let msg = refused(
        put(
            "1",
            scores(json!({"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 5, "G": 1})),
        ),
        422,
        "unknown_answer",
    );
    assert!(msg.contains("`G`"), "{msg}");
    let msg = refused(c.rate("ann", 1, &[2, 2, 2, 4, 5, 1]), 422, "shared_score");
    assert!(msg.contains("answers A, B and C all have score 2"), "{msg}");
    refused(c.rate("ann", 1, &[5, 5, 5, 5, 5, 5]), 422, "shared_score");
    let msg = refused(put("999", scores(json!({"A": 1}))), 404, "unknown_question");
    assert!(msg.contains("999"), "{msg}");
    refused(put("x1", scores(json!({"A": 1}))), 400, "bad_question_id");
    let msg = refused(
        c.rate("zed", 1, &[1, 2, 3, 4, 5, 5]),
        404,
        "unknown_annotator",
    );
    assert!(msg.contains("zed"), "{msg}");
    refused(
        c.put_raw("/api/ratings/1", "{\"annotator\": \"ann\", \"scores\": "),
        400,
        "bad_request",
    );
    refused(
        c.put_raw(
            "/api/ratings/1",
            "{\"annotator\": \"ann\", \"scores\": [1, 2]}",
        ),
        400,
        "bad_request",
    );
    // Changing a stored question to something that breaks a rule leaves the old scores.
    let old = stored(&db, "ann", 3);
    refused(c.rate("ann", 3, &[1, 1, 1, 4, 5, 5]), 422, "shared_score");
    assert_eq!(stored(&db, "ann", 3), old);
    assert_eq!(row_count(&db), before, "no refused request stored anything");
    // Reads are checked too.
    refused(
        c.get("/api/questions/999?annotator=ann"),
        404,
        "unknown_question",
    );
    refused(
        c.get("/api/questions/1?annotator=zed"),
        404,
        "unknown_annotator",
    );
    refused(c.get("/api/questions/1"), 400, "missing_annotator");
}

#[test]
fn the_tie_budget_holds_over_the_whole_set_and_on_changes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let server = start(&real_config(&db));
    let c = Client::new(&server);
    c.login("ann");
    // 6 answers on 5 levels must share one pair: that pair is free, each further pair is a tie.
    let (status, body) = c.rate("ann", 1, &[1, 2, 3, 4, 5, 5]);
    assert_eq!(
        (
            status,
            body["ties"].clone(),
            body["progress"]["ties_used"].clone()
        ),
        (200, json!(0), json!(0))
    );
    for id in 2..=6 {
        let (status, body) = c.rate("ann", id, &[1, 1, 2, 2, 3, 3]);
        assert_eq!((status, body["ties"].clone()), (200, json!(2)), "{body}");
    }
    assert_eq!(c.login("ann")["progress"]["ties_used"], 10);
    let msg = refused(c.rate("ann", 7, &[1, 1, 2, 2, 3, 4]), 422, "tie_budget");
    assert!(
        msg.contains("used 10") && msg.contains("at most 10 ties"),
        "{msg}"
    );
    assert!(stored(&db, "ann", 7).is_empty());
    assert_eq!(c.rate("ann", 7, &[5, 4, 3, 2, 1, 1]).0, 200);
    // A change is checked against the other questions: same ties again is fine...
    assert_eq!(c.rate("ann", 2, &[3, 3, 2, 2, 1, 1]).0, 200);
    // ...one more tie on question 1 is not, and leaves question 1 as it was...
    refused(c.rate("ann", 1, &[1, 1, 2, 2, 3, 4]), 422, "tie_budget");
    assert_eq!(
        stored(&db, "ann", 1)
            .values()
            .copied()
            .collect::<std::collections::BTreeSet<u8>>()
            .len(),
        5
    );
    // ...freeing ties elsewhere makes room.
    let (status, body) = c.rate("ann", 2, &[1, 2, 3, 4, 5, 5]);
    assert_eq!(
        (status, body["progress"]["ties_used"].clone()),
        (200, json!(8))
    );
    let (status, body) = c.rate("ann", 1, &[1, 1, 2, 2, 3, 3]);
    assert_eq!(
        (status, body["progress"]["ties_used"].clone()),
        (200, json!(10))
    );
    // Budgets are per annotator.
    c.login("bob");
    assert_eq!(c.rate("bob", 1, &[1, 1, 2, 2, 3, 3]).0, 200);
}

#[test]
fn annotators_resume_at_their_first_unrated_question_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let server = start(&real_config(&db));
    let c = Client::new(&server);
    c.login("ann");
    for id in [1, 2, 5] {
        assert_eq!(c.rate("ann", id, &[1, 2, 3, 4, 5, 5]).0, 200);
    }
    let progress = c.login("ann")["progress"].clone();
    assert_eq!(progress["next_unrated"], 3);
    assert_eq!(progress["rated"], json!([1, 2, 5]));
    let order_before = c.question("ann", 2)["answers"].clone();
    drop(c);
    server.stop().unwrap();

    let server = start(&real_config(&db));
    let c = Client::new(&server);
    let again = c.login("ann");
    assert_eq!(again["created"], false);
    assert_eq!(again["progress"], progress);
    let q = c.question("ann", 2);
    assert_eq!(q["answers"], order_before, "the shuffle survives a restart");
    assert_eq!(
        q["scores"],
        json!({"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 5})
    );
    for id in [3, 4] {
        assert_eq!(c.rate("ann", id, &[1, 2, 3, 4, 5, 5]).0, 200);
    }
    assert_eq!(c.login("ann")["progress"]["next_unrated"], 6);
    for id in 6..=82 {
        assert_eq!(c.rate("ann", id, &[5, 4, 3, 2, 1, 1]).0, 200);
    }
    let done = c.login("ann")["progress"].clone();
    assert_eq!(
        (
            done["next_unrated"].clone(),
            done["rated"].as_array().unwrap().len()
        ),
        (Value::Null, 82)
    );
}

#[test]
fn images_are_served_by_question_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&real_config(&dir.path().join("r.sqlite")));
    let c = Client::new(&server);
    c.login("ann");
    assert_eq!(c.question("ann", 5)["image"], "/images/5");
    let (status, ctype, bytes) = c.get_bytes("/images/5");
    assert_eq!((status, ctype.as_str()), (200, "image/jpeg"));
    assert_eq!(
        bytes,
        std::fs::read(owleval().join("cases/4.jpg")).unwrap(),
        "question 5 is about image 4"
    );
    refused(c.get("/images/1000"), 404, "unknown_question");

    // Without --images the page is told there is no image.
    let config = ServeConfig {
        images: None,
        ..real_config(&dir.path().join("other.sqlite"))
    };
    let server = start(&config);
    let c = Client::new(&server);
    c.login("ann");
    assert_eq!(c.question("ann", 5)["image"], Value::Null);
    refused(c.get("/images/5"), 404, "no_image");
}

#[test]
fn a_database_made_for_other_answers_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    drop(RatingApp::open(&real_config(&db)).unwrap());
    let fewer = ServeConfig {
        answers: answer_files()[..5].to_vec(),
        ..real_config(&db)
    };
    let msg = RatingApp::open(&fewer).err().unwrap().to_string();
    assert!(
        msg.contains("r.sqlite") && msg.contains("models") && msg.contains("new --db"),
        "{msg}"
    );
    // Too many models for 5 levels with at most 2 per level.
    let names = [
        "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11",
    ];
    let config = ServeConfig {
        answers: small_answers(dir.path(), &names, 2),
        questions: None,
        images: None,
        db: dir.path().join("eleven.sqlite"),
    };
    let msg = RatingApp::open(&config).err().unwrap().to_string();
    assert!(
        msg.contains("11 models") && msg.contains("at most 10"),
        "{msg}"
    );
    let msg = RatingApp::open(&ServeConfig {
        db: dir.path().to_path_buf(),
        ..real_config(&db)
    })
    .err()
    .unwrap()
    .to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}
