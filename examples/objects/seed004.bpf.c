/* Seed 004 ("bpf: Allow for map-in-map with dynamic inner array map entries") as C: an array
 * of maps whose template is a BPF_F_INNER_MAP array, so inner arrays of any size may be stored;
 * handle__sys_enter looks up outer_arr_dyn[0], then inner[0], and returns the value or -1.
 * Its xlated program has the seed's shape: the outer lookup inlined, the inner lookup a call of
 * array_map_lookup_elem (an inner array's size is not known when the program is verified).
 */
#include "mimic_bpf.h"

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, int);
};

struct inner_map inner_map1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 3);
	__type(key, int);
	__type(value, int);
} inner_map_sz3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 3);
	__type(key, int);
	__type(value, int);
	__array(values, struct inner_map);
} outer_arr_dyn SEC(".maps") = {
	.values = { [0] = (void *)&inner_map_sz3, [2] = &inner_map1 },
};

SEC("raw_tp/sys_enter")
int handle__sys_enter(void *ctx)
{
	int key = 0, *val;
	void *inner_map;

	inner_map = bpf_map_lookup_elem(&outer_arr_dyn, &key);
	if (!inner_map)
		return -1;
	val = bpf_map_lookup_elem(inner_map, &key);
	return val ? *val : -1;
}

char _license[] SEC("license") = "GPL";
