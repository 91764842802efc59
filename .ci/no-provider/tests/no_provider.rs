//! With `http-client-no-provider` alone and no rustls provider installed, building the
//! transport is an error, not the panic reqwest would raise.

use webhook_subscriptions::transport::HttpTransport;
use webhook_subscriptions::Error;

#[test]
fn build_without_a_crypto_provider_is_an_error() {
    let err = HttpTransport::builder().build().unwrap_err();

    assert!(
        matches!(&err, Error::InvalidConfiguration(message) if message.contains("no rustls crypto provider installed")),
        "{err:?}"
    );
}
