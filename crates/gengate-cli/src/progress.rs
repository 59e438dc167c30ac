//! What the user sees while waiting: on a terminal a live line (status,
//! elapsed time, bytes and rate of transfers); otherwise plain lines on
//! stderr, one per event, so logs stay readable and stdout stays clean.

use gengate_client::{DownloadProgress, Generation};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    /// The last plain line, so a status is reported once.
    last: std::sync::Mutex<String>,
}

impl Progress {
    pub(crate) fn new(fancy: bool) -> Self {
        let bar = fancy.then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Self {
            bar,
            last: Default::default(),
        }
    }

    pub(crate) fn line(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_owned()),
            None => {
                let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
                if *last != msg {
                    eprintln!("{msg}");
                    *last = msg.to_owned();
                }
            }
        }
    }

    pub(crate) fn status(&self, task: &Generation) {
        self.line(&format!("{} {} ({})", task.id, task.status, task.model));
    }

    /// Switches the display to a byte counter.
    pub(crate) fn start_transfer(&self, what: &str, total: Option<u64>) {
        match &self.bar {
            Some(b) => {
                b.set_length(total.unwrap_or(0));
                b.set_position(0);
                b.reset_elapsed();
                b.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} [{elapsed}]",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                b.set_message(what.to_owned());
            }
            None => eprintln!("{what}…"),
        }
    }

    pub(crate) fn transfer(&self, p: DownloadProgress) {
        if let Some(b) = &self.bar {
            if let Some(t) = p.total {
                b.set_length(t);
            }
            b.set_position(p.done);
        }
    }

    /// A callback for upload progress (called from the HTTP client's task).
    pub(crate) fn upload_callback(&self) -> impl Fn(u64, u64) + Send + Sync + 'static {
        let bar = self.bar.clone();
        move |sent, total| {
            if let Some(b) = &bar {
                b.set_length(total);
                b.set_position(sent);
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `1.2 MB`.
pub(crate) fn human_bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}
