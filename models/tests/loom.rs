//! Every scenario under loom (bounded by `LOOM_MAX_PREEMPTIONS`, default 2) on the correct core,
//! and every core mutant loom detects, failing for the mutant's reason.
//! Replay a loom failure: see models/README.md (`LOOM_CHECKPOINT_FILE`).

mod loom {
    use mimic_core::mutants::Mutant;
    use mimic_models::checks::{assert_clean, assert_detects};
    use mimic_models::engine::Engine;

    macro_rules! clean {
        ($($name:ident),* $(,)?) => {$(
            #[test]
            fn $name() {
                assert_clean(Engine::Loom, stringify!($name));
            }
        )*};
    }

    macro_rules! detects {
        ($($test:ident => $mutant:ident),* $(,)?) => {$(
            #[test]
            fn $test() {
                assert_detects(Engine::Loom, Mutant::$mutant);
            }
        )*};
    }

    clean!(
        aom_reader_vs_replace,
        aom_reader_vs_delete,
        hom_prealloc_reader_vs_replace,
        hom_no_prealloc_reader_vs_replace,
        hom_prealloc_reader_vs_delete,
        htab_walker_vs_reuse_into_other_bucket,
        htab_walker_vs_reuse_into_same_bucket,
        htab_no_prealloc_walker_vs_reuse_into_other_bucket,
        sleepable_reader_vs_replace,
        hom_two_updaters_one_key_reader_always_finds_it,
        hom_replace_vs_reader_behind_neighbour_always_finds_key,
        hom_two_updaters_replace_one_key,
        close_outer_last_fd_vs_active_reader,
        hom_lookup_and_delete_batch_vs_reader,
        hom_lookup_and_delete_batch_vs_updater,
        dynamic_inner_arrays_swapped_under_bpf_program,
        drain_old_inner_after_swap,
        nested_program_update_same_bucket_same_cpu,
    );

    /// Store-buffering race between an RCU reader and a grace period: `Rcu::read_lock`
    /// publishes the reader word then reads the outer slot; a replace swaps the slot then the
    /// deferred free snapshots the reader words. loom found that without a full fence on both
    /// sides (`Platform::fence`, the kernel's implied `smp_mb()`), both sides may read the old
    /// values and the free misses a reader that holds the old inner map. Shuttle, being
    /// sequentially consistent, cannot see it; these pin the fix.
    #[test]
    fn aom_user_lookup_vs_replace() {
        assert_clean(Engine::Loom, "aom_user_lookup_vs_replace");
    }

    #[test]
    fn get_fd_by_id_vs_last_put_of_replaced_inner() {
        assert_clean(Engine::Loom, "get_fd_by_id_vs_last_put_of_replaced_inner");
    }

    detects!(
        free_inner_without_gp_is_a_use_after_free => FreeInnerWithoutGp,
        ignore_sleepable_gp_is_a_use_after_free_under_a_sleepable_reader => IgnoreSleepableGp,
        put_without_defer_is_a_use_after_free => PutWithoutDefer,
        leak_on_replace_leaks_the_replaced_inner_map => LeakOnReplace,
        replace_by_reinsert_hides_an_always_present_key => ReplaceByReinsert,
        no_nulls_restart_reports_a_present_key_missing => NoNullsRestart,
        freelist_aliases_next_reports_a_present_key_missing => FreelistAliasesNext,
        no_wait_after_update_loses_a_program_update => NoWaitAfterUpdate,
        lock_slot_unmasked_self_deadlocks_a_nested_update => LockSlotUnmasked,
        put_under_bucket_lock_takes_the_id_lock_under_the_bucket_lock => PutUnderBucketLock,
    );
}
