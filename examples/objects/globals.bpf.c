/* Global data as libbpf loads it: a `const volatile` configuration in .rodata (frozen after
 * loading, so the verifier reads it as a constant and drops the branch it decides), a counter
 * in .bss and a table in .data, reached through BPF_PSEUDO_MAP_VALUE loads, and a static
 * subprogram in .text called from two programs.
 */
#include "mimic_bpf.h"

const volatile __u32 max_slot = 2;
const volatile __u32 verbose = 0;
__u64 hits;
__u32 weights[4] = { 1, 2, 3, 4 };

struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
};

struct inner_array table0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct inner_array);
} tables SEC(".maps") = {
	.values = { [0] = &table0 },
};

static __noinline __u32 weight(__u32 slot)
{
	if (slot > max_slot)
		slot = max_slot;
	return weights[slot & 3];
}

SEC("raw_tp/sys_enter")
int weighted_lookup(__u64 *ctx)
{
	__u32 zero = 0, slot = ctx[0] & 3;
	void *table = bpf_map_lookup_elem(&tables, &zero);
	__u32 *v;

	hits++;
	if (verbose)
		hits += 100;
	if (!table)
		return 0;
	v = bpf_map_lookup_elem(table, &slot);
	return (v ? *v : 0) + weight(slot);
}

SEC("raw_tp/sys_exit")
int weight_only(__u64 *ctx)
{
	return weight(ctx[1] & 7);
}

char _license[] SEC("license") = "GPL";
