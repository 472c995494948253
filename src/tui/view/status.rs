//! The status bar: job (run name, kind, state), device, step, throughput and
//! elapsed time, from the followed run, the job started here, or step mode.
use crate::tui::state::{AppState, Mode, ModelStatus};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

pub struct StatusBar<'a> {
    state: &'a AppState,
}

impl<'a> StatusBar<'a> {
    pub fn new(state: &'a AppState) -> Self {
        StatusBar { state }
    }
}

/// `1h02m`, `3m07s`, `12s`.
pub fn fmt_elapsed(s: f64) -> String {
    let s = if s.is_finite() { s.max(0.0) as u64 } else { 0 };
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, _) => format!("{h}h{m:02}m"),
    }
}

fn run_fields(state: &AppState) -> Vec<String> {
    let m = &state.monitor;
    let Some(fr) = m.current_run() else {
        return vec![m.follow_status.clone()];
    };
    let run = &fr.run;
    let Some(started) = &run.started else {
        return vec![fr.status.clone()];
    };
    let status = match &run.finished {
        Some((s, _)) => format!("{s:?}").to_lowercase(),
        None => "running".into(),
    };
    let mut out = Vec::new();
    if m.runs.len() > 1 {
        out.push(format!("run {}/{}", m.current + 1, m.runs.len()));
    }
    out.extend([
        format!("job {} {:?} ({status})", started.run, started.kind).to_lowercase(),
        format!("device {}", started.device),
        format!("step {}/{}", run.step, started.total_steps),
    ]);
    if let Some(tps) = run.last_train.as_ref().and_then(|m| m.tokens_per_s) {
        out.push(format!("{tps:.0} tok/s"));
    }
    let elapsed = run
        .last_train
        .as_ref()
        .and_then(|m| m.elapsed_s)
        .or_else(|| (state.now > 0.0).then_some(state.now - started.unix_time));
    if let Some(e) = elapsed {
        out.push(format!("elapsed {}", fmt_elapsed(e)));
    }
    if run.resumes > 0 {
        out.push(format!("resumed ×{}", run.resumes));
    }
    out
}

fn step_fields(state: &AppState) -> Vec<String> {
    let s = &state.step;
    let (model, adapter) = match &s.model {
        ModelStatus::Off => ("model off".to_string(), s.adapter.as_deref()),
        ModelStatus::Loading(spec) => (format!("model loading ({spec})"), s.adapter.as_deref()),
        // The worker names what it loaded `path + adapter`: show the two apart.
        ModelStatus::Ready { name, .. } => match name.split_once(" + ") {
            Some((path, adapter)) => (format!("model {path}"), Some(adapter)),
            None => (format!("model {name}"), None),
        },
        ModelStatus::Unavailable(_) => ("model unavailable".to_string(), s.adapter.as_deref()),
    };
    let model = match adapter {
        Some(a) => format!("{model} · adapter {a}"),
        None => model,
    };
    let mut out = vec![
        model,
        format!("device {}", state.device),
        format!("tasks {}", s.tasks.len()),
    ];
    out.push(
        s.sandbox
            .as_ref()
            .map_or("sandbox starting".into(), |x| format!("sandbox {x}")),
    );
    out
}

/// The last two components of a path (`coe-sft/results.json`): which run, which file.
fn short_path(p: &std::path::Path) -> String {
    let parts: Vec<String> = p
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

fn results_fields(state: &AppState) -> Vec<String> {
    let r = &state.results;
    let Some(f) = r.current() else {
        return vec!["no results loaded".into()];
    };
    let mut out = vec![
        format!(
            "file {}/{} {}",
            r.file + 1,
            r.files.len(),
            short_path(&f.path)
        ),
        format!("{} saved episodes", f.episodes.len()),
    ];
    if let Some(a) = &f.summary.provenance.adapter {
        out.push(format!("adapter {a}"));
    }
    if f.summary.partial {
        out.push("partial (stopped early)".into());
    }
    out
}

impl Widget for StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let st = self.state;
        let t = &st.theme;
        let mut fields = match st.mode {
            Mode::Step => step_fields(st),
            Mode::Results => results_fields(st),
            _ => run_fields(st),
        };
        if let Some(j) = &st.job {
            fields.push(format!("job {}: {}", j.run_dir.display(), j.status));
        }
        let mut spans = vec![Span::styled(format!(" {} ", st.mode.name()), t.selected())];
        for f in fields {
            spans.push(Span::styled(" │ ", t.muted()));
            spans.push(Span::raw(f));
        }
        Paragraph::new(Line::from(spans))
            .style(t.base())
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn elapsed_is_compact() {
        assert_eq!(super::fmt_elapsed(12.4), "12s");
        assert_eq!(super::fmt_elapsed(187.0), "3m07s");
        assert_eq!(super::fmt_elapsed(3725.0), "1h02m");
        assert_eq!(super::fmt_elapsed(f64::NAN), "0s");
    }
}
