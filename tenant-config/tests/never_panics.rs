//! The loader never panics, whatever it is given: arbitrary text, YAML-ish text, and mutations
//! of a real config.

mod common;

use common::*;
use oc_tenant_config::ConfigSet;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(text in any::<String>()) {
        let _ = ConfigSet::from_yaml_str("fuzz.yaml", &text);
    }

    #[test]
    fn yaml_ish_text(text in "(version: 1\n)?([a-z_]{1,12}: ?(\\[|\\{|-|[0-9]{1,3}|\"[a-z.]*\"|[a-z_.:/]{0,12}|\n  )[ ,\\]}\n]{0,3}){0,30}") {
        let _ = ConfigSet::from_yaml_str("fuzz.yaml", &text);
    }

    /// Delete, duplicate or overwrite lines and bytes of the express example.
    #[test]
    fn mutated_examples(
        edits in proptest::collection::vec((0usize..10_000, 0u8..4, any::<u8>()), 1..8)
    ) {
        let mut lines: Vec<String> = example("express.yaml").lines().map(str::to_owned).collect();
        for (position, kind, byte) in edits {
            let index = position % lines.len();
            match kind {
                0 => { lines.remove(index); }
                1 => { let copy = lines[index].clone(); lines.insert(index, copy); }
                2 => {
                    let line = &mut lines[index];
                    if !line.is_empty() {
                        let at = (position / 7) % line.len();
                        if line.is_char_boundary(at) && line.is_char_boundary(at + 1) {
                            line.replace_range(at..at + 1, &char::from(byte % 128).to_string());
                        }
                    }
                }
                _ => { let line = lines[index].clone(); lines[index] = line.trim_start().to_owned(); }
            }
            if lines.is_empty() {
                break;
            }
        }
        let _ = ConfigSet::from_yaml_str("fuzz.yaml", &lines.join("\n"));
    }
}
