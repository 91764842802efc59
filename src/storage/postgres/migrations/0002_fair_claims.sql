-- Fair claims. Each subscription is a lane: its claimable rows (pending, or
-- leased with `available_at` = lease expiry) in due order, found without
-- scanning other lanes' backlogs; and its live leases, counted against the
-- per-subscription in-flight cap.
CREATE INDEX deliveries_lane ON deliveries (org, sub_id, available_at) WHERE state < 2;
CREATE INDEX deliveries_in_flight ON deliveries (org, sub_id, available_at) WHERE state = 1;
