//! Starting and stopping the workbench: resolve the config, keymap, theme and
//! tasks; build the state; start following a run; own the terminal with a guard
//! and a panic hook that restore it before anything is printed; run the loop.
//!
//! Step mode's workers (sandbox pool, model) start only when step mode is first
//! shown — at once when the workbench opens in it, never while it only follows a
//! run — and the model then loads in the background so the UI stays usable.
//!
//! Shutdown follows DESIGN §6: stop admitting work (close the request
//! channels), let the environment worker drop its sandbox pool (killing its
//! Python children), restore the terminal, then report. A job started from the
//! workbench keeps running; its pid and log are printed.
use crate::config::{Config, DEFAULT_RON};
use crate::tui::effects::{EffectRunner, INPUT_CAP};
use crate::tui::event_loop::EventLoop;
use crate::tui::keymap::Keymap;
use crate::tui::msg::Msg;
use crate::tui::sources::{data_files, load_step_tasks};
use crate::tui::state::{AppState, Level, Mode};
use crate::tui::style::color::ColorMode;
use crate::tui::style::theme::Theme;
use crate::tui::update::{monitor, results, step};
use crossbeam_channel::{Sender, bounded};
use crossterm::event::{self, Event as TermEvent};
use crossterm::execute;
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What `coe`, `coe tui` and the tests start the workbench with.
#[derive(Debug, Clone, Default)]
pub struct TuiOptions {
    /// `--config F`; `None`: configs/default.ron in the working directory, else the embedded copy.
    pub config: Option<PathBuf>,
    pub device: Option<String>,
    pub threads: Option<usize>,
    /// `--follow RUN_DIR`, repeatable: open in monitor mode on these runs, overlaid.
    pub follow: Vec<PathBuf>,
    /// `--results F`, repeatable: open the results view on these eval results, side by side.
    pub results: Vec<PathBuf>,
    /// `--tasks F`: step mode's tasks.
    pub tasks: Option<PathBuf>,
    /// `--no-model`: no model worker (typed commands only).
    pub no_model: bool,
}

/// Everything resolved before the terminal is touched.
pub struct Startup {
    pub state: AppState,
    pub config: Config,
}

/// Reads the config text: `--config F`, else configs/default.ron here, else the embedded default.
fn config_text(opt: Option<&Path>) -> anyhow::Result<(PathBuf, String)> {
    let path = opt.map_or_else(|| PathBuf::from("configs/default.ron"), Path::to_path_buf);
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok((path, t)),
        Err(e) if opt.is_none() && e.kind() == std::io::ErrorKind::NotFound => {
            Ok((path, DEFAULT_RON.to_string()))
        }
        Err(e) => anyhow::bail!("{}: cannot read the config: {e}", path.display()),
    }
}

/// Builds the state (no threads, no terminal). A config with errors still opens,
/// in config mode with the error shown, running on the defaults meanwhile.
pub fn prepare(opts: &TuiOptions) -> anyhow::Result<Startup> {
    let (path, text) = config_text(opts.config.as_deref())?;
    let parsed = Config::from_ron(&text, &path.display().to_string());
    let mut config = parsed
        .as_ref()
        .map_or_else(|_| Config::default(), Clone::clone);
    if let Some(d) = &opts.device {
        config.model.device = d.clone();
    }
    if let Some(t) = opts.threads {
        config.model.threads = t;
    }
    let keymap = match &config.ui.keymap {
        Some(file) => Keymap::load(Path::new(file))?,
        None => Keymap::defaults(),
    };
    let theme = Theme::load(&config.ui.theme, ColorMode::detect())?;
    let mut state = AppState::new(keymap, theme, path, &text);
    state.device = config.model.device.clone();
    state.step.model_spec = (!opts.no_model).then(|| config.model.path.clone());
    state.step.adapter = config.model.adapter.clone();
    if parsed.is_err() {
        state.mode = Mode::Config;
        state.log(
            Level::Error,
            "the config has errors (shown in config mode); running on the defaults",
        );
    }
    match load_step_tasks(opts.tasks.as_deref(), &config) {
        Ok(src) => {
            state.data.files = data_files(src.path.as_deref(), &config);
            state.step.tasks = src.tasks;
            state.step.tasks_origin = src.origin;
        }
        Err(e) => {
            state.data.files = data_files(None, &config);
            state.log(Level::Error, e);
        }
    }
    for dir in &opts.follow {
        state.mode = Mode::Monitor;
        if monitor::add_run(&mut state, dir.clone()).is_none() {
            state.log(
                Level::Warn,
                format!("{}: followed already, or too many runs", dir.display()),
            );
        }
    }
    if !opts.follow.is_empty() {
        state.monitor.current = 0;
    }
    let mut loaded = Vec::new();
    for path in &opts.results {
        match crate::tui::results_io::load_results(path) {
            Ok(f) => loaded.push(f),
            Err(e) => state.log(Level::Error, e),
        }
    }
    if !opts.results.is_empty() {
        state.mode = Mode::Results;
        results::add_files(&mut state, loaded);
    }
    if opts.no_model {
        state.log(Level::Info, "model off (--no-model): type commands with i");
    }
    Ok(Startup { state, config })
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        std::io::stdout(),
        LeaveAlternateScreen,
        crossterm::cursor::Show
    );
}

