//! Text and markdown renderings of the `lynx rate report` numbers (the paper's Figure 4 as a
//! table, the annotators and their agreement).

use super::report::Report;

fn num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "n/a".into(),
    }
}

impl Report {
    /// The score table: header and rows (model, mean, questions, ratings, one column per annotator).
    fn score_table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let mut header: Vec<String> = ["model", "mean score", "questions", "ratings"]
            .map(String::from)
            .to_vec();
        if self.annotators.len() > 1 {
            header.extend(self.annotators.iter().map(|a| format!("mean ({})", a.name)));
        }
        let rows = self
            .models
            .iter()
            .map(|m| {
                let mut row = vec![
                    m.model.clone(),
                    num(Some(m.mean), 3),
                    m.questions.to_string(),
                    m.ratings.to_string(),
                ];
                if self.annotators.len() > 1 {
                    row.extend(m.per_annotator.iter().map(|v| num(*v, 3)));
                }
                row
            })
            .collect();
        (header, rows)
    }

    fn annotator_table(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header = ["annotator", "questions rated", "ties used"]
            .map(String::from)
            .to_vec();
        let rows = self
            .annotators
            .iter()
            .map(|a| {
                vec![
                    a.name.clone(),
                    format!("{}/{}", a.questions, self.total_questions),
                    a.ties.to_string(),
                ]
            })
            .collect();
        (header, rows)
    }

    fn agreement_lines(&self) -> Vec<String> {
        let Some(ag) = &self.agreement else {
            return vec!["One annotator: no inter-annotator agreement.".into()];
        };
        let mut lines = vec![
            format!(
                "Units: {} (question, model) pairs scored by at least 2 annotators.",
                ag.units
            ),
            format!(
                "Krippendorff's alpha, interval metric: {}",
                num(ag.alpha_interval, 3)
            ),
            format!(
                "Krippendorff's alpha, ordinal metric: {}",
                num(ag.alpha_ordinal, 3)
            ),
            format!(
                "Mean pairwise Spearman's rho: {} ({} pair{})",
                num(ag.spearman_mean, 3),
                ag.pairs.len(),
                if ag.pairs.len() == 1 { "" } else { "s" }
            ),
        ];
        lines.extend(ag.pairs.iter().map(|p| {
            format!(
                "  {} vs {}: rho {} over {} common scores",
                p.a,
                p.b,
                num(p.rho, 3),
                p.units
            )
        }));
        lines
    }

    /// The report as plain text for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "OwlEval human evaluation: {} questions, {} annotator{}\n\n",
            self.total_questions,
            self.annotators.len(),
            if self.annotators.len() == 1 { "" } else { "s" }
        );
        let (h, r) = self.score_table();
        out += &text_table(&h, &r);
        out += "\n";
        let (h, r) = self.annotator_table();
        out += &text_table(&h, &r);
        out += "\n";
        for line in self.agreement_lines() {
            out += &line;
            out += "\n";
        }
        out
    }

    /// The report as markdown.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# OwlEval human evaluation\n\n");
        out += &format!(
            "Average score per model (1-5), as in Figure 4 of the Lynx paper: for each question the \
             scores of all annotators who rated it are averaged, then these averages are averaged over \
             the rated questions. {} questions in the set.\n\n",
            self.total_questions
        );
        let (h, r) = self.score_table();
        out += &md_table(&h, &r);
        out += "\n## Annotators\n\n";
        let (h, r) = self.annotator_table();
        out += &md_table(&h, &r);
        out += "\nA tie is a pair of answers with the same score on one question, beyond the pairs that \
                the number of answers forces on 5 score levels.\n\n## Agreement\n\n";
        if self.agreement.is_some() {
            out += "Krippendorff's alpha over (question, model) units with the interval metric (squared \
                    score difference) and the ordinal metric; Spearman's rho between each pair of \
                    annotators over the scores both gave (mean ranks for ties), then averaged over pairs.\n\n";
        }
        for line in self.agreement_lines() {
            out += &format!("- {}\n", line.trim_start());
        }
        out
    }
}

fn text_table(header: &[String], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(header);
    out += &(widths
        .iter()
        .map(|w| "-".repeat(*w))
        .collect::<Vec<_>>()
        .join("  ")
        + "\n");
    for r in rows {
        out += &line(r);
    }
    out
}

fn md_table(header: &[String], rows: &[Vec<String>]) -> String {
    let esc = |s: &String| s.replace('|', "\\|");
    let mut out = format!(
        "| {} |\n",
        header.iter().map(esc).collect::<Vec<_>>().join(" | ")
    );
    out += &format!(
        "|{}|\n",
        (0..header.len())
            .map(|i| if i == 0 { " --- " } else { " ---: " })
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        out += &format!(
            "| {} |\n",
            r.iter().map(esc).collect::<Vec<_>>().join(" | ")
        );
    }
    out
}
