//! Running a model over MME's released folder layout and writing MME's results files (the
//! format `mme.rs` scores). Each subtask folder holds images and, per image, a question file
//! of two `question<TAB>answer` lines; either side by side (`existence/x.jpg` + `x.txt`) or
//! split (`artwork/images/x.jpg` + `artwork/questions_answers_YN/x.txt`). Runs are resumable:
//! questions already in a results file are skipped.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use super::mme::parse_results;
use crate::{Error, Result};

const IMAGE_EXTS: [&str; 5] = ["jpg", "jpeg", "png", "bmp", "webp"];

/// One question of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmeItem {
    pub image: PathBuf,
    /// The image's file name, as written in the results file.
    pub image_name: String,
    pub question: String,
    /// "Yes" or "No", as in the question file.
    pub answer: String,
}

/// One subtask folder's questions, images in name order, questions in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmeSubtask {
    pub name: String,
    pub items: Vec<MmeItem>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        out.push(e.map_err(|e| Error::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Reads one question file: exactly two non-blank `question<TAB>yes|no` lines.
fn read_questions(path: &Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file = path.display().to_string();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((q, a)) = line.rsplit_once('\t') else {
            return Err(Error::parse(
                &file,
                Some(i + 1),
                "expected question<TAB>answer",
            ));
        };
        let a = a.trim();
        if !a.eq_ignore_ascii_case("yes") && !a.eq_ignore_ascii_case("no") {
            return Err(Error::parse(
                &file,
                Some(i + 1),
                format!("answer must be yes or no, found {a:?}"),
            ));
        }
        out.push((q.trim().to_string(), a.to_string()));
    }
    if out.len() != 2 {
        return Err(Error::parse(
            &file,
            None,
            format!("expected two questions per image, found {}", out.len()),
        ));
    }
    Ok(out)
}

/// Reads one subtask folder in either layout; `None` when it holds no question files.
fn read_subtask(dir: &Path) -> Result<Option<MmeSubtask>> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let split_q = dir.join("questions_answers_YN");
    let (qdir, idir) = if split_q.is_dir() {
        (split_q, dir.join("images"))
    } else {
        (dir.to_path_buf(), dir.to_path_buf())
    };
    let mut items = Vec::new();
    for qfile in sorted_entries(&qdir)? {
        if !qfile.is_file() || !has_ext(&qfile, &["txt"]) {
            continue;
        }
        let stem = qfile
            .file_stem()
            .map(|s| s.to_os_string())
            .unwrap_or_default();
        let image = IMAGE_EXTS
            .iter()
            .flat_map(|e| [e.to_string(), e.to_uppercase()])
            .map(|e| idir.join(format!("{}.{e}", stem.to_string_lossy())))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::media(
                    qfile.display().to_string(),
                    format!(
                        "no image {}.jpg/.png in {}",
                        stem.to_string_lossy(),
                        idir.display()
                    ),
                )
            })?;
        let image_name = image
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        for (question, answer) in read_questions(&qfile)? {
            items.push(MmeItem {
                image: image.clone(),
                image_name: image_name.clone(),
                question,
                answer,
            });
        }
    }
    Ok((!items.is_empty()).then_some(MmeSubtask { name, items }))
}

/// Finds every subtask folder under `root` (MME_Benchmark_release_version), in name order.
/// Folders without question files are left out.
pub fn discover(root: &Path) -> Result<Vec<MmeSubtask>> {
    let mut out = Vec::new();
    for dir in sorted_entries(root)? {
        if dir.is_dir() {
            if let Some(s) = read_subtask(&dir)? {
                out.push(s);
            }
        }
    }
    if out.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no MME subtask folders (with question .txt files) found",
            root.display()
        )));
    }
    Ok(out)
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MmeRunSummary {
    pub subtasks: usize,
    /// Questions answered in this run.
    pub answered: usize,
    /// Questions already in the results files.
    pub skipped: usize,
}

/// A prediction on one results line: tabs and line breaks would break the format.
fn one_line(text: &str) -> String {
    text.split(['\t', '\n', '\r'])
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_string()
}

