//! Product-name terms for the embedded index: a small, predictable analyzer that works for
//! Chinese and for space-separated languages alike.
//!
//! - Runs of letters and digits (not CJK) become lowercase words: `Frozen` → `frozen`.
//! - Runs of CJK characters are indexed as unigrams and bigrams (`速冻水饺` → `速 冻 水 饺
//!   速冻 冻水 水饺`), the approach of Lucene's CJK bigram filter. A query run of one
//!   character looks for the unigram, a longer run for its bigrams, so `冻品` finds
//!   `冻品 A` but not `冻肉` or `品冻`.
//!
//! Every query term must be present (AND).

/// Terms to index for one product name (deduplicated, in first-seen order).
pub fn index_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(word) => terms.push(word),
            Run::Cjk(chars) => {
                terms.extend(chars.iter().map(char::to_string));
                terms.extend(chars.windows(2).map(|pair| pair.iter().collect()));
            }
        }
    }
    dedup(terms)
}

/// Terms a product-text query requires (deduplicated). Empty when the text has no letters
/// or digits.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    for run in runs(text) {
        match run {
            Run::Word(word) => terms.push(word),
            Run::Cjk(chars) if chars.len() == 1 => terms.push(chars[0].to_string()),
            Run::Cjk(chars) => terms.extend(chars.windows(2).map(|pair| pair.iter().collect())),
        }
    }
    dedup(terms)
}

enum Run {
    Word(String),
    Cjk(Vec<char>),
}

fn runs(text: &str) -> Vec<Run> {
    let mut runs = Vec::new();
    let mut word = String::new();
    let mut cjk = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.extend(c.to_lowercase());
        } else {
            if !word.is_empty() {
                runs.push(Run::Word(std::mem::take(&mut word)));
            }
            if !cjk.is_empty() {
                runs.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        runs.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        runs.push(Run::Cjk(cjk));
    }
    runs
}

/// Han (with extensions and compatibility ideographs), kana and hangul.
fn is_cjk(c: char) -> bool {
    matches!(
        u32::from(c),
        0x3040..=0x30FF      // hiragana, katakana
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x3134F // CJK extensions B..G
    )
}

fn dedup(terms: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    terms
        .into_iter()
        .filter(|term| seen.insert(term.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_names() {
        assert_eq!(index_terms("冻品 A"), ["冻", "品", "冻品", "a"]);
        assert_eq!(
            index_terms("Frozen-Dumplings 速冻水饺 500g"),
            [
                "frozen",
                "dumplings",
                "速",
                "冻",
                "水",
                "饺",
                "速冻",
                "冻水",
                "水饺",
                "500g"
            ]
        );
        assert_eq!(query_terms("冻品"), ["冻品"]);
        assert_eq!(query_terms("速冻水饺"), ["速冻", "冻水", "水饺"]);
        assert_eq!(query_terms("冻"), ["冻"]);
        assert_eq!(query_terms("FROZEN"), ["frozen"]);
        assert!(query_terms(" - , ").is_empty());
    }
}
