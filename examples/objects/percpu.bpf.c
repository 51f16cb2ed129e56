/* Per-CPU counters read across CPUs, as a load balancer's control plane sums its per-CPU
 * statistics from a program: bpf_map_lookup_percpu_elem names the CPU whose copy it wants, and
 * answers NULL for a CPU the machine does not have, so the loop over MAX_CPUS counts this
 * machine's CPUs. Written for this project.
 */
#include "mimic_bpf.h"

#define MAX_CPUS 8

/* Slot 1 holds the counter; slot 0 is never touched. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* 0: the sum over CPUs, 1: how many CPUs answered, 2: the lookups that must miss. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

static __always_inline void put(__u32 slot, __u64 value)
{
	bpf_map_update_elem(&totals, &slot, &value, BPF_ANY);
}

SEC("syscall")
int sum_hits(void *ctx)
{
	__u32 key = 1, past = 2;
	__u64 total = 0, cpus = 0, missed = 0;

#pragma unroll
	for (__u32 cpu = 0; cpu < MAX_CPUS; cpu++) {
		__u64 *hit = bpf_map_lookup_percpu_elem(&hits, &key, cpu);

		if (!hit)
			continue;
		*hit += cpu + 1;
		total += *hit;
		cpus++;
	}
	/* No machine has CPU 0xffffffff, and slot 2 is past the array. */
	if (!bpf_map_lookup_percpu_elem(&hits, &key, 0xffffffffu))
		missed++;
	if (!bpf_map_lookup_percpu_elem(&hits, &past, 0))
		missed++;
	put(0, total);
	put(1, cpus);
	put(2, missed);
	return 0;
}

char _license[] SEC("license") = "GPL";
