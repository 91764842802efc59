//! The list of checks, written once, and [`conformance_tests!`], which
//! turns it into one test per check.
//!
//! [`__conformance_checks!`](crate::__conformance_checks) holds the list;
//! [`run_all`](super::run_all) and [`conformance_tests!`] both expand it
//! through a callback macro, so a new check is one new line there (and one
//! row in the table of the [module docs](super), which a unit test keeps in
//! step with the list).

use std::future::Future;
use std::sync::Arc;

use crate::storage::Storage;

/// One check's store, and what to undo after the check: the `fixture` form
/// of [`conformance_tests!`](crate::conformance_tests).
///
/// A fixture fits a backend whose stores need setting up and tearing down
/// per check, like a database schema per check:
///
/// ```
/// use std::sync::Arc;
///
/// use webhook_subscriptions::storage::{MemoryStore, Storage};
/// use webhook_subscriptions::testing::Fixture;
///
/// /// One check's store, and what to clean up after it.
/// struct Checked {
///     check: &'static str,
///     store: Arc<MemoryStore>,
/// }
///
/// impl Fixture for Checked {
///     fn store(&self) -> Arc<dyn Storage> {
///         self.store.clone()
///     }
///
///     async fn teardown(self) {
///         // A database backend drops the check's schema here.
///         println!("{} passed", self.check);
///     }
/// }
///
/// /// A fresh store for `check` (a database backend creates a schema
/// /// named after it); `None` would skip the check.
/// async fn checked(check: &'static str) -> Option<Checked> {
///     let store = Arc::new(MemoryStore::new());
///     Some(Checked { check, store })
/// }
///
/// webhook_subscriptions::conformance_tests! {
///     fixture: checked,
/// }
/// # fn main() {}
/// ```
pub trait Fixture: Sized {
    /// The store the check runs against. Called once per check; the check
    /// drops it before [`teardown`](Fixture::teardown).
    fn store(&self) -> Arc<dyn Storage>;

    /// Undoes what the fixture set up (drops a schema, closes a pool).
    /// Awaited after the check passed; a failed check panics before it, so
    /// what it left stays for inspection. Does nothing unless implemented.
    fn teardown(self) -> impl Future<Output = ()> {
        async {}
    }
}

/// The checks of the suite, in the order of the table in the
/// [module docs](crate::testing), for [`run_all`](crate::testing::run_all)
/// and [`conformance_tests!`](crate::conformance_tests). Not an API.
///
/// `__conformance_checks!([callback] prefix…)` expands to
/// `callback! { prefix… group kind check, … }` with one `group kind check,`
/// per check:
///
/// - `group`: `core`, or the group of checks a backend can skip with
///   `skip: [group]` (see [`__conformance_group!`](crate::__conformance_group));
/// - `kind`: how the check takes its store: `plain` (`&dyn Storage`) or
///   `shared` (`Arc<dyn Storage>`; it spawns tasks, so its test runs on a
///   multi-thread runtime);
/// - `check`: the check's name in [`testing`](crate::testing).
///
/// A new check is one new line here and one new row in the module docs' table.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    ([$($callback:tt)*] $($prefix:tt)*) => {
        $($callback)*! {
            $($prefix)*
            core plain insert_and_get,
            core plain list_oldest_first,
            core plain update_applies_change,
            core plain delete_removes_subscription,
            concurrency shared concurrent_updates_all_survive,
            core plain organizations_are_isolated,
            core plain logs_and_failures_are_isolated,
            core plain enqueue_stays_in_organization,
            core plain enqueue_targets_enabled_subscribers,
            core plain enqueue_follows_the_fan_out_rule,
            core plain enqueue_deliveries_persists_the_chosen_targets,
            core plain duplicate_event_id_enqueues_nothing,
            core plain claim_respects_due_time_and_limit,
            core plain lease_blocks_other_claimers_until_expiry,
            core plain stale_lease_cannot_overwrite,
            concurrency shared concurrent_claimers_share_nothing,
            core plain claim_caps_in_flight_per_subscription,
            core plain claim_takes_turns_across_organizations,
            concurrency shared concurrent_claimers_respect_the_cap,
            core plain prune_drops_old_failures_and_logs,
            core plain retry_reschedules,
            core plain complete_removes_delivery,
            core plain fail_keeps_delivery_for_redelivery,
            core plain fail_and_disable_disables_subscription,
            core plain release_makes_delivery_claimable_at_once,
            core plain delete_cancels_deliveries_and_logs,
            core plain attempt_log_newest_first_and_capped,
            core plain latest_statuses_per_event,
            core plain payload_bytes_are_preserved,
            core plain queue_stats_report_due_deliveries,
            core plain rotation_keeps_the_previous_secret,
            core plain redeliver_failed_picks_one_or_since,
            core plain enqueue_for_subscription_reaches_one_subscription,
            core plain breaker_pauses_a_failing_endpoint,
            core plain breaker_counts_only_failures_in_a_row,
            core plain breaker_disables_after_the_window,
            core plain changing_the_endpoint_closes_its_circuit,
        }
    };
}

