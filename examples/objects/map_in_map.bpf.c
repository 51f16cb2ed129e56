/* Map-in-map in the shape of the kernel's selftests: an array of maps and a hash of maps over
 * fixed-size inner arrays placed by .values, a hash of maps whose template is a hash, and
 * lookups at constant and context-given keys. raw_tp programs read their context as u64
 * arguments.
 */
#include "mimic_bpf.h"

struct inner_array {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
};

struct inner_array backends_a SEC(".maps"), backends_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct inner_array);
} by_index SEC(".maps") = {
	.values = { [1] = &backends_a, [3] = &backends_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct inner_array);
} by_service SEC(".maps") = {
	.values = { [0] = &backends_b },
};

struct inner_hash {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u64);
	__type(value, __u32);
};

struct inner_hash flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, struct inner_hash);
} flow_tables SEC(".maps") = {
	.values = { [0] = &flows },
};

/* Slot 2 of the backends at by_index[1] and by_index[3]: the outer lookups at constant keys,
 * then the inner ones (whose size the template fixes). */
static __always_inline __u64 slot2(__u32 outer)
{
	__u32 inner = 2;
	void *backends = bpf_map_lookup_elem(&by_index, &outer);
	__u64 *v;

	if (!backends)
		return 0;
	v = bpf_map_lookup_elem(backends, &inner);
	return v ? *v : 0;
}

SEC("raw_tp/sys_enter")
int array_of_maps_constant_key(void *ctx)
{
	return slot2(1) + slot2(3);
}

/* A service's backend by a key from the context (the first u64 argument). */
SEC("raw_tp/sys_enter")
int hash_of_maps_context_key(__u64 *ctx)
{
	__u32 service = 0, slot = ctx[0] & 3;
	void *backends = bpf_map_lookup_elem(&by_service, &service);
	__u64 *v;

	if (!backends)
		return -1;
	v = bpf_map_lookup_elem(backends, &slot);
	return v ? *v : -2;
}

/* Count a flow in the inner hash of flow_tables[0]. */
SEC("raw_tp/sys_enter")
int inner_hash_update(__u64 *ctx)
{
	__u32 table = 0, one = 1;
	__u64 flow = ctx[1];
	void *flows_map = bpf_map_lookup_elem(&flow_tables, &table);
	__u32 *count;

	if (!flows_map)
		return 0;
	count = bpf_map_lookup_elem(flows_map, &flow);
	if (count) {
		*count += 1;
		return *count;
	}
	bpf_map_update_elem(flows_map, &flow, &one, BPF_ANY);
	return 1;
}

char _license[] SEC("license") = "GPL";
