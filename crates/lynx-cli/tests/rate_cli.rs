//! `lynx rate serve` and `lynx rate report` as a user runs them (paper Section 3.1, Figure 4).

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::owleval;
use lynx_serve::rating::db::Db;
use lynx_serve::rating::Rules;

fn lynx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lynx"))
}

fn answer_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(owleval().join("answer"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn serve_refuses_inconsistent_answer_files_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("dup.jsonl");
    let line = std::fs::read_to_string(&answer_files()[0])
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&bad, format!("{line}\n{line}\n")).unwrap();
    let out = lynx()
        .args(["rate", "serve", "--db"])
        .arg(dir.path().join("r.sqlite"))
        .arg("--answers")
        .arg(&bad)
        .args(&answer_files()[1..])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:", bad.display())) && err.contains("duplicate answer"),
        "{err}"
    );
}

#[test]
fn serve_listens_on_localhost_and_serves_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Kill(
        lynx()
            .args(["rate", "serve", "--port", "0", "--db"])
            .arg(dir.path().join("r.sqlite"))
            .arg("--images")
            .arg(owleval().join("cases"))
            .arg("--answers")
            .args(answer_files())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("lynx rate serve ended before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("open ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let page = ureq::get(&url)
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("OwlEval human evaluation"));
    let info = ureq::get(format!("{url}api/info"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(info.contains("\"answers_per_question\":6"), "{info}");
}

/// Ends the server this test started, also when an assertion fails.
struct Kill(std::process::Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn report_prints_the_table_and_writes_markdown_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ratings.sqlite");
    let models = [
        "m-one".to_string(),
        "m-two".to_string(),
        "m-three".to_string(),
    ];
    let db = Db::open(&path, &models, &[1, 2], &Rules::PAPER).unwrap();
    let rules = Rules::PAPER;
    for (name, scores) in [("ann", [5u8, 3, 1]), ("bob", [4, 2, 1])] {
        db.login(name).unwrap();
        for q in 1..=2 {
            let rows: Vec<(String, u8, usize)> = models
                .iter()
                .zip(scores)
                .enumerate()
                .map(|(i, (m, s))| (m.clone(), s, i))
                .collect();
            db.store(name, q, &rows, &rules)
                .map_err(|e| format!("{e:?}"))
                .unwrap();
        }
    }
    drop(db);
    let out_dir = dir.path().join("out");
    let out = lynx()
        .args(["rate", "report", "--db"])
        .arg(&path)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let first_rows: Vec<&str> = stdout.lines().filter(|l| l.starts_with("m-")).collect();
    assert_eq!(first_rows.len(), 3, "{stdout}");
    assert!(
        first_rows[0].starts_with("m-one") && first_rows[0].contains("4.500"),
        "{stdout}"
    );
    assert!(
        first_rows[1].starts_with("m-two") && first_rows[1].contains("2.500"),
        "{stdout}"
    );
    assert!(
        first_rows[2].starts_with("m-three") && first_rows[2].contains("1.000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Krippendorff's alpha, interval metric"),
        "{stdout}"
    );
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        md.contains("| m-one | 4.500 | 2 | 4 | 5.000 | 4.000 |"),
        "{md}"
    );
    let png = image::open(out_dir.join("scores.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1000, 560));
    let svg = std::fs::read_to_string(out_dir.join("scores.svg")).unwrap();
    assert!(
        svg.contains("m-three") && svg.contains("4.50"),
        "svg lacks labels"
    );
    // Without --out the report goes beside the database.
    let out = lynx()
        .args(["rate", "report", "--db"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(dir.path().join("ratings-report/scores.png").is_file());
    // A missing database is a clear error.
    let out = lynx()
        .args(["rate", "report", "--db"])
        .arg(dir.path().join("nope.sqlite"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.sqlite: no such ratings database"));
}