/// The groups of checks: `__conformance_group!(group [skipped…] { items })`
/// expands to `items` unless `group` is among the skipped groups;
/// `__conformance_group!(@known group)` refuses a group a backend cannot
/// skip. Not an API.
///
/// `core` checks always run. A new skippable group is one block of four
/// rules like the one of `concurrency`, and a line in the docs of
/// [`conformance_tests!`](crate::conformance_tests).
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_group {
    (core [$($skip:ident)*] { $($item:tt)* }) => { $($item)* };

    // `concurrency`: the checks racing several tasks on one store.
    (@known concurrency) => {};
    (concurrency [] { $($item:tt)* }) => { $($item)* };
    (concurrency [concurrency $($skip:ident)*] { $($item:tt)* }) => {};
    (concurrency [$other:ident $($skip:ident)*] { $($item:tt)* }) => {
        $crate::__conformance_group! { concurrency [$($skip)*] { $($item)* } }
    };

    (@known $other:ident) => {
        ::core::compile_error!(::core::concat!(
            "conformance_tests!: no group `",
            ::core::stringify!($other),
            "` to skip (the groups are: concurrency)"
        ));
    };
}

/// The workings of [`conformance_tests!`](crate::conformance_tests). Not an API.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    // From `conformance_tests!`: refuse unknown groups, then read the list.
    (@start $mode:ident $make:tt $attrs:tt [$($skip:ident)*]) => {
        $( $crate::__conformance_group!(@known $skip); )*
        $crate::__conformance_checks!(
            [$crate::__conformance_tests] @tests { $mode $make $attrs [$($skip)*] }
        );
    };

    // From the list: one test per check whose group is not skipped.
    (@tests $config:tt $($group:ident $kind:ident $check:ident,)*) => {
        $( $crate::__conformance_tests!(@filter $config $group $kind $check); )*
    };
    (@filter { $mode:ident $make:tt $attrs:tt [$($skip:ident)*] } $group:ident $kind:ident $check:ident) => {
        $crate::__conformance_group! { $group [$($skip)*] {
            $crate::__conformance_tests!(@test $mode $make $attrs $kind $check);
        } }
    };

    (@test store ($make:expr) [$($attr:tt)*] plain $check:ident) => {
        #[::tokio::test]
        $($attr)*
        async fn $check() {
            let store = ($make)().await;
            $crate::testing::$check(&store).await;
        }
    };
    (@test store ($make:expr) [$($attr:tt)*] shared $check:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $($attr)*
        async fn $check() {
            let store = ($make)().await;
            $crate::testing::$check(::std::sync::Arc::new(store)).await;
        }
    };
    (@test fixture ($make:expr) [$($attr:tt)*] plain $check:ident) => {
        #[::tokio::test]
        $($attr)*
        async fn $check() {
            let ::core::option::Option::Some(fixture) = ($make)(::core::stringify!($check)).await
            else {
                return;
            };
            let store = $crate::testing::Fixture::store(&fixture);
            $crate::testing::$check(&*store).await;
            ::core::mem::drop(store);
            $crate::testing::Fixture::teardown(fixture).await;
        }
    };
    (@test fixture ($make:expr) [$($attr:tt)*] shared $check:ident) => {
        #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
        $($attr)*
        async fn $check() {
            let ::core::option::Option::Some(fixture) = ($make)(::core::stringify!($check)).await
            else {
                return;
            };
            $crate::testing::$check($crate::testing::Fixture::store(&fixture)).await;
            $crate::testing::Fixture::teardown(fixture).await;
        }
    };
}

