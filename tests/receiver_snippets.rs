//! The Python and Node.js receiver snippets of the README, run against a real
//! delivery: the README's own code, taken from its fenced blocks, is given
//! the signed request a worker sent. Skipped (with a notice on stderr that
//! the test harness does not capture) when the interpreter is missing.
#![cfg(feature = "runtime-tokio")]

mod delivery_support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use delivery_support::{ScriptedTransport, SentRequest};
use serde_json::{json, Value};
use webhook_subscriptions::model::{
    CreateWebhookSubscription, Event, Organization, OrganizationId, SecretKey, UserId,
};
use webhook_subscriptions::signature::{
    sign_timestamped, SignatureScheme, StandardWebhooksScheme, StandardWebhooksSecret,
};
use webhook_subscriptions::storage::MemoryStore;
use webhook_subscriptions::{RequestContext, Webhooks};

/// Reads stdin as `{"keys", "headers", "body" (hex)}` and prints the
/// verdict of `verify` (the snippet's function).
const PYTHON_DRIVER: &str = r#"
import json, sys
case = json.load(sys.stdin)
print(json.dumps(verify(case["keys"], case["headers"], bytes.fromhex(case["body"]))))
"#;

const NODE_DRIVER: &str = r#"
let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const c = JSON.parse(input);
  console.log(JSON.stringify(verifyWebhook(c.keys, c.headers, Buffer.from(c.body, "hex"))));
});
"#;

/// The fenced blocks of `language` in the README, in order.
fn readme_blocks(language: &str) -> Vec<&'static str> {
    let fence = format!("```{language}\n");
    include_str!("../README.md")
        .split(fence.as_str())
        .skip(1)
        .map(|rest| rest.split("```").next().expect("split yields a first part"))
        .collect()
}

/// The README's `language` block that contains `needle`.
fn readme_block(language: &str, needle: &str) -> &'static str {
    readme_blocks(language)
        .into_iter()
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("no ```{language} block with {needle} in the README"))
}

/// One request as a worker delivered it, and the subscription's secret.
async fn delivered_request(scheme: SignatureScheme) -> (SentRequest, SecretKey) {
    let webhooks = Webhooks::builder(Arc::new(MemoryStore::new()))
        .signature_scheme(scheme)
        .build()
        .unwrap();
    let ctx = RequestContext::new(OrganizationId::new_v4(), UserId::new_v4());
    let create: CreateWebhookSubscription = serde_json::from_value(json!({
        "name": "Receiver", "url": "https://receiver.example/hooks",
        "events": ["ConversationCreated"]
    }))
    .unwrap();
    let subscription = webhooks.service().create(&ctx, &create).await.unwrap();
    let transport = Arc::new(ScriptedTransport::default());
    transport.status(200);
    let worker = webhooks.worker(transport.clone()).unwrap();
    let organization = Organization::new(ctx.organization_id, "Acme");
    let event = Event::new("ConversationCreated", json!({"text": "naïve ✓", "n": 1}));
    webhooks
        .service()
        .publish(&organization, event)
        .await
        .unwrap();
    assert_eq!(worker.run_once().await.unwrap().delivered, 1);
    let request = transport.sent().pop().expect("one delivery sent");
    (request, subscription.secret_key)
}

/// Runs `program` on `script` with `input` on stdin and returns its output;
/// `None` (after a notice) when the interpreter is not installed.
fn run(program: &str, extension: &str, script: &str, input: &str) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("wh-snippet-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("verify.{extension}"));
    std::fs::write(&path, script).unwrap();
    let child = Command::new(program)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Written past the harness's capture, so the skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "skipping the README's {program} snippet: {program} is not installed"
            );
            return None;
        }
        Err(e) => panic!("{program}: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8(output.stdout).expect("UTF-8 output"))
}

/// Checks a snippet against a delivery signed with `scheme`, whose signature
/// is in `signature_header`: the right key (alone or among others)
/// verifies; a wrong key, a tampered body or an empty signature does not.
async fn check_snippet(
    program: &str,
    extension: &str,
    script: String,
    scheme: SignatureScheme,
    signature_header: &str,
) {
    let (request, secret) = delivered_request(scheme).await;
    let headers: serde_json::Map<String, Value> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), json!(value.to_str().unwrap())))
        .collect();
    let body = &request.body;
    let other = SecretKey::generate().unwrap().to_hex();
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut tampered = body.to_vec();
    tampered[1] ^= 1;
    assert!(headers.contains_key(signature_header), "{headers:?}");
    let mut unsigned = headers.clone();
    unsigned.insert(signature_header.to_owned(), json!(""));

    let cases = [
        (
            "the subscription's key",
            vec![secret.to_hex()],
            &headers,
            hex(body),
            true,
        ),
        (
            "old and new key while rotating",
            vec![other.clone(), secret.to_hex()],
            &headers,
            hex(body),
            true,
        ),
        ("another key", vec![other], &headers, hex(body), false),
        (
            "a tampered body",
            vec![secret.to_hex()],
            &headers,
            hex(&tampered),
            false,
        ),
        (
            "an empty signature",
            vec![secret.to_hex()],
            &unsigned,
            hex(body),
            false,
        ),
    ];
    for (what, keys, headers, body, expected) in cases {
        let case = json!({"keys": keys, "headers": headers, "body": body});
        let Some(output) = run(program, extension, &script, &case.to_string()) else {
            return;
        };
        let verdict: Value = serde_json::from_str(&output).unwrap();
        assert_eq!(verdict, json!(expected), "{program} with {what}");
    }
}

#[tokio::test]
async fn the_readme_python_snippet_verifies_real_deliveries() {
    let snippet = readme_block("python", "def verify_webhook(");
    let script = format!("{snippet}\nverify = verify_webhook\n{PYTHON_DRIVER}");
    let scheme = SignatureScheme::default();
    check_snippet("python3", "py", script, scheme, "x-webhook-signature").await;
}

#[tokio::test]
async fn the_readme_standard_webhooks_python_snippet_verifies_real_deliveries() {
    let snippet = readme_block("python", "def verify_standard_webhook(");
    let script = format!("{snippet}\nverify = verify_standard_webhook\n{PYTHON_DRIVER}");
    let scheme = SignatureScheme::from(StandardWebhooksScheme::default());
    check_snippet("python3", "py", script, scheme, "webhook-signature").await;
}

#[tokio::test]
async fn the_readme_node_snippet_verifies_real_deliveries() {
    let script = readme_block("js", "function verifyWebhook(").to_owned() + NODE_DRIVER;
    let scheme = SignatureScheme::default();
    check_snippet("node", "js", script, scheme, "x-webhook-signature").await;
}

#[test]
fn the_readme_whsec_snippet_gives_the_standard_webhooks_secret() {
    let key = SecretKey::generate().unwrap();
    let snippet = readme_block("python", "def whsec(");
    let script = format!("{snippet}\nimport sys\nprint(whsec(sys.stdin.read().strip()))\n");
    let Some(output) = run("python3", "py", &script, &key.to_hex()) else {
        return;
    };
    assert_eq!(output.trim(), StandardWebhooksSecret::from(&key).to_whsec());
}

#[test]
fn the_readme_worked_example_is_what_the_crate_signs() {
    let header = readme_blocks("text")
        .into_iter()
        .find_map(|block| block.trim().strip_prefix("X-Webhook-Signature: "))
        .expect("the README's example signature header");
    let key = SecretKey::from_hex(&format!("{}ff", "00".repeat(31))).unwrap();
    assert_eq!(
        header,
        sign_timestamped(key.as_bytes(), 1_748_264_463_123, b"{}")
    );
}
