//! Waiting for a task and delivering its result; shared by `generate` and
//! `tasks wait`. Ctrl-C stops waiting, never the task.

use super::Output;
use super::exit::{Exit, Failure};
use super::progress::{Progress, human_bytes};
use gengate_client::{Client, Generation, GenerationStatus, WaitOptions};
use std::path::PathBuf;

/// Where the result goes.
#[derive(Debug, Clone)]
pub(crate) enum Out {
    /// Print the URL.
    Url,
    /// Download to a file.
    File(PathBuf),
    /// Download to stdout.
    Stdout,
}

impl Out {
    pub(crate) fn from_arg(arg: Option<&str>) -> Self {
        match arg {
            None => Out::Url,
            Some("-") => Out::Stdout,
            Some(p) => Out::File(PathBuf::from(p)),
        }
    }

    fn resume_hint(&self) -> String {
        match self {
            Out::Url => String::new(),
            Out::Stdout => " --out -".into(),
            Out::File(p) => format!(" --out {}", shell_quote(&p.display().to_string())),
        }
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/+=:,@".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Ctrl-C, caught from the moment this is made. `tokio::signal::ctrl_c()`
/// installs its handler only when first polled, so a press between the
/// task's first status line and the wait would have killed the process
/// without saying how to pick the task up again.
pub(crate) struct Interrupt {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Interrupt {
    pub(crate) fn listen() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok(),
        }
    }

    async fn pressed(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            s.recv().await;
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for `task_id` to end, then downloads or prints its result.
pub(crate) async fn wait_and_deliver(
    client: &Client,
    url: &str,
    task_id: &str,
    out: &Out,
    output: Output,
    progress: &Progress,
    mut interrupt: Interrupt,
) -> Result<(), Failure> {
    let work = async {
        let task = client
            .generations()
            .wait_with(task_id, &WaitOptions::default(), |t| progress.status(t))
            .await
            .map_err(|e| Failure::from_client(e, url))?;
        deliver(client, url, &task, out, output, progress).await
    };
    tokio::select! {
        r = work => r,
        _ = interrupt.pressed() => {
            progress.finish();
            Err(Failure::new(
                Exit::Interrupted,
                format!(
                    "\nStopped waiting. Task {task_id} keeps running; pick it up again with:\n  gengate tasks wait {task_id}{}",
                    out.resume_hint()
                ),
            ))
        }
    }
}

async fn deliver(
    client: &Client,
    url: &str,
    task: &Generation,
    out: &Out,
    output: Output,
    progress: &Progress,
) -> Result<(), Failure> {
    if task.status != GenerationStatus::Succeeded {
        progress.finish();
        if output.json && !matches!(out, Out::Stdout) {
            output.print_json(task);
        }
        let (code, message) = task
            .error
            .as_ref()
            .map(|e| (e.code.as_str(), e.message.as_str()))
            .unwrap_or(("unknown", "no reason given"));
        let refund = if task.final_credits == 0 && task.reserved_credits > 0 {
            format!("its {} credits were refunded", task.reserved_credits)
        } else {
            format!("{} credits were charged", task.final_credits)
        };
        return Err(Failure::new(
            Exit::TaskFailed,
            format!("task {} failed: {code}: {message} ({refund})", task.id),
        ));
    }
    let Some(result) = &task.result else {
        return Err(Failure::new(
            Exit::Unreachable,
            format!(
                "error: task {} succeeded but the server sent no result",
                task.id
            ),
        ));
    };
    let media_url = result.primary_url.clone();
    let fail = |e| Failure::from_client(e, url);
    match out {
        Out::Url => {
            progress.finish();
            if output.json {
                output.print_json(task);
            } else {
                println!("{media_url}");
            }
        }
        Out::File(path) => {
            progress.start_transfer(&format!("downloading {}", path.display()), None);
            let n = client
                .download_to_path(&media_url, path, |p| progress.transfer(p))
                .await
                .map_err(fail)?;
            progress.finish();
            if output.json {
                output.print_json(task);
            } else {
                println!(
                    "{} succeeded → {} ({})",
                    task.id,
                    path.display(),
                    human_bytes(n)
                );
            }
            if !output.fancy {
                eprintln!("saved {} ({n} bytes)", path.display());
            }
        }
        Out::Stdout => {
            progress.start_transfer("downloading to stdout", None);
            let mut stdout = tokio::io::stdout();
            let n = client
                .download_to_writer(&media_url, &mut stdout, |p| progress.transfer(p))
                .await
                .map_err(fail)?;
            progress.finish();
            eprintln!("{} succeeded: wrote {n} bytes to stdout", task.id);
        }
    }
    Ok(())
}
