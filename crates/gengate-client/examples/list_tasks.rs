//! Every failed task of the account, fetched page by page as a stream.
//!
//! ```sh
//! GENGATE_API_KEY=gg_live_… cargo run -p gengate-client --example list_tasks
//! ```

use futures_util::StreamExt;
use gengate_client::{Client, GenerationStatus, ListGenerations};

#[tokio::main]
async fn main() -> gengate_client::Result<()> {
    let client = Client::from_env()?;
    let query = ListGenerations {
        status: Some(GenerationStatus::Failed),
        limit: Some(50),
        ..Default::default()
    };
    let mut tasks = std::pin::pin!(client.generations().list_all(query));
    while let Some(task) = tasks.next().await {
        let task = task?;
        let code = task.error.map(|e| e.code).unwrap_or_default();
        println!("{}\t{}\t{code}", task.id, task.created_at);
    }
    println!("{} credits left", client.credits().await?.current_credits);
    Ok(())
}
