//! Submit a generation, wait for it with progress, download the video.
//!
//! ```sh
//! GENGATE_URL=http://127.0.0.1:8080 GENGATE_API_KEY=gg_live_… \
//!   cargo run -p gengate-client --example generate -- "A lighthouse at dusk" out.mp4
//! ```

use gengate_client::{Client, CreateGeneration, GenerationStatus, WaitOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let prompt = args.next().unwrap_or_else(|| "A lighthouse at dusk".into());
    let out = args.next().unwrap_or_else(|| "out.mp4".into());

    let client = Client::from_env()?;
    let model = client.models().get("kling-3-0").await?;
    let req = CreateGeneration::new(&model.id, prompt)
        .param("mode", "std")
        .param("duration", "5");
    // Check against the catalog first: nothing is sent or charged if it fails.
    if let Err(problems) = model.check(&req.prompt, &req.params, 0) {
        for p in problems {
            eprintln!("{}: {}", p.field, p.message);
        }
        std::process::exit(2);
    }
    let task = client.generations().create(&req).await?;
    let done = client
        .generations()
        .wait_with(&task.id, &WaitOptions::default(), |t| {
            eprintln!("{} {}", t.id, t.status)
        })
        .await?;
    match (done.status, done.result, done.error) {
        (GenerationStatus::Succeeded, Some(result), _) => {
            let n = client
                .download_to_path(&result.primary_url, &out, |p| {
                    eprint!("\r{} / {:?} bytes", p.done, p.total)
                })
                .await?;
            eprintln!("\nsaved {out} ({n} bytes)");
        }
        (_, _, Some(e)) => {
            eprintln!("failed: {}: {} (credits refunded)", e.code, e.message);
            std::process::exit(1);
        }
        _ => eprintln!("ended without a result"),
    }
    Ok(())
}
