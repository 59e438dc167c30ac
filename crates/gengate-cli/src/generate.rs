//! `gengate generate PROMPT …`: check against the catalog, upload
//! references, create (one idempotency key), wait, download.

use super::exit::{Exit, Failure};
use super::params::{self, Requested};
use super::progress::Progress;
use super::wait::{Interrupt, Out, wait_and_deliver};
use super::{Connection, Output};
use gengate_client::{CreateGeneration, ErrorCode, Upload};
use serde_json::Value;

/// `gengate generate`.
#[derive(clap::Args, Debug)]
pub struct GenerateArgs {
    /// What to generate.
    pub prompt: String,
    /// A model id of the server's catalog (`gengate models`).
    #[arg(long, default_value = "kling-3-0")]
    pub model: String,
    /// The model's `mode` param (kling-3-0: std | pro).
    #[arg(long)]
    pub mode: Option<String>,
    /// The model's `duration` param in seconds.
    #[arg(long)]
    pub duration: Option<String>,
    /// The model's `aspect_ratio` param (kling-3-0: 16:9 | 9:16 | 1:1).
    #[arg(long)]
    pub aspect_ratio: Option<String>,
    /// Sets the model's `sound` param to true.
    #[arg(long)]
    pub sound: bool,
    /// Sets the model's `multi_shots` param to true.
    #[arg(long)]
    pub multi_shots: bool,
    /// The model's `negative_prompt` param, for models that have one.
    #[arg(long)]
    pub negative_prompt: Option<String>,
    /// Any param of the model, as key=value (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = params::parse_kv)]
    pub params: Vec<(String, String)>,
    /// A reference file, uploaded through the Files API (repeatable, in order).
    #[arg(long = "ref", value_name = "FILE")]
    pub refs: Vec<std::path::PathBuf>,
    /// Download the result to FILE (`-` for stdout); without it the URL is printed.
    #[arg(long, value_name = "FILE")]
    pub out: Option<String>,
    /// Print the task id and return without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// The final task as JSON on stdout; progress lines on stderr.
    #[arg(long)]
    pub json: bool,
    /// Your own Idempotency-Key (default: a fresh one for this command).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Echoed back on the task; filter lists by it.
    #[arg(long)]
    pub client_request_id: Option<String>,
    #[command(flatten)]
    pub conn: Connection,
}

impl GenerateArgs {
    fn requested(&self) -> Vec<Requested> {
        let mut r = Vec::new();
        let mut add = |key: &str, value: &str, flag: String| {
            r.push(Requested {
                key: key.to_owned(),
                value: Value::String(value.to_owned()),
                flag,
            })
        };
        if let Some(v) = &self.mode {
            add("mode", v, format!("--mode {v}"));
        }
        if let Some(v) = &self.duration {
            add("duration", v, format!("--duration {v}"));
        }
        if let Some(v) = &self.aspect_ratio {
            add("aspect_ratio", v, format!("--aspect-ratio {v}"));
        }
        if self.sound {
            add("sound", "true", "--sound".into());
        }
        if self.multi_shots {
            add("multi_shots", "true", "--multi-shots".into());
        }
        if let Some(v) = &self.negative_prompt {
            add("negative_prompt", v, "--negative-prompt".into());
        }
        for (k, v) in &self.params {
            add(k, v, format!("--param {k}={v}"));
        }
        r
    }
}

pub async fn run(args: GenerateArgs) -> Result<(), Failure> {
    let url = args.conn.url.clone();
    let client = args.conn.client(true)?;
    let fail = |e| Failure::from_client(e, &url);
    let output = Output::new(args.json);
    let out = Out::from_arg(args.out.as_deref());

    // 1. Everything is checked against the catalog before anything is sent.
    let model = match client.models().get(&args.model).await {
        Ok(m) => m,
        Err(e) if e.api().is_some_and(|a| a.code == ErrorCode::NotFound) => {
            return Err(Failure::usage(format!(
                "the server has no model {:?}; `gengate models` lists them",
                args.model
            )));
        }
        Err(e) => return Err(fail(e)),
    };
    let (raw, mut problems) = params::build(&model, &args.requested());
    let mut refs = Vec::new();
    for path in &args.refs {
        let upload = Upload::from_path(path)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        refs.push((path.display().to_string(), upload.model(model.id.clone())));
    }
    problems.extend(params::check_refs(&model, &refs));
    let checked = model.check(&args.prompt, &raw, refs.len());
    let checked = match checked {
        Ok(p) if problems.is_empty() => p,
        Ok(_) => {
            return Err(Failure::new(
                Exit::Usage,
                params::describe(&model, &problems),
            ));
        }
        Err(more) => {
            problems.extend(more);
            return Err(Failure::new(
                Exit::Usage,
                params::describe(&model, &problems),
            ));
        }
    };

    // A result that cannot be saved must not be paid for.
    if let Out::File(path) = &out {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(Failure::usage(format!(
                "--out {}: the directory {} does not exist; nothing was sent",
                path.display(),
                dir.display()
            )));
        }
    }

    let progress = Progress::new(output.fancy);
    let mut req = CreateGeneration::new(&model.id, &args.prompt);
    req.params = checked;
    req.client_request_id = args.client_request_id.clone();

    // 2. References go through the Files API; the task names them by URL.
    for (name, upload) in refs {
        progress.start_transfer(&format!("uploading {name}"), Some(upload.len()));
        let file = client
            .files()
            .upload(upload.on_progress(progress.upload_callback()))
            .await
            .map_err(fail)?;
        if !output.fancy {
            eprintln!("uploaded {name} as {}", file.id);
        }
        req = req.reference(&file);
    }

    // 3. Create: one idempotency key for this command and all its retries.
    let key = args
        .idempotency_key
        .clone()
        .unwrap_or_else(gengate_client::new_idempotency_key);
    progress.line("submitting");
    let task = client
        .generations()
        .create_with_key(&req, &key)
        .await
        .map_err(|e| match e.api() {
            Some(a) if a.code == ErrorCode::ValidationFailed => {
                Failure::new(Exit::Usage, params::describe(&model, &a.details))
            }
            _ => fail(e),
        })?;
    // Before the first status line, which tells the user the task exists.
    let interrupt = Interrupt::listen();
    progress.status(&task);
    if args.no_wait {
        progress.finish();
        if output.json {
            output.print_json(&task);
        } else {
            println!("{}", task.id);
        }
        if !output.fancy {
            eprintln!(
                "{} {}; wait for it with: gengate tasks wait {}",
                task.id, task.status, task.id
            );
        }
        return Ok(());
    }
    wait_and_deliver(&client, &url, &task.id, &out, output, &progress, interrupt).await
}
