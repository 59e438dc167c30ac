//! `gengate tasks list | get | wait`.

use super::exit::Failure;
use super::progress::Progress;
use super::wait::{Interrupt, Out, wait_and_deliver};
use super::{Connection, Output};
use futures_util::StreamExt;
use gengate_client::{Generation, GenerationStatus, ListGenerations};

/// `gengate tasks …`.
#[derive(clap::Subcommand, Debug)]
pub enum TasksCmd {
    /// The account's tasks, newest first.
    List {
        /// Only tasks in this status (queued, processing, succeeded, failed).
        #[arg(long, value_parser = parse_status)]
        status: Option<GenerationStatus>,
        /// How many (pages are fetched as needed).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// One task.
    Get {
        /// The task id (`task_…`).
        id: String,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Wait until a task ends, then download (`--out`) or print its result.
    Wait {
        /// The task id (`task_…`).
        id: String,
        /// Download the result to FILE (`-` for stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
        /// The final task as JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

fn parse_status(s: &str) -> Result<GenerationStatus, String> {
    match serde_json::from_value::<GenerationStatus>(serde_json::Value::String(s.to_owned())) {
        Ok(GenerationStatus::Unknown) | Err(_) => Err(format!(
            "{s:?} is not a status (queued, processing, succeeded, failed)"
        )),
        Ok(st) => Ok(st),
    }
}

fn row(t: &Generation) -> String {
    let detail = match (&t.result, &t.error) {
        (_, Some(e)) => e.code.clone(),
        (Some(r), _) => r
            .media
            .first()
            .map(|m| {
                format!(
                    "{}x{} {}s",
                    m.width.unwrap_or(0),
                    m.height.unwrap_or(0),
                    m.duration_seconds.unwrap_or(0.0)
                )
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    format!(
        "{}\t{:<10}\t{}\t{}\t{} credits\t{}",
        t.id, t.status, t.model, t.created_at, t.reserved_credits, detail
    )
}

pub async fn run(cmd: TasksCmd) -> Result<(), Failure> {
    match cmd {
        TasksCmd::List {
            status,
            limit,
            json,
            conn,
        } => {
            let client = conn.client(true)?;
            let output = Output::new(json);
            let q = ListGenerations {
                limit: Some(limit.clamp(1, 100) as u32),
                status,
                ..Default::default()
            };
            let mut stream = std::pin::pin!(client.generations().list_all(q).take(limit));
            let mut all = Vec::new();
            while let Some(t) = stream.next().await {
                let t = t.map_err(|e| Failure::from_client(e, &conn.url))?;
                if !output.json {
                    println!("{}", row(&t));
                }
                all.push(t);
            }
            if output.json {
                output.print_json(&all);
            } else if all.is_empty() {
                eprintln!("no tasks");
            }
            Ok(())
        }
        TasksCmd::Get { id, json, conn } => {
            let client = conn.client(true)?;
            let t = client
                .generations()
                .get(&id)
                .await
                .map_err(|e| Failure::from_client(e, &conn.url))?;
            let output = Output::new(json);
            if output.json {
                output.print_json(&t);
            } else {
                println!("{}", row(&t));
                if let Some(r) = &t.result {
                    println!("{}", r.primary_url);
                }
                if let Some(e) = &t.error {
                    println!("{}: {}", e.code, e.message);
                }
            }
            Ok(())
        }
        TasksCmd::Wait {
            id,
            out,
            json,
            conn,
        } => {
            let client = conn.client(true)?;
            let output = Output::new(json);
            let progress = Progress::new(output.fancy);
            wait_and_deliver(
                &client,
                &conn.url,
                &id,
                &Out::from_arg(out.as_deref()),
                output,
                &progress,
                Interrupt::listen(),
            )
            .await
        }
    }
}
