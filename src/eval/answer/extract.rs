//! Reading a program back out of a free-form reply.
//!
//! The reply formats put the program in a python fence, but a model under evaluation may
//! close the fence early, never close it (its token budget ran out), fence other text too,
//! or skip the fence. The rule, in order:
//! 1. the last fenced block tagged `python`, `py`, `python3` or untagged, with content
//!    (an unterminated block at the end counts: a budget cut is the model's failure to
//!    score, not a reason to call the reply empty);
//! 2. in a reply without any fence, a bare program: from the first line that starts at
//!    column 0 like Python code (`def`, `class`, `import`, `from … import`, `async def`, a
//!    decorator) to the end;
//! 3. otherwise none — the reply holds no program (an invalid answer). A reply that fences
//!    only other languages, or only empty blocks, holds none either.
//!
//! The program comes back with CRLF normalised, its common indentation removed (a fence
//! inside a list item is indented), without leading or trailing blank lines, and ending in
//! one newline.

/// The program in a model's reply, or `None` when it holds none.
pub fn extract_program(reply: &str) -> Option<String> {
    let text = reply.replace("\r\n", "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let block = if lines.iter().any(|l| opening(l).is_some()) {
        last_fenced_block(&lines)
    } else {
        bare_program(&lines)
    };
    block.and_then(|b| tidy(&b))
}

/// A backtick fence longer than any run of backticks in `code` (at least three).
pub fn fence_for(code: &str) -> String {
    let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

struct Open<'a> {
    ticks: usize,
    python: bool,
    lines: Vec<&'a str>,
}

fn last_fenced_block<'a>(lines: &[&'a str]) -> Option<Vec<&'a str>> {
    let mut found: Option<Vec<&'a str>> = None;
    let mut keep = |block: Open<'a>| {
        if block.python && block.lines.iter().any(|l| !l.trim().is_empty()) {
            found = Some(block.lines);
        }
    };
    let mut open: Option<Open<'a>> = None;
    for &line in lines {
        let Some(block) = open.as_mut() else {
            open = opening(line);
            continue;
        };
        match closing(line, block.ticks) {
            None => block.lines.push(line),
            Some(glued) => {
                block.lines.extend(glued);
                if let Some(done) = open.take() {
                    keep(done);
                }
            }
        }
    }
    if let Some(block) = open {
        keep(block);
    }
    found
}

/// A fence-opening line: at least three backticks, then an info string without backticks.
fn opening(line: &str) -> Option<Open<'_>> {
    let trimmed = line.trim_start();
    let ticks = trimmed.bytes().take_while(|&b| b == b'`').count();
    if ticks < 3 {
        return None;
    }
    let info = trimmed.get(ticks..)?.trim();
    if info.contains('`') {
        return None;
    }
    let lang = info.split_whitespace().next().unwrap_or("").to_lowercase();
    Some(Open {
        ticks,
        python: matches!(lang.as_str(), "" | "python" | "py" | "python3" | "py3"),
        lines: Vec::new(),
    })
}

/// Whether `line` closes a fence of `ticks` backticks: `Some(None)` for a fence line,
/// `Some(Some(code))` for code glued to the fence (`return x```), `None` otherwise.
fn closing(line: &str, ticks: usize) -> Option<Option<&str>> {
    let trimmed = line.trim();
    if trimmed.len() >= ticks && trimmed.bytes().all(|b| b == b'`') {
        return Some(None);
    }
    let fence = "`".repeat(ticks);
    let code = line.trim_end().strip_suffix(fence.as_str())?;
    (!code.ends_with('`')).then_some(Some(code))
}

fn bare_program<'a>(lines: &[&'a str]) -> Option<Vec<&'a str>> {
    let start = lines.iter().position(|l| starts_code(l))?;
    lines.get(start..).map(<[&str]>::to_vec)
}

/// Whether a line opens Python code at column 0 (prose rarely starts like this).
fn starts_code(line: &str) -> bool {
    const STARTS: [&str; 5] = ["def ", "class ", "import ", "async def ", "@"];
    if STARTS.iter().any(|s| line.starts_with(s)) {
        return true;
    }
    let mut words = line.split_whitespace();
    line.starts_with("from ") && words.nth(2) == Some("import")
}

/// Dedents, drops blank lines at both ends, ends in one newline; `None` when nothing is left.
fn tidy(block: &[&str]) -> Option<String> {
    let first = block.iter().position(|l| !l.trim().is_empty())?;
    let last = block.iter().rposition(|l| !l.trim().is_empty())?;
    let body = block.get(first..=last)?;
    let indent = body
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.bytes().take_while(|&b| b == b' ' || b == b'\t').count())
        .min()
        .unwrap_or(0);
    let mut out = String::new();
    for line in body {
        let line = line.trim_end();
        // The indent is ASCII, so the cut is on a char boundary; blank lines are empty.
        out.push_str(line.get(indent..).unwrap_or(""));
        out.push('\n');
    }
    Some(out)
}
