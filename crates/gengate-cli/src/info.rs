//! `gengate models`, `gengate credits` (the API user's balance) and
//! `gengate files upload`.

use super::exit::Failure;
use super::progress::Progress;
use super::{Connection, Output};
use gengate_client::{FileKind, Upload};

/// `gengate models [ID]`.
#[derive(clap::Args, Debug)]
pub struct ModelsArgs {
    /// Show one model's parameters.
    pub id: Option<String>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub conn: Connection,
}

pub async fn models(args: ModelsArgs) -> Result<(), Failure> {
    let client = args.conn.client(false)?;
    let fail = |e| Failure::from_client(e, &args.conn.url);
    let output = Output::new(args.json);
    let models = match &args.id {
        Some(id) => vec![client.models().get(id).await.map_err(fail)?],
        None => client.models().list().await.map_err(fail)?,
    };
    if output.json {
        match &args.id {
            Some(_) => output.print_json(&models[0]),
            None => output.print_json(&models),
        }
        return Ok(());
    }
    for m in &models {
        println!(
            "{}\t{}\t{}\t{} credits\t{}",
            m.id,
            m.display_name,
            m.category,
            m.base_credits,
            m.supported_modes.join(", ")
        );
        for p in &m.params {
            let values = if p.is_boolean() {
                format!("switch --{}", p.key.replace('_', "-"))
            } else if !p.options.is_empty() {
                p.option_strings().join(" | ")
            } else {
                format!("{:?}", p.kind).to_lowercase()
            };
            let default = p
                .default
                .as_ref()
                .map(|d| {
                    format!(
                        " (default {})",
                        d.as_str().map_or(d.to_string(), str::to_owned)
                    )
                })
                .unwrap_or_default();
            println!("  {:<14} {values}{default}  {}", p.key, p.description);
        }
        if let Some(r) = &m.reference_media {
            println!(
                "  --ref FILE      up to {} {} file(s)",
                r.max_files,
                r.kinds.join("/")
            );
        }
    }
    Ok(())
}

/// `gengate credits` without a subcommand.
pub async fn credits(conn: Connection, json: bool) -> Result<(), Failure> {
    let client = conn.client(true)?;
    let b = client
        .credits()
        .await
        .map_err(|e| Failure::from_client(e, &conn.url))?;
    let output = Output::new(json);
    if output.json {
        output.print_json(&b);
    } else {
        println!("{} credits", b.current_credits);
    }
    Ok(())
}

/// `gengate files …`.
#[derive(clap::Subcommand, Debug)]
pub enum FilesCmd {
    /// Upload a reference file; prints the File object.
    Upload {
        /// The file.
        path: std::path::PathBuf,
        /// image, video or audio (default: decided from the bytes).
        #[arg(long)]
        kind: Option<String>,
        /// Apply this model's reference rules.
        #[arg(long)]
        model: Option<String>,
        /// JSON on stdout.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: Connection,
    },
}

pub async fn files(cmd: FilesCmd) -> Result<(), Failure> {
    let FilesCmd::Upload {
        path,
        kind,
        model,
        json,
        conn,
    } = cmd;
    let client = conn.client(true)?;
    let mut upload = Upload::from_path(&path)
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    if let Some(k) = kind {
        let k: FileKind = k
            .parse()
            .map_err(|e: gengate_client::Error| Failure::usage(e.to_string()))?;
        upload = upload.kind(k);
    }
    if let Some(m) = model {
        upload = upload.model(m);
    }
    let output = Output::new(json);
    let progress = Progress::new(output.fancy);
    progress.start_transfer(&format!("uploading {}", path.display()), Some(upload.len()));
    let f = client
        .files()
        .upload(upload.on_progress(progress.upload_callback()))
        .await
        .map_err(|e| Failure::from_client(e, &conn.url))?;
    progress.finish();
    if output.json {
        output.print_json(&f);
    } else {
        println!(
            "{}\t{}\t{}\t{} bytes\t{}",
            f.id, f.kind, f.mime_type, f.size_bytes, f.url
        );
    }
    Ok(())
}