/// Restores the terminal when dropped, on every exit path.
struct TerminalGuard;

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Restore first, or the panic message lands on the alternate screen in raw mode.
        restore_terminal();
        previous(info);
    }));
}

fn spawn_input(
    tx: Sender<Msg>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("coe-input".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Poll with a timeout so the thread notices `stop` and can be joined.
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => return,
                }
                let msg = match event::read() {
                    Ok(TermEvent::Key(k)) => Msg::Key(k),
                    Ok(TermEvent::Resize(..)) => Msg::Resize,
                    Ok(_) => continue,
                    Err(_) => return,
                };
                if tx.send(msg).is_err() {
                    return;
                }
            }
        })
}

/// Starts what a prepared state needs now: the tail reader of a followed run, and
/// step mode's workers only if the workbench opens in step mode.
pub fn start_workers(startup: &mut Startup, rt: &mut EffectRunner) -> anyhow::Result<()> {
    rt.step_config = Some(startup.config.clone());
    for r in &startup.state.monitor.runs {
        rt.follow(r.id, &r.dir).map_err(anyhow::Error::msg)?;
    }
    let mut fx = Vec::new();
    if startup.state.mode == Mode::Step {
        step::on_enter(&mut startup.state, &mut fx);
    }
    for e in fx {
        rt.perform(&mut startup.state, e);
    }
    // Syntax definitions take a moment to load; do it off the UI thread.
    let _ = std::thread::Builder::new()
        .name("coe-syntect".into())
        .spawn(crate::tui::style::highlight::warm_up);
    Ok(())
}

/// Opens the workbench in this terminal and runs it until quit.
pub fn run(opts: TuiOptions) -> anyhow::Result<ExitCode> {
    let mut startup = prepare(&opts)?;
    let mut rt = EffectRunner::new();
    start_workers(&mut startup, &mut rt)?;
    let max_fps = startup.config.ui.max_fps;
    let mut state = startup.state;

    let (input_tx, input_rx) = bounded(INPUT_CAP);
    install_panic_hook();
    enable_raw_mode()?;
    let guard = TerminalGuard;
    execute!(
        std::io::stdout(),
        EnterAlternateScreen,
        crossterm::cursor::Hide
    )?;
    let mut terminal = Terminal::new(CrosstermBackend::new(std::io::stdout()))?;
    terminal.clear()?;
    let stop = Arc::new(AtomicBool::new(false));
    let input = spawn_input(input_tx, stop.clone())?;
    let mut event_loop = EventLoop::new(input_rx, max_fps);
    let result = event_loop.run(&mut terminal, &mut state, &mut rt);

    stop.store(true, Ordering::Relaxed);
    let job = rt.running_job();
    drop(terminal);
    drop(guard);
    let _ = input.join();
    rt.shutdown(Duration::from_secs(2));
    result?;
    if let Some(pid) = job {
        eprintln!("coe: the job started from the workbench (pid {pid}) is still running");
    }
    Ok(ExitCode::SUCCESS)
}
