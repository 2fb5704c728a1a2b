//! Several annotators at once: concurrent requests against one SQLite database in WAL mode, and
//! the per-annotator tie budget (paper Section 3.1) under racing submissions.

mod common;

use std::sync::{Arc, Barrier};

use common::{real_config, refused, start, Client};
use serde_json::json;

#[test]
fn two_annotators_rate_the_whole_set_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.sqlite");
    let server = start(&real_config(&db));
    let barrier = Arc::new(Barrier::new(2));
    let workers: Vec<_> = ["ann", "bob"]
        .into_iter()
        .enumerate()
        .map(|(k, name)| {
            let (c, barrier) = (Client::new(&server), barrier.clone());
            std::thread::spawn(move || {
                c.login(name);
                barrier.wait();
                for id in 1..=82i64 {
                    // ann spends 1 tie on each of her first 10 questions, bob none.
                    let scores: [u8; 6] = if k == 0 && id <= 10 {
                        [1, 1, 2, 2, 3, 4]
                    } else {
                        [5, 4, 3, 2, 1, 1]
                    };
                    let (status, body) = c.rate(name, id, &scores);
                    assert_eq!(status, 200, "{name} q{id}: {body}");
                    // Reads interleave with the other annotator's writes.
                    assert_eq!(c.question(name, id)["scores"]["A"], json!(scores[0]));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let c = Client::new(&server);
    let ann = c.login("ann")["progress"].clone();
    let bob = c.login("bob")["progress"].clone();
    assert_eq!(
        (
            ann["rated"].as_array().unwrap().len(),
            ann["ties_used"].clone()
        ),
        (82, json!(10))
    );
    assert_eq!(
        (
            bob["rated"].as_array().unwrap().len(),
            bob["ties_used"].clone()
        ),
        (82, json!(0))
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM ratings", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2 * 82 * 6);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

const RACERS: usize = 8;

#[test]
fn racing_submissions_cannot_overspend_the_tie_budget() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&real_config(&dir.path().join("r.sqlite")));
    for round in 0..4 {
        let name = format!("racer{round}");
        let c = Client::new(&server);
        c.login(&name);
        // 9 of 10 ties used: 4 questions with 2 ties, 1 with 1.
        for id in 1..=4 {
            assert_eq!(c.rate(&name, id, &[1, 1, 2, 2, 3, 3]).0, 200);
        }
        assert_eq!(c.rate(&name, 5, &[1, 1, 2, 2, 3, 4]).0, 200);
        // Eight requests, each spending the last tie on a different question, at the same moment.
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (6..6 + RACERS as i64)
            .map(|id| {
                let (c, barrier, name) = (c.clone(), barrier.clone(), name.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    c.rate(&name, id, &[1, 1, 2, 2, 3, 4])
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let ok = results.iter().filter(|r| r.0 == 200).count();
        assert_eq!(
            ok, 1,
            "round {round}: exactly one may spend the last tie: {results:?}"
        );
        for loser in results.into_iter().filter(|r| r.0 != 200) {
            refused(loser, 422, "tie_budget");
        }
        let progress = c.login(&name)["progress"].clone();
        assert_eq!(progress["ties_used"], 10);
        assert_eq!(progress["rated"].as_array().unwrap().len(), 6);
    }
}

#[test]
fn racing_database_writes_cannot_overspend_the_tie_budget() {
    use lynx_serve::rating::db::{Db, Refused};
    use lynx_serve::rating::Rules;
    // Straight at the database, without HTTP in between, so the writes overlap tightly.
    let dir = tempfile::tempdir().unwrap();
    let models: Vec<String> = (0..6).map(|m| format!("m{m}")).collect();
    let ids: Vec<i64> = (1..=40).collect();
    let db =
        Arc::new(Db::open(&dir.path().join("r.sqlite"), &models, &ids, &Rules::PAPER).unwrap());
    let rows = |scores: [u8; 6]| -> Vec<(String, u8, usize)> {
        models
            .iter()
            .zip(scores)
            .enumerate()
            .map(|(i, (m, s))| (m.clone(), s, i))
            .collect()
    };
    for round in 0..4 {
        let name = format!("racer{round}");
        db.login(&name).unwrap();
        for id in 1..=4 {
            assert!(db
                .store(&name, id, &rows([1, 1, 2, 2, 3, 3]), &Rules::PAPER)
                .is_ok());
        }
        assert!(db
            .store(&name, 5, &rows([1, 1, 2, 2, 3, 4]), &Rules::PAPER)
            .is_ok());
        let barrier = Arc::new(Barrier::new(RACERS));
        let racers: Vec<_> = (6..6 + RACERS as i64)
            .map(|id| {
                let (db, barrier, name, rows) = (
                    db.clone(),
                    barrier.clone(),
                    name.clone(),
                    rows([1, 1, 2, 2, 3, 4]),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    db.store(&name, id, &rows, &Rules::PAPER)
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        for r in results.into_iter().filter_map(Result::err) {
            assert!(
                matches!(&r, Refused::Rule(v) if v.code == "tie_budget"),
                "round {round}: {r:?}"
            );
        }
        let id = db.annotator(&name).unwrap().unwrap();
        assert_eq!(db.ratings(id).unwrap().len(), 6);
    }
}
