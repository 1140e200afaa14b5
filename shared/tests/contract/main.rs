//! The contract suite: every port test is written once, generic over a backend,
//! and instantiated here for each backend, so the output lists
//! `embedded::store::…` and `aws::store::…` side by side.
//!
//! The AWS half needs the endpoint the README's test command starts (moto) in
//! `AWS_ENDPOINT_URL`; without it those tests fail, they never skip.

mod blobs;
mod jobs;
mod store;
mod support;

/// One `#[tokio::test]` per listed test of `$suite`, run for `super::Backend`.
macro_rules! suite {
    ($suite:ident: $($test:ident),* $(,)?) => {
        pub mod $suite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::$suite::$test::<super::Backend>().await
                }
            )*
        }
    };
}

/// Every suite for one backend, in module `$name`.
macro_rules! backend {
    ($name:ident, $backend:ty) => {
        mod $name {
            type Backend = $backend;

            suite!(store:
                put_then_get_round_trips_nested_attributes,
                get_of_a_missing_item_is_none,
                put_replaces_the_whole_item,
                not_exists_passes_once_then_fails,
                exists_fails_on_a_missing_item_and_passes_on_a_present_one,
                version_condition_passes_on_a_match_only,
                transact_is_all_or_nothing,
                transact_reports_the_first_failing_write,
                check_guards_a_write_without_changing_its_item,
                two_writes_to_one_key_are_invalid,
                at_most_25_writes_fit_in_a_transaction,
                non_integer_numbers_are_invalid,
                delete_removes_an_item_and_tolerates_a_missing_one,
                expired_items_read_as_absent,
                table_queries_read_one_partition_in_sort_order,
                pagination_returns_every_item_once_in_order,
                gsi1_queries_order_by_the_index_sort_key,
                gsi2_queries_read_their_own_keys,
                every_index_reads_only_its_own_keys,
                sort_ranges_bound_a_query_in_both_directions,
                items_without_index_keys_stay_out_of_the_index,
                invalid_queries_are_rejected,
                twenty_concurrent_creates_of_one_key_let_exactly_one_win,
                twenty_concurrent_registrations_let_exactly_one_win,
                ping_answers,
                increment_counts_from_one_and_sets_the_expiry,
                twenty_concurrent_increments_each_see_a_distinct_value,
                adjust_adds_under_guards_and_leaves_the_rest,
                an_at_most_guard_keeps_an_increment_within_its_bound,
                concurrent_guarded_decrements_never_oversell,
                a_segmented_scan_reads_every_live_item_once,
            );

            suite!(blobs:
                put_then_get_round_trips_bytes_and_content_type,
                get_of_a_missing_key_is_none,
                put_replaces_bytes_and_content_type,
                empty_objects_round_trip,
                delete_removes_and_tolerates_a_missing_key,
                list_returns_the_keys_under_a_prefix_in_order,
                list_pages_through_many_keys,
                invalid_keys_are_rejected,
                presigned_uploads_fix_key_type_and_length,
            );

            suite!(jobs:
                an_empty_queue_receives_nothing,
                a_sent_message_is_received_with_its_id_and_body,
                a_received_message_is_hidden_until_its_visibility_lapses,
                a_deleted_message_is_not_received_again,
                a_stale_receipt_is_not_an_error,
                receive_returns_at_most_max_and_each_message_once,
            );
        }
    };
}

backend!(embedded, crate::support::Embedded);
backend!(aws, crate::support::Aws);
