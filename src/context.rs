//! Who is acting: the organization (tenant) and the user, supplied by the host.

use serde::{Deserialize, Serialize};

use crate::model::{OrganizationId, UserId};

/// The organization and user a request acts for, taken from the host's own
/// authentication. Every operation is scoped to `organization_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestContext {
    /// The tenant whose subscriptions are read or changed.
    pub organization_id: OrganizationId,
    /// The acting user, stamped into `createdBy` / `updatedBy`.
    pub user_id: UserId,
}

impl RequestContext {
    /// A context for `user_id` acting in `organization_id`.
    pub fn new(organization_id: OrganizationId, user_id: UserId) -> Self {
        Self {
            organization_id,
            user_id,
        }
    }
}
