//! Progress bars on a terminal, silence everywhere else.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte-counting progress bar that draws only when stderr is a terminal
/// and output is not quiet or machine-readable.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn new(enabled: bool, total: u64, label: &str) -> Self {
        let bar = (enabled && std::io::stderr().is_terminal() && total >= 64 << 20).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
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
        Progress { bar }
    }

    /// The callback the library calls with bytes processed.
    pub fn callback(&self) -> impl Fn(u64) + Sync + '_ {
        move |n| {
            if let Some(bar) = &self.bar {
                bar.inc(n);
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
