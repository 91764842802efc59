//! Manual redelivery of a delivery that ran out of attempts.

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::model::{DeliveryId, OrganizationId};
use crate::storage::Storage;

/// Puts a failed delivery of `organization` back in the queue, due now and
/// with a fresh attempt count; workers pick it up as usual.
///
/// A delivery that does not exist, is not failed, or belongs to another
/// organization is [`Error::NotFound`].
pub async fn redeliver(
    storage: &dyn Storage,
    clock: &dyn Clock,
    organization: OrganizationId,
    delivery: DeliveryId,
) -> Result<()> {
    if storage
        .redeliver(organization, delivery, clock.now())
        .await?
    {
        Ok(())
    } else {
        Err(Error::NotFound(format!("failed delivery {delivery}")))
    }
}
