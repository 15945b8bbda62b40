//! Progress bars on a terminal, silence everywhere else.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How long work runs before its bar appears: quick jobs stay silent.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A byte-counting progress bar that draws only when stderr is a terminal,
/// output is not quiet or machine-readable, and the work has already taken
/// over a second (whatever its size).
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    shown: AtomicBool,
}

impl Progress {
    pub fn new(enabled: bool, total: u64, label: &str) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal() && total > 0).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar
        });
        Progress {
            bar,
            started: Instant::now(),
            shown: AtomicBool::new(false),
        }
    }

    /// The callback the library calls with bytes processed.
    pub fn callback(&self) -> impl Fn(u64) + Sync + '_ {
        move |n| {
            if let Some(bar) = &self.bar {
                bar.inc(n);
                if self.started.elapsed() >= SHOW_AFTER && !self.shown.swap(true, Ordering::Relaxed)
                {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