/// Answers every question under `root` with `answer(image, question)` and appends
/// `image<TAB>question<TAB>ground_truth<TAB>prediction` lines to `results_dir/<subtask>.txt`,
/// flushing each line. Questions already present are skipped; a last line cut short by a crash
/// is removed first.
pub fn run_mme(
    root: &Path,
    results_dir: &Path,
    answer: &mut dyn FnMut(&Path, &str) -> Result<String>,
    progress: bool,
) -> Result<MmeRunSummary> {
    let subtasks = discover(root)?;
    std::fs::create_dir_all(results_dir).map_err(|e| Error::io(results_dir, e))?;
    let mut summary = MmeRunSummary {
        subtasks: subtasks.len(),
        ..Default::default()
    };
    let mut todo = Vec::new();
    for s in &subtasks {
        let path = results_dir.join(format!("{}.txt", s.name));
        let done = done_questions(&path)?;
        let pending: Vec<&MmeItem> = s
            .items
            .iter()
            .filter(|it| !done.contains(&(it.image_name.clone(), it.question.clone())))
            .collect();
        summary.skipped += s.items.len() - pending.len();
        todo.push((path, pending));
    }
    let total: usize = todo.iter().map(|(_, p)| p.len()).sum();
    let bar = if progress {
        let b = ProgressBar::new(total as u64);
        if let Ok(style) =
            ProgressStyle::with_template("mme {bar:40} {pos}/{len} [{elapsed} < {eta}] {msg}")
        {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    for (path, pending) in todo {
        if pending.is_empty() {
            continue;
        }
        bar.set_message(
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default(),
        );
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        for it in pending {
            let pred = answer(&it.image, &it.question)?;
            let line = format!(
                "{}\t{}\t{}\t{}\n",
                it.image_name,
                it.question,
                it.answer,
                one_line(&pred)
            );
            f.write_all(line.as_bytes())
                .map_err(|e| Error::io(&path, e))?;
            f.flush().map_err(|e| Error::io(&path, e))?;
            summary.answered += 1;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// (image, question) pairs already in a results file; trims a partial last line.
fn done_questions(path: &Path) -> Result<HashSet<(String, String)>> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        let keep = text.rfind('\n').map_or(0, |i| i + 1);
        text.truncate(keep);
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        f.set_len(keep as u64).map_err(|e| Error::io(path, e))?;
    }
    let lines = parse_results(&path.display().to_string(), &text)?;
    Ok(lines.into_iter().map(|l| (l.image, l.question)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::mme::score_results_dir;

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// existence: side by side, 2 images; artwork: split layout, 1 image (PNG).
    fn layout(root: &Path) {
        write(&root.join("existence/b.jpg"), "img");
        write(
            &root.join("existence/b.txt"),
            "Is there a cat?\tYes\nIs there a dog?\tNo\n",
        );
        write(&root.join("existence/a.jpg"), "img");
        write(
            &root.join("existence/a.txt"),
            "Is there a car?\tNo\r\nIs there a bus?\tYes\r\n",
        );
        write(&root.join("artwork/images/x.png"), "img");
        write(
            &root.join("artwork/questions_answers_YN/x.txt"),
            "Is this by Monet?\tYes\nIs this by Dali?\tNo\n",
        );
        std::fs::create_dir_all(root.join("eval_tool")).unwrap();
    }

    #[test]
    fn walks_both_layouts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        layout(dir.path());
        let subs = discover(dir.path()).unwrap();
        let names: Vec<&str> = subs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["artwork", "existence"]);
        let ex: Vec<(&str, &str, &str)> = subs[1]
            .items
            .iter()
            .map(|i| {
                (
                    i.image_name.as_str(),
                    i.question.as_str(),
                    i.answer.as_str(),
                )
            })
            .collect();
        assert_eq!(
            ex,
            [
                ("a.jpg", "Is there a car?", "No"),
                ("a.jpg", "Is there a bus?", "Yes"),
                ("b.jpg", "Is there a cat?", "Yes"),
                ("b.jpg", "Is there a dog?", "No"),
            ]
        );
        assert_eq!(
            subs[0].items[0].image,
            dir.path().join("artwork/images/x.png")
        );
    }

    #[test]
    fn bad_question_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("count/a.jpg"), "img");
        write(
            &dir.path().join("count/a.txt"),
            "How many?\tYes\nNo tab here\n",
        );
        let e = discover(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a.txt:2: expected question<TAB>answer"), "{e}");
        write(&dir.path().join("count/a.txt"), "Two?\tYes\n");
        let e = discover(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("expected two questions per image, found 1"),
            "{e}"
        );
        write(&dir.path().join("count/a.txt"), "Two?\tYes\nThree?\tNo\n");
        std::fs::remove_file(dir.path().join("count/a.jpg")).unwrap();
        let e = discover(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no image a.jpg/.png"), "{e}");
    }

    #[test]
    fn writes_results_resumes_and_scores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("MME");
        let out = dir.path().join("results");
        layout(&root);
        // says yes to every question about a cat, car, bus or Monet, with a tab and a newline to clean
        let mut asked = Vec::new();
        let mut model = |img: &Path, q: &str| -> Result<String> {
            asked.push((
                img.file_name().unwrap().to_string_lossy().to_string(),
                q.to_string(),
            ));
            Ok(
                if ["cat", "car", "bus", "Monet"].iter().any(|w| q.contains(w)) {
                    "Yes,\tit is.\n".to_string()
                } else {
                    "No".to_string()
                },
            )
        };
        let s = run_mme(&root, &out, &mut model, false).unwrap();
        assert_eq!(
            s,
            MmeRunSummary {
                subtasks: 2,
                answered: 6,
                skipped: 0
            }
        );
        assert_eq!(asked.len(), 6);
        let ex = std::fs::read_to_string(out.join("existence.txt")).unwrap();
        assert_eq!(
            ex,
            "a.jpg\tIs there a car?\tNo\tYes, it is.\n\
             a.jpg\tIs there a bus?\tYes\tYes, it is.\n\
             b.jpg\tIs there a cat?\tYes\tYes, it is.\n\
             b.jpg\tIs there a dog?\tNo\tNo\n"
        );

        // everything present: nothing asked
        let mut never = |_: &Path, _: &str| -> Result<String> { panic!("asked again") };
        let s = run_mme(&root, &out, &mut never, false).unwrap();
        assert_eq!((s.answered, s.skipped), (0, 6));

        // a crash mid-line: the partial line is dropped and that question asked again
        let cut = ex.len() - 5;
        std::fs::write(out.join("existence.txt"), &ex[..cut]).unwrap();
        let mut again = |_: &Path, _: &str| -> Result<String> { Ok("No".into()) };
        let s = run_mme(&root, &out, &mut again, false).unwrap();
        assert_eq!((s.answered, s.skipped), (1, 5));
        assert_eq!(
            std::fs::read_to_string(out.join("existence.txt")).unwrap(),
            ex
        );

        // existence: a 1 of 2 right, b 2 of 2 -> acc 75, acc+ 50; artwork: 2 of 2 -> 100, 100
        let r = score_results_dir(&out).unwrap();
        let e = r.subtasks["existence"];
        assert_eq!((e.acc, e.acc_plus, e.score), (75.0, 50.0, 125.0));
        assert_eq!(r.subtasks["artwork"].score, 200.0);
        assert_eq!(r.perception, 325.0);
        assert_eq!(r.cognition, 0.0);
        assert_eq!(r.missing_subtasks.len(), 12);

        // an error from the model stops the run, keeping what was written
        std::fs::remove_file(out.join("artwork.txt")).unwrap();
        let mut failing =
            |_: &Path, _: &str| -> Result<String> { Err(crate::Error::Invalid("boom".into())) };
        let e = run_mme(&root, &out, &mut failing, false)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "boom");
        assert_eq!(
            std::fs::read_to_string(out.join("existence.txt")).unwrap(),
            ex
        );
    }
}
