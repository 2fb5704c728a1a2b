//! Markdown tables of Open-VQA reports in the paper's layouts (Table 1: images, Table 2:
//! videos; one row per model) and the agreement of two judges on the same predictions
//! (share of equal verdicts and Cohen's kappa, cf. the paper's >95 % judge/human consistency).

use std::collections::HashMap;
use std::fmt::Write;

use super::scoring::{OpenVqaReport, Status};

/// Table 1 columns (images), in the paper's order.
pub const IMAGE_CLASSES: [&str; 8] = [
    "OCR",
    "Counting",
    "Reasoning",
    "Place",
    "Color",
    "Spatial",
    "Action",
    "Others",
];
/// Table 2 columns (videos); the release's class names.
pub const VIDEO_CLASSES: [&str; 2] = ["Action(Y/N)", "Others"];

/// How often two judges agree on the items both gave a yes/no verdict for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Agreement {
    /// Items judged (status `judged`) in both reports.
    pub items: usize,
    /// Items with the same verdict.
    pub same: usize,
    /// 100 × same / items (0 when there are no items).
    pub percent: f64,
    /// Cohen's kappa; `None` when undefined (no items, or chance agreement is 1).
    pub kappa: Option<f64>,
}

/// Agreement of the verdicts of `a` and `b`, matched by index.
pub fn agreement(a: &OpenVqaReport, b: &OpenVqaReport) -> Agreement {
    let theirs: HashMap<_, _> = b
        .verdicts
        .iter()
        .filter(|v| v.status == Status::Judged)
        .map(|v| (&v.index, v.correct))
        .collect();
    // counts[x][y]: a said x, b said y (1 = correct)
    let mut counts = [[0usize; 2]; 2];
    for v in a.verdicts.iter().filter(|v| v.status == Status::Judged) {
        if let Some(&w) = theirs.get(&v.index) {
            counts[usize::from(v.correct)][usize::from(w)] += 1;
        }
    }
    let items = counts.iter().flatten().sum::<usize>();
    let same = counts[0][0] + counts[1][1];
    if items == 0 {
        return Agreement {
            items,
            same,
            percent: 0.0,
            kappa: None,
        };
    }
    let n = items as f64;
    let po = same as f64 / n;
    let a_yes = (counts[1][0] + counts[1][1]) as f64 / n;
    let b_yes = (counts[0][1] + counts[1][1]) as f64 / n;
    let pe = a_yes * b_yes + (1.0 - a_yes) * (1.0 - b_yes);
    let kappa = if (1.0 - pe).abs() < 1e-12 {
        None
    } else {
        Some((po - pe) / (1.0 - pe))
    };
    Agreement {
        items,
        same,
        percent: 100.0 * po,
        kappa,
    }
}

#[derive(PartialEq)]
enum Layout {
    Image,
    Video,
    Other(Vec<String>),
}

fn layout_of(r: &OpenVqaReport) -> Layout {
    let has = |set: &[&str]| r.classes.keys().all(|c| set.contains(&c.as_str()));
    if r.classes.contains_key("Action(Y/N)") && has(&VIDEO_CLASSES) {
        Layout::Video
    } else if has(&IMAGE_CLASSES) {
        Layout::Image
    } else {
        Layout::Other(r.classes.keys().cloned().collect())
    }
}

