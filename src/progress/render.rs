//! Renderers for progress events.

use super::Event;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live view on a terminal, plain otherwise.
    Auto,
    /// Live view.
    Tty,
    /// Plain lines.
    Plain,
    /// JSON lines.
    RawJson,
    /// Nothing (`-q`).
    Quiet,
}

impl Mode {
    /// Resolve `Auto` against stderr.
    fn resolve(self) -> Mode {
        match self {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            m => m,
        }
    }
}

/// Render events from `rx` on stderr in a thread; join it after the build.
pub fn spawn_renderer(rx: Receiver<Event>, mode: Mode) -> JoinHandle<()> {
    std::thread::spawn(move || match mode.resolve() {
        Mode::Plain => plain(rx),
        Mode::RawJson => rawjson(rx),
        Mode::Tty => tty(rx),
        _ => for _ in rx {},
    })
}

fn plain(rx: Receiver<Event>) {
    let mut err = std::io::stderr().lock();
    for e in rx {
        let _ = match e {
            Event::Started { id, name } => writeln!(err, "#{id} {name}"),
            Event::Cached { id } => writeln!(err, "#{id} CACHED"),
            Event::CacheImported { .. } => Ok(()),
            Event::Miss { id, reason } => writeln!(err, "#{id} cache miss: {reason}"),
            Event::Log { id, line } => writeln!(err, "#{id} {line}"),
            Event::Done { id, seconds } => writeln!(err, "#{id} DONE {seconds:.1}s"),
            Event::Failed { id, error } => writeln!(err, "#{id} ERROR: {error}"),
            Event::Finished {
                seconds,
                cached,
                executed,
            } => writeln!(
                err,
                "built in {seconds:.2}s: {executed} step{} run, {cached} cached",
                if executed == 1 { "" } else { "s" }
            ),
        };
    }
}

fn rawjson(rx: Receiver<Event>) {
    let mut err = std::io::stderr().lock();
    for e in rx {
        let _ = writeln!(err, "{}", serde_json::to_string(&e).unwrap_or_default());
    }
}

fn tty(rx: Receiver<Event>) {
    let multi = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    let mut bars: HashMap<usize, (indicatif::ProgressBar, String)> = HashMap::new();
    for e in rx {
        match e {
            Event::Started { id, name } => {
                let pb = multi.add(indicatif::ProgressBar::new_spinner());
                pb.set_style(style.clone());
                pb.enable_steady_tick(std::time::Duration::from_millis(100));
                pb.set_message(format!("#{id} {name}"));
                bars.insert(id, (pb, name));
            }
            Event::Cached { id } => {
                if let Some((pb, name)) = bars.remove(&id) {
                    pb.finish_with_message(format!("#{id} {name} CACHED"));
                }
            }
            Event::CacheImported { .. } => {}
            Event::Miss { id, reason } => {
                let _ = multi.println(format!("#{id} cache miss: {reason}"));
            }
            Event::Log { id, line } => {
                let _ = multi.println(format!("#{id} {line}"));
            }
            Event::Done { id, seconds } => {
                if let Some((pb, name)) = bars.remove(&id) {
                    pb.finish_with_message(format!("#{id} {name} DONE {seconds:.1}s"));
                }
            }
            Event::Failed { id, error } => {
                if let Some((pb, name)) = bars.remove(&id) {
                    pb.abandon_with_message(format!("#{id} {name} ERROR: {error}"));
                }
            }
            Event::Finished {
                seconds,
                cached,
                executed,
            } => {
                let _ = multi.println(format!(
                    "built in {seconds:.2}s: {executed} run, {cached} cached"
                ));
            }
        }
    }
}
