//! `lynx rate report` numbers on crafted databases: Krippendorff's textbook reliability data laid
//! out as 2 questions x 6 models, and a database filled through the HTTP API.

mod common;

use common::{refused, small_answers, start, Client};
use lynx_serve::rating::db::Db;
use lynx_serve::rating::{Report, Rules, ServeConfig};
use rusqlite::params;

/// Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": observers a-d, 12 units.
const TEXTBOOK: [(&str, [u8; 12]); 4] = [
    ("a", [1, 2, 3, 3, 2, 1, 4, 1, 2, 0, 0, 0]),
    ("b", [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, 0, 3]),
    ("c", [0, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, 0]),
    ("d", [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, 0]),
];

fn close(got: Option<f64>, want: f64) {
    let got = got.unwrap();
    assert!((got - want).abs() < 1e-9, "got {got}, want {want}");
}

#[test]
fn report_of_the_textbook_reliability_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crafted.sqlite");
    let models: Vec<String> = (0..6).map(|m| format!("m{m}")).collect();
    drop(Db::open(&path, &models, &[1, 2], &Rules::PAPER).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    for (name, values) in TEXTBOOK {
        conn.execute("INSERT INTO annotators (name) VALUES (?1)", [name])
            .unwrap();
        let id = conn.last_insert_rowid();
        for (unit, &score) in values.iter().enumerate().filter(|(_, &s)| s > 0) {
            conn.execute(
                "INSERT INTO ratings (annotator_id, question_id, model_id, score, position) VALUES (?1, ?2, ?3, ?4, 0)",
                params![id, unit as i64 / 6 + 1, models[unit % 6], score],
            )
            .unwrap();
        }
    }
    drop(conn);

    let report = Report::load(&path).unwrap();
    assert_eq!(report.total_questions, 2);
    // Per question the annotators' mean, then the mean over questions; ties broken by name.
    let means: Vec<(&str, f64)> = report
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.mean))
        .collect();
    assert_eq!(
        means,
        [
            ("m3", 4.0),
            ("m5", 2.75),
            ("m0", 2.5),
            ("m2", 2.5),
            ("m1", 1.75),
            ("m4", 1.5)
        ]
    );
    let m5 = &report.models[1];
    assert_eq!((m5.questions, m5.ratings), (2, 5));
    assert_eq!(
        m5.per_annotator,
        [Some(1.0), Some(2.5), Some(3.0), Some(4.0)]
    );
    let annotators: Vec<(&str, usize, usize)> = report
        .annotators
        .iter()
        .map(|a| (a.name.as_str(), a.questions, a.ties))
        .collect();
    assert_eq!(
        annotators,
        [("a", 2, 2), ("b", 2, 3), ("c", 2, 7), ("d", 2, 2)]
    );

    // Reference values: the `krippendorff` and scipy Python packages on the same data.
    let ag = report.agreement.clone().unwrap();
    assert_eq!(ag.units, 11);
    close(ag.alpha_interval, 0.849_107_142_857_142_8);
    close(ag.alpha_ordinal, 0.815_387_503_754_881_4);
    close(ag.spearman_mean, 0.792_629_894_052_927_5);
    let pairs: Vec<(&str, &str, usize)> = ag
        .pairs
        .iter()
        .map(|p| (p.a.as_str(), p.b.as_str(), p.units))
        .collect();
    assert_eq!(
        pairs,
        [
            ("a", "b", 9),
            ("a", "c", 8),
            ("a", "d", 9),
            ("b", "c", 9),
            ("b", "d", 10),
            ("c", "d", 10)
        ]
    );
    close(ag.pairs[0].rho, 0.931_594_261_397_024_7);
    close(ag.pairs[2].rho, 0.571_451_349_758_416_4);

    let text = report.to_text();
    assert!(
        text.contains("m3")
            && text.contains("4.000")
            && text.contains("0.849")
            && text.contains("0.815"),
        "{text}"
    );
    let md = report.to_markdown();
    assert!(
        md.contains("| m3 | 4.000 | 2 | 7 | 3.000 | 4.000 | 4.000 | 4.000 |"),
        "{md}"
    );
    assert!(
        md.contains("Krippendorff's alpha, ordinal metric: 0.815"),
        "{md}"
    );
    assert!(
        md.contains("Mean pairwise Spearman's rho: 0.793 (6 pairs)"),
        "{md}"
    );
}