/// Generates the storage conformance suite as tests: one `#[tokio::test]`
/// per check of [`testing`](crate::testing), named after the check, each on
/// a fresh store. Feature `testing`.
///
/// Invoke it once in a test file (or a module of its own: the tests take
/// the checks' names), with the store factory, in one of two forms:
///
/// ```
/// use webhook_subscriptions::storage::MemoryStore;
///
/// /// A fresh, empty store (any `Fn() -> impl Future<Output = S>` where
/// /// `S: Storage + 'static`; a closure works too).
/// async fn make_store() -> MemoryStore {
///     MemoryStore::new()
/// }
///
/// // Short for `conformance_tests! { store: make_store }`.
/// webhook_subscriptions::conformance_tests!(make_store);
/// # fn main() {}
/// ```
///
/// or, when each check needs set-up and tear-down of its own (a database
/// schema), with a [`Fixture`](crate::testing::Fixture):
///
/// ```text
/// webhook_subscriptions::conformance_tests! {
///     // Required, one of:
///     store: make_store,       // async fn make_store() -> S
///     fixture: make_fixture,   // async fn make_fixture(check: &'static str) -> Option<F>
///     // Optional, in this order:
///     attributes: [#[cfg_attr(no_database, ignore = "needs a database")]],
///     skip: [concurrency],
/// }
/// ```
///
/// - `store:` an expression callable as `make_store()` whose future gives a
///   fresh, empty store (`S: Storage + 'static`); nothing is torn down
///   beyond dropping the store;
/// - `fixture:` an expression callable as `make_fixture(check)`, `check`
///   being the check's name (for naming a schema or database), whose future
///   gives `Option<F>` with `F:` [`Fixture`](crate::testing::Fixture): the
///   check runs on [`F::store`](crate::testing::Fixture::store), then
///   [`F::teardown`](crate::testing::Fixture::teardown) is awaited. `None`
///   skips the check (it passes): return it, after a notice, when the
///   backend's service is not configured, and mark the tests ignored in
///   that case with `attributes`;
/// - `attributes:` attributes added to every generated test, after the
///   `#[tokio::test]` one (`#[ignore]`, `#[cfg_attr(…)]`, …);
/// - `skip:` groups of checks the backend cannot support, left out
///   entirely. The groups:
///   - `concurrency`: the checks racing several tasks on one store
///     (concurrent updates, concurrent claimers, the in-flight cap across
///     claimers), for a backend that serializes all access.
///
///   Every other check always runs. The backends of this crate skip nothing.
///
/// The checks taking an `Arc<dyn Storage>` (they spawn tasks) run on a
/// multi-thread runtime with 4 worker threads; the others on the default
/// current-thread runtime. The test crate needs `tokio` with the `macros`
/// and `rt-multi-thread` features (as a dev-dependency).
///
/// **Stability:** the suite's exact checks are not a stable API: minor
/// releases may add checks, and so generated tests (and groups to skip).
#[macro_export]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
macro_rules! conformance_tests {
    (
        store: $make:expr
        $(, attributes: [$(#[$attr:meta])*])?
        $(, skip: [$($skip:ident),* $(,)?])?
        $(,)?
    ) => {
        $crate::__conformance_tests!(
            @start store ($make) [$($(#[$attr])*)?] [$($($skip)*)?]
        );
    };
    (
        fixture: $make:expr
        $(, attributes: [$(#[$attr:meta])*])?
        $(, skip: [$($skip:ident),* $(,)?])?
        $(,)?
    ) => {
        $crate::__conformance_tests!(
            @start fixture ($make) [$($(#[$attr])*)?] [$($($skip)*)?]
        );
    };
    ($make:expr $(,)?) => {
        $crate::conformance_tests! { store: $make }
    };
}