/// "rule" or "llm gpt-4".
pub fn judge_label(r: &OpenVqaReport) -> String {
    match &r.judge_model {
        Some(m) => format!("{} {m}", r.judge),
        None => r.judge.clone(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn list(ix: &[super::open_vqa::SampleIndex]) -> String {
    let shown: Vec<String> = ix.iter().take(20).map(|i| i.to_string()).collect();
    let more = if ix.len() > 20 { ", ..." } else { "" };
    format!("{} ({}{more})", ix.len(), shown.join(", "))
}

/// Markdown for one or several reports: one table per layout (paper Table 1 for image
/// classes, Table 2 for video classes), one row per report, then notes on input problems and,
/// for reports that judged the same predictions with different judges, their agreement.
pub fn markdown(reports: &[OpenVqaReport]) -> String {
    let mut groups: Vec<(Layout, Vec<&OpenVqaReport>)> = Vec::new();
    for r in reports {
        let l = layout_of(r);
        match groups.iter_mut().find(|(g, _)| *g == l) {
            Some((_, rows)) => rows.push(r),
            None => groups.push((l, vec![r])),
        }
    }
    let mut out = String::new();
    for (layout, rows) in &groups {
        let (title, keys, heads): (&str, Vec<String>, Vec<String>) = match layout {
            Layout::Image => (
                "Open-VQA images (paper Table 1)",
                IMAGE_CLASSES.iter().map(|s| s.to_string()).collect(),
                IMAGE_CLASSES.iter().map(|s| s.to_string()).collect(),
            ),
            Layout::Video => (
                "Open-VQA videos (paper Table 2)",
                VIDEO_CLASSES.iter().map(|s| s.to_string()).collect(),
                vec!["Action (Y/N)".into(), "Others".into()],
            ),
            Layout::Other(classes) => ("Open-VQA", classes.clone(), classes.clone()),
        };
        let mixed_judges = rows.iter().any(|r| judge_label(r) != judge_label(rows[0]));
        let _ = writeln!(out, "### {title}\n");
        let head: Vec<String> = heads.iter().map(|h| cell(h)).collect();
        let _ = writeln!(out, "| Model | {} | Overall |", head.join(" | "));
        let _ = writeln!(out, "|---|{}---:|", "---:|".repeat(keys.len()));
        for r in rows {
            let mut name = cell(&r.name);
            if mixed_judges {
                name = format!("{name} ({})", cell(&judge_label(r)));
            }
            let cells: Vec<String> = keys
                .iter()
                .map(|k| match r.classes.get(k) {
                    Some(s) => format!("{}/{}", s.correct, s.total),
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(out, "| {name} | {} | {:.2} |", cells.join(" | "), r.overall);
        }
        out.push('\n');
    }

    let mut notes = Vec::new();
    for r in reports {
        let mut parts = Vec::new();
        for (what, ix) in [
            ("missing", &r.missing),
            ("extra", &r.extra),
            ("duplicate", &r.duplicates),
            ("empty", &r.empty),
        ] {
            if !ix.is_empty() {
                parts.push(format!("{what} {}", list(ix)));
            }
        }
        if r.unparseable > 0 {
            parts.push(format!("{} unparseable judge replies", r.unparseable));
        }
        if !parts.is_empty() {
            notes.push(format!(
                "- {} ({}): {}",
                r.name,
                judge_label(r),
                parts.join("; ")
            ));
        }
    }
    if !notes.is_empty() {
        let _ = writeln!(
            out,
            "Input problems (counted as wrong):\n\n{}\n",
            notes.join("\n")
        );
    }

    let mut agree = Vec::new();
    for (i, a) in reports.iter().enumerate() {
        for b in &reports[i + 1..] {
            if a.predictions_digest == b.predictions_digest && judge_label(a) != judge_label(b) {
                let g = agreement(a, b);
                let kappa = g.kappa.map_or("n/a".into(), |k| format!("{k:.3}"));
                agree.push(format!(
                    "| {} | {} vs {} | {} | {:.2}% | {kappa} |",
                    cell(&a.name),
                    cell(&judge_label(a)),
                    cell(&judge_label(b)),
                    g.items,
                    g.percent
                ));
            }
        }
    }
    if !agree.is_empty() {
        let _ = writeln!(
            out,
            "### Judge agreement\n\n| Model | Judges | Items | Same verdicts | Cohen's kappa |\n|---|---|---:|---:|---:|\n{}\n",
            agree.join("\n")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::open_vqa::SampleIndex;
    use crate::eval::scoring::{ClassScore, ItemVerdict};

    fn report(name: &str, judge: &str, classes: &[(&str, usize, usize)]) -> OpenVqaReport {
        let classes: std::collections::BTreeMap<_, _> = classes
            .iter()
            .map(|(c, k, t)| {
                (
                    c.to_string(),
                    ClassScore {
                        correct: *k,
                        total: *t,
                    },
                )
            })
            .collect();
        let (c, t) = classes
            .values()
            .fold((0, 0), |(c, t), s| (c + s.correct, t + s.total));
        OpenVqaReport {
            name: name.into(),
            judge: judge.into(),
            judge_model: None,
            annotations: "a".into(),
            predictions: "p".into(),
            predictions_digest: "d".into(),
            classes,
            overall: 100.0 * c as f64 / t as f64,
            judged: 0,
            unparseable: 0,
            missing: vec![],
            extra: vec![],
            duplicates: vec![],
            empty: vec![],
            verdicts: vec![],
        }
    }

    fn with_verdicts(mut r: OpenVqaReport, v: &[(i64, Status, bool)]) -> OpenVqaReport {
        r.verdicts = v
            .iter()
            .map(|(i, s, c)| ItemVerdict {
                index: SampleIndex::Int(*i),
                class: "Others".into(),
                status: *s,
                correct: *c,
                reply: None,
            })
            .collect();
        r
    }

    #[test]
    fn paper_table_1_row() {
        let lynx = report(
            "Lynx",
            "llm",
            &[
                ("OCR", 36, 53),
                ("Counting", 25, 37),
                ("Reasoning", 26, 31),
                ("Place", 17, 22),
                ("Color", 21, 30),
                ("Spatial", 9, 15),
                ("Action", 17, 20),
                ("Others", 79, 94),
            ],
        );
        let video = report(
            "Lynx",
            "llm",
            &[("Action(Y/N)", 69, 108), ("Others", 29, 40)],
        );
        let md = markdown(&[lynx, video]);
        assert!(md.contains(
            "| Model | OCR | Counting | Reasoning | Place | Color | Spatial | Action | Others | Overall |"
        ));
        assert!(md.contains(
            "| Lynx | 36/53 | 25/37 | 26/31 | 17/22 | 21/30 | 9/15 | 17/20 | 79/94 | 76.16 |"
        ));
        assert!(md.contains("| Model | Action (Y/N) | Others | Overall |"));
        assert!(md.contains("| Lynx | 69/108 | 29/40 | 66.22 |"));
        assert!(!md.contains("agreement"));
    }

    #[test]
    fn kappa_and_agreement_table() {
        use Status::*;
        // a: Y Y N N Y ; b: Y N N N Y  (index 6 only judged by a, 7 unparseable in b)
        let a = with_verdicts(
            report("m", "rule", &[("Others", 3, 7)]),
            &[
                (1, Judged, true),
                (2, Judged, true),
                (3, Judged, false),
                (4, Judged, false),
                (5, Judged, true),
                (6, Judged, true),
                (7, Judged, false),
            ],
        );
        let mut b = with_verdicts(
            report("m", "llm", &[("Others", 2, 7)]),
            &[
                (1, Judged, true),
                (2, Judged, false),
                (3, Judged, false),
                (4, Judged, false),
                (5, Judged, true),
                (6, Missing, false),
                (7, Unparseable, false),
            ],
        );
        b.judge_model = Some("gpt-4".into());
        let g = agreement(&a, &b);
        assert_eq!((g.items, g.same), (5, 4));
        assert!((g.percent - 80.0).abs() < 1e-12);
        // po = 0.8; pa(yes) = 0.6, pb(yes) = 0.4; pe = 0.24 + 0.24 = 0.48
        let k = g.kappa.unwrap();
        assert!((k - (0.8 - 0.48) / 0.52).abs() < 1e-12, "{k}");
        let md = markdown(&[a.clone(), b]);
        assert!(
            md.contains("| m (rule) | - | - | - | - | - | - | - | 3/7 | 42.86 |"),
            "{md}"
        );
        assert!(
            md.contains("| m | rule vs llm gpt-4 | 5 | 80.00% | 0.615 |"),
            "{md}"
        );
        let same = agreement(&a, &a.clone());
        assert_eq!((same.items, same.same, same.kappa), (7, 7, Some(1.0)));
        // both judges always say yes: chance agreement is 1, kappa undefined
        let yes = with_verdicts(
            report("m", "rule", &[("Others", 2, 2)]),
            &[(1, Judged, true), (2, Judged, true)],
        );
        let g = agreement(&yes, &yes.clone());
        assert_eq!((g.items, g.percent, g.kappa), (2, 100.0, None));
    }
}
