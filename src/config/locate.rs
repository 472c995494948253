//! Finds the line of a field in RON source text, for validation messages.
//!
//! Validation runs on the typed config, which no longer knows where a value was
//! written. A dotted path such as `sft.lora.rank` is found by scanning for each
//! `name:` in turn, each search starting after the previous match, so a field is
//! found inside its own section even when another section has the same name.
//! Comments are skipped; a field left at its default (absent) gives `None`.

/// 1-based line of the last path segment, if every segment is found in order.
pub fn locate_field(text: &str, path: &str) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    for seg in path.split('.') {
        let seg = seg.split('[').next().unwrap_or(seg);
        let at = find_key(text, seg, from)?;
        found = Some(at);
        from = at + seg.len();
    }
    found.map(|at| text[..at].matches('\n').count() + 1)
}

/// Byte offset of `key` followed by optional spaces and `:`, at an identifier
/// boundary, outside `//` comments and strings, at or after `from`.
fn find_key(text: &str, key: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut in_str = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_str {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_str = true;
            i += 1;
            continue;
        }
        if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if i >= from && text[i..].starts_with(key) {
            let before_ok = i == 0 || !is_ident(bytes[i - 1]);
            let rest = &text[i + key.len()..];
            let after = rest.trim_start_matches([' ', '\t']);
            if before_ok && after.starts_with(':') && !rest.starts_with("::") {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::locate_field;

    #[test]
    fn finds_nested_fields_in_their_section() {
        let text = "(\n  rl: (lr: 1.0),\n  sft: (\n    // lr: 3\n    lr: 2.0,\n  ),\n)";
        assert_eq!(locate_field(text, "rl.lr"), Some(2));
        assert_eq!(locate_field(text, "sft.lr"), Some(5));
        assert_eq!(locate_field(text, "sft.steps"), None);
        assert_eq!(locate_field(text, "eval.k[1]"), None);
    }

    #[test]
    fn ignores_keys_inside_strings_and_longer_names() {
        let text = "(\n name: \"lr: x\",\n slr: 1,\n lr: 2,\n)";
        assert_eq!(locate_field(text, "lr"), Some(4));
    }
}
