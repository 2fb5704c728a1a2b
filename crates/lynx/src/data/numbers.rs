//! English number words 0..=99, shared by the synthetic world (answers like "three") and the
//! Open-VQA rule judge (which reads "three" and "3" as the same answer).

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// The word for `n` ("forty-two"); digits beyond 99.
pub fn number_word(n: u32) -> String {
    match n {
        0..=19 => ONES[n as usize].to_string(),
        20..=99 if n.is_multiple_of(10) => TENS[(n / 10) as usize].to_string(),
        20..=99 => format!("{}-{}", TENS[(n / 10) as usize], ONES[(n % 10) as usize]),
        _ => n.to_string(),
    }
}

/// The value of one number word: "zero".."nineteen", the tens, or "none" (0).
pub fn word_value(w: &str) -> Option<u32> {
    if w == "none" {
        return Some(0);
    }
    if let Some(i) = ONES.iter().position(|u| *u == w) {
        return Some(i as u32);
    }
    TENS.iter()
        .position(|t| !t.is_empty() && *t == w)
        .map(|i| 10 * i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for n in 0..100 {
            let w = number_word(n);
            let value: u32 = w.split('-').map(|p| word_value(p).unwrap()).sum();
            assert_eq!(value, n, "{w}");
        }
        assert_eq!(number_word(42), "forty-two");
        assert_eq!(word_value("none"), Some(0));
        assert_eq!(word_value("hundred"), None);
        assert_eq!(number_word(120), "120");
    }
}