/// Submits `by_model` (scores of models x, y, z) on question `id`, whatever labels they have.
fn rate_models(c: &Client, name: &str, id: i64, by_model: [u8; 3]) -> (u16, serde_json::Value) {
    let q = c.question(name, id);
    let scores: Vec<u8> = q["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let model = a["text"].as_str().unwrap().split(' ').next().unwrap();
            by_model[["x", "y", "z"].iter().position(|m| *m == model).unwrap()]
        })
        .collect();
    c.rate(name, id, &scores)
}

#[test]
fn report_of_ratings_made_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("served.sqlite");
    let config = ServeConfig {
        answers: small_answers(dir.path(), &["x", "y", "z"], 4),
        questions: None,
        images: None,
        db: db.clone(),
    };
    let server = start(&config);
    let c = Client::new(&server);
    for (name, by_model) in [("ann", [5u8, 3, 1]), ("bob", [4, 3, 2])] {
        c.login(name);
        for id in 1..=4i64 {
            assert_eq!(rate_models(&c, name, id, by_model).0, 200);
        }
    }
    // 3 answers on 5 levels: every shared score is a tie, as in the paper.
    c.login("cat");
    let msg = refused(c.rate("cat", 1, &[2, 2, 2]), 422, "shared_score");
    assert!(msg.contains("all have score 2"), "{msg}");
    assert_eq!(rate_models(&c, "cat", 1, [2, 2, 3]).1["ties"], 1);
    server.stop().unwrap();

    let report = Report::load(&db).unwrap();
    let means: Vec<(&str, f64)> = report
        .models
        .iter()
        .map(|m| (m.model.as_str(), m.mean))
        .collect();
    // x: question 1 (5+4+2)/3, questions 2-4 (5+4)/2; y: 8/3 then 3; z: 2 then 1.5.
    let want = [
        ("x", (11.0 / 3.0 + 3.0 * 4.5) / 4.0),
        ("y", (8.0 / 3.0 + 9.0) / 4.0),
        ("z", (2.0 + 4.5) / 4.0),
    ];
    for ((m, got), (wm, w)) in means.iter().zip(want) {
        assert_eq!(*m, wm);
        assert!((got - w).abs() < 1e-12, "{m}: {got} vs {w}");
    }
    assert_eq!(report.models[0].ratings, 9);
    let annotators: Vec<(&str, usize, usize)> = report
        .annotators
        .iter()
        .map(|a| (a.name.as_str(), a.questions, a.ties))
        .collect();
    assert_eq!(annotators, [("ann", 4, 0), ("bob", 4, 0), ("cat", 1, 1)]);
    let ag = report.agreement.unwrap();
    assert_eq!(ag.units, 12);
    let pairs: Vec<(&str, &str, usize)> = ag
        .pairs
        .iter()
        .map(|p| (p.a.as_str(), p.b.as_str(), p.units))
        .collect();
    assert_eq!(
        pairs,
        [("ann", "bob", 12), ("ann", "cat", 3), ("bob", "cat", 3)]
    );
    // ann and bob rank the models the same way; cat ranks them the other way round.
    close(ag.pairs[0].rho, 1.0);
    assert!(ag.pairs[1].rho.unwrap() < 0.0);
}

#[test]
fn report_errors_name_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlite");
    let msg = Report::load(&missing).unwrap_err().to_string();
    assert!(
        msg.contains("missing.sqlite") && msg.contains("no such"),
        "{msg}"
    );
    let empty = dir.path().join("empty.sqlite");
    drop(Db::open(&empty, &["a".into(), "b".into()], &[1], &Rules::PAPER).unwrap());
    let msg = Report::load(&empty).unwrap_err().to_string();
    assert!(
        msg.contains("empty.sqlite") && msg.contains("no ratings yet"),
        "{msg}"
    );
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let msg = Report::load(&other).unwrap_err().to_string();
    assert!(
        msg.contains("other.sqlite") && msg.contains("meta"),
        "{msg}"
    );
}
