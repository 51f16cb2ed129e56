/* A load balancer's two map-in-map reads, as the simulator's object scenario runs them
 * (examples/objects/backend_tables.toml):
 *
 * - pick_backend: services is a hash of maps whose template is a BPF_F_INNER_MAP array of 8
 *   slots, so each service's backend table has its own size (3 and 5 here, any size later);
 *   a flow hash picks a slot, and a slot past the table's own end must read as a miss. The
 *   inner lookup is a call, not inlined: only the stored table knows its size.
 * - bump: counter_sets is a hash of maps whose template is a plain array of 5 counters, so
 *   every inner array has 5; the inner lookup at a constant slot is inlined from the template's
 *   element size, and the atomic add must land on that slot and nowhere else.
 *
 * The key is the context's first u64 argument (its low 32 bits), the flow hash the second.
 */
#include "mimic_bpf.h"

struct backend_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} table3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u32);
} table5 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct backend_table);
} services SEC(".maps") = {
	.values = { [1] = (void *)&table5, [2] = (void *)&table3 },
};

struct counters {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
};

struct counters counters_a SEC(".maps"), counters_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct counters);
} counter_sets SEC(".maps") = {
	.values = { [1] = &counters_a, [2] = &counters_b },
};

SEC("raw_tp/sys_enter")
int pick_backend(__u64 *ctx)
{
	__u32 service = ctx[0], slot = ctx[1] & 7;
	void *table = bpf_map_lookup_elem(&services, &service);
	__u32 *backend;

	if (!table)
		return -1;
	backend = bpf_map_lookup_elem(table, &slot);
	return backend ? *backend : -2;
}

SEC("raw_tp/sys_enter")
int bump(__u64 *ctx)
{
	__u32 set = ctx[0], slot = 3;
	void *counters = bpf_map_lookup_elem(&counter_sets, &set);
	__u64 *n;

	if (!counters)
		return -1;
	n = bpf_map_lookup_elem(counters, &slot);
	if (!n)
		return -2;
	__sync_fetch_and_add(n, 1);
	return 0;
}

char _license[] SEC("license") = "GPL";
