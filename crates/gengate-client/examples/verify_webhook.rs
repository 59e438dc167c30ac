//! Checks a webhook delivery: the body on stdin, the three Standard Webhooks
//! headers as arguments. A receiver does the same with its framework's
//! headers and the raw body, before parsing it.
//!
//! ```sh
//! cargo run -p gengate-client --example verify_webhook -- \
//!   whsec_… msg_… 1614265330 'v1,…' < body.json
//! ```

use reqwest::header::{HeaderMap, HeaderValue};
use std::io::Read;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [secret, id, timestamp, signature] = args.as_slice() else {
        eprintln!(
            "usage: verify_webhook SECRET WEBHOOK_ID WEBHOOK_TIMESTAMP WEBHOOK_SIGNATURE < body"
        );
        std::process::exit(2);
    };
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body)?;
    let mut headers = HeaderMap::new();
    headers.insert("webhook-id", HeaderValue::from_str(id)?);
    headers.insert("webhook-timestamp", HeaderValue::from_str(timestamp)?);
    headers.insert("webhook-signature", HeaderValue::from_str(signature)?);
    match gengate_client::verify_webhook(secret, &headers, &body) {
        Ok(()) => println!("valid"),
        Err(e) => {
            println!("refused: {e}");
            std::process::exit(1);
        }
    }
    Ok(())
}
